"""Request and response bodies of the /v1 API (msgspec Structs, so OpenAPI is exact)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Country = Annotated[str, Meta(pattern=r"^[A-Za-z]{2}$|^INTL$", examples=["US", "GB"])]
DisplayName = Annotated[str, Meta(min_length=1, max_length=60)]


class CreateCouple(msgspec.Struct):
    display_name: DisplayName | None = None
    country: Country | None = None


class JoinCouple(msgspec.Struct):
    invite_code: Annotated[str, Meta(min_length=4, max_length=32)]
    display_name: DisplayName | None = None


class CoupleCreated(msgspec.Struct):
    couple_id: str
    partner_id: str
    token: str
    invite_code: str


class CoupleJoined(msgspec.Struct):
    couple_id: str
    partner_id: str
    token: str


class StepOut(msgspec.Struct):
    id: str
    number: int
    title: str
    invite: str
    advance: Literal["each", "any"]


class ExerciseOut(msgspec.Struct):
    id: str
    title: str
    summary: str
    mode: Literal["solo", "together"]
    duration: str
    cadence: str
    steps: list[StepOut]


class ExerciseList(msgspec.Struct):
    exercises: list[ExerciseOut]


class StartSession(msgspec.Struct):
    exercise_id: Annotated[str, Meta(min_length=1, max_length=64)]


class SessionOut(msgspec.Struct):
    session_id: str
    exercise_id: str
    mode: Literal["solo", "together"]
    status: Literal["active", "paused", "completed"]
    step: StepOut
    step_count: int
    day: int | None
    created_at: float


class SessionList(msgspec.Struct):
    sessions: list[SessionOut]


#: The schema says what a blank message is (so generated clients can check it); the
#: coach answers one with its own problem type, ``/problems/message-empty``
#: (``problems.handle_exception``), and ``check_text`` catches what the pattern cannot.
MessageText = Annotated[
    str,
    Meta(
        min_length=1,
        pattern=r"\S",
        description="Not empty or only white space (`/problems/message-empty`); up to "
        "COACH_MAX_MESSAGE_CHARS (4000) characters (`/problems/message-too-long`)",
    ),
]


class PostMessage(msgspec.Struct):
    text: MessageText


class TemplateOut(msgspec.Struct):
    id: str
    version: str


class ResourceOut(msgspec.Struct, omit_defaults=True):
    name: str
    kind: str
    phone: str | None = None
    sms: str | None = None
    url: str | None = None
    hours: str | None = None
    note: str | None = None
    source: str | None = None


class SafetyOut(msgspec.Struct):
    severity: Literal["none", "concern", "risk", "danger"]
    categories: list[str]
    resources: list[ResourceOut]
    policy_version: str


class MessageOut(msgspec.Struct):
    id: str
    seq: int
    kind: Literal["message", "reply", "notice"]
    author: Literal["partner", "coach"]
    text: str
    created_at: float
    step_id: str
    private: bool
    partner_id: str | None = None
    display_name: str | None = None
    mine: bool = False
    template: TemplateOut | None = None
    model: str | None = None
    safety: SafetyOut | None = None
    fallback: bool = False
    replaced: bool = False
    draft: bool = False
    in_reply_to: str | None = None
    held: Annotated[
        bool,
        Meta(
            description="Kept private to its author after a safety check; "
            "POST .../messages/{id}/share shows it to the session"
        ),
    ] = False
    shares: Annotated[str | None, Meta(description="The id of the held message this one shares")] = None


class PostResult(msgspec.Struct):
    message: MessageOut
    reply: MessageOut
    session: SessionOut


class MessageList(msgspec.Struct):
    messages: list[MessageOut]
    last_event_id: str
    next_cursor: int | None = None


class RewriteRequest(msgspec.Struct):
    text: MessageText
    style: Literal["i-statement"] = "i-statement"


class RewriteParts(msgspec.Struct):
    feeling: str
    situation: str
    need: str
    request: str


class RewriteOut(msgspec.Struct):
    rewrite: str | None  # None when the text describes harm: ``help`` answers instead
    parts: RewriteParts | None
    model: str
    template: TemplateOut
    safety: SafetyOut
    offline: bool
    draft: bool = False
    help: str | None = None


class ChallengeChoice(msgspec.Struct):
    choice: Literal["emotional", "physical"]


class ChallengeDayOut(msgspec.Struct):
    day: int
    phase: int
    phase_title: str
    emotional: str
    physical: str


class ChallengeOut(msgspec.Struct):
    started_on: str
    day: int
    finished: bool
    completed_days: int
    streak: int
    missed_days: int
    choices: dict[str, str]
    today: ChallengeDayOut
    done_today: bool


class Health(msgspec.Struct):
    status: str
    store: str | None = None
    model: str | None = None
    breaker: str | None = None
    #: The learned safety stage: "on", "off" (COACH_SAFETY_LEARNED=false) or "unavailable"
    #: (it failed to load: only the lexicon scans; see the error log).
    safety_learned: str | None = None
    #: Whether that stage may lower a lexicon verdict it is sure about
    #: (COACH_SAFETY_LEARNED_LOWERS; on by default since round thirty-eight).
    safety_learned_lowers: bool | None = None
    #: Whether that stage lets an ordinary message out after its encoder's first layers
    #: (COACH_SAFETY_LEARNED_EXIT and an exit named in settings.json; none since round
    #: twenty-five, so false; a message it may lower is scored in full).
    safety_learned_exit: bool | None = None
