"""What the store keeps: couples, partners, sessions, turns and challenge progress."""

from __future__ import annotations

from typing import Literal

import msgspec

SessionStatus = Literal["active", "paused", "completed"]
TurnKind = Literal["message", "reply", "notice"]
COACH = "coach"


class Couple(msgspec.Struct, kw_only=True):
    id: str
    country: str
    invite_code: str | None
    partner_ids: list[str]
    created_at: float


class Partner(msgspec.Struct, kw_only=True):
    id: str
    couple_id: str
    display_name: str | None
    created_at: float


class TemplateRef(msgspec.Struct, frozen=True):
    id: str
    version: str


class SafetyInfo(msgspec.Struct, kw_only=True):
    severity: str
    categories: list[str]
    resources: list[dict[str, str | None]]
    policy_version: str


class Turn(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    session_id: str
    seq: int
    kind: TurnKind
    author: str  # a partner id, or "coach"
    text: str
    created_at: float
    step_id: str
    visible_to: str | None = None  # None: everyone in the session; else one partner id
    template: TemplateRef | None = None
    model: str | None = None
    safety: SafetyInfo | None = None
    fallback: bool = False  # the model failed; the offline line answered
    replaced: bool = False  # the model's reply failed the safety check and was replaced
    draft: bool = False  # produced by a template that is not approved (development only)
    in_reply_to: str | None = None
    held: bool = False  # a lowered alarm: private to its author until they share it
    shares: str | None = None  # the held message this one shares with the session


class Session(msgspec.Struct, kw_only=True):
    id: str
    couple_id: str
    exercise_id: str
    created_by: str
    mode: Literal["solo", "together"]
    step_index: int = 0
    status: SessionStatus = "active"
    step_posts: list[str] = msgspec.field(default_factory=list)
    day: int | None = None
    created_at: float
    updated_at: float
    safety_state: str | None = None  # msgspec JSON of safety.SessionSignals
    disclosed_by: list[str] = msgspec.field(default_factory=list)
    concern_noted: list[str] = msgspec.field(default_factory=list)
    turn_count: int | None = None  # turns stored; None on records written before it was kept

    def visible_for(self, partner_id: str) -> bool:
        return self.mode == "together" or self.created_by == partner_id


class ChallengeProgress(msgspec.Struct, kw_only=True):
    couple_id: str
    started_on: str  # ISO date
    completed: dict[str, str] = msgspec.field(default_factory=dict)  # day -> choice
    completed_on: dict[str, str] = msgspec.field(default_factory=dict)  # day -> ISO date
