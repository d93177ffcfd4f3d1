"""Counselor accounts, review records and the audit log, in Redis (keys under ``coach:review:``).

Nothing here expires: review records are the label history of every text the coach says.

- ``coach:review:counselor:<id>``       a counselor (JSON)
- ``coach:review:counselors``           set of counselor ids
- ``coach:review:token:<sha256>``       counselor id for a token (tokens are stored hashed)
- ``coach:review:records``              list of decisions (JSON), in the order they were made
- ``coach:review:texts``                hash ``<template>@<version>`` -> the reviewed content,
                                        kept so the console can diff against an approved text
- ``coach:review:generation``           counter, +1 with every decision (the gate's refresh)
- ``coach:review:audit``                stream: every review action, append-only
"""

from __future__ import annotations

import datetime as dt
import difflib
import secrets
from typing import Any, Literal

import msgspec

from coach.approvals import Approval
from coach.catalog import Template
from coach.store import Store, token_hash

Role = Literal["counselor", "admin"]
ROLES: tuple[Role, ...] = ("counselor", "admin")
TOKEN_PREFIX = "cr_"


class Counselor(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: Role
    created_at: str
    disabled: bool = False


class ReviewRecord(Approval, frozen=True, kw_only=True):
    """One decision on one template version (an ``Approval`` plus who made it)."""

    id: str
    counselor_id: str


class ReviewedText(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    extra: dict[str, str]
    variables: tuple[str, ...]


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the stream id: increasing, assigned by Redis
    at: str
    actor: str
    actor_id: str
    action: str
    target: str
    detail: dict[str, Any]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def reviewed_text(template: Template) -> ReviewedText:
    return ReviewedText(text=template.text, extra=dict(template.extra), variables=template.variables)


def document(content: ReviewedText) -> list[str]:
    """One reviewable document per version: the text, then each other field."""
    lines = [f"variables: {', '.join(content.variables) or '(none)'}", "", "text:"]
    lines += content.text.splitlines()
    for key in sorted(content.extra):
        lines += ["", f"{key}:", *content.extra[key].splitlines()]
    return lines


def diff(old: ReviewedText, new: ReviewedText, old_label: str, new_label: str) -> list[str]:
    return list(difflib.unified_diff(document(old), document(new), old_label, new_label, lineterm="", n=3))


class ReviewStore:
    def __init__(self, store: Store) -> None:
        self.redis: Any = store.redis

    @staticmethod
    def k(*parts: str) -> str:
        return "coach:review:" + ":".join(parts)

    # -- counselors -----------------------------------------------------------------
    async def add_counselor(self, name: str, role: Role) -> tuple[Counselor, str]:
        """A new account; returns it with its token (shown once, stored hashed)."""
        counselor = Counselor(
            id="csl_" + secrets.token_urlsafe(9), name=name, role=role, created_at=now_iso()
        )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.k("counselor", counselor.id), msgspec.json.encode(counselor))
            pipe.sadd(self.k("counselors"), counselor.id)
            pipe.set(self.k("token", token_hash(token)), counselor.id)
            await pipe.execute()
        return counselor, token

    async def get_counselor(self, counselor_id: str) -> Counselor | None:
        raw = await self.redis.get(self.k("counselor", counselor_id))
        return None if raw is None else msgspec.json.decode(raw, type=Counselor)

    async def counselor_by_token(self, token: str) -> Counselor | None:
        counselor_id = await self.redis.get(self.k("token", token_hash(token)))
        return None if counselor_id is None else await self.get_counselor(counselor_id)

    async def list_counselors(self) -> list[Counselor]:
        ids = sorted(await self.redis.smembers(self.k("counselors")))
        found = [await self.get_counselor(i) for i in ids]
        return sorted((c for c in found if c is not None), key=lambda c: (c.created_at, c.id))

    async def disable_counselor(self, counselor_id: str) -> Counselor | None:
        counselor = await self.get_counselor(counselor_id)
        if counselor is None:
            return None
        counselor.disabled = True
        await self.redis.set(self.k("counselor", counselor.id), msgspec.json.encode(counselor))
        return counselor

    # -- decisions ------------------------------------------------------------------
    async def decide(
        self, counselor: Counselor, template: Template, decision: str, comment: str
    ) -> ReviewRecord:
        """Record a decision on the template's current version, keep its text, bump the
        generation and audit it, in one transaction."""
        record = ReviewRecord(
            id="rev_" + secrets.token_urlsafe(9),
            template=template.id,
            version=template.version,
            decision=decision,
            by=counselor.name,
            counselor_id=counselor.id,
            at=now_iso(),
            comment=comment,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self.k("records"), msgspec.json.encode(record))
            pipe.hset(
                self.k("texts"),
                f"{template.id}@{template.version}",
                msgspec.json.encode(reviewed_text(template)),
            )
            pipe.incr(self.k("generation"))
            self._audit(
                pipe,
                counselor,
                f"template.{decision}",
                f"{template.id}@{template.version}",
                {"comment": comment, "record": record.id},
            )
            await pipe.execute()
        return record

    async def records(self, template_id: str | None = None) -> list[ReviewRecord]:
        raw = await self.redis.lrange(self.k("records"), 0, -1)
        found = [msgspec.json.decode(r, type=ReviewRecord) for r in raw]
        return [r for r in found if template_id is None or r.template == template_id]

    async def reviewed(self, template_id: str, version: str) -> ReviewedText | None:
        raw = await self.redis.hget(self.k("texts"), f"{template_id}@{version}")
        return None if raw is None else msgspec.json.decode(raw, type=ReviewedText)

    # -- the gate's source ------------------------------------------------------------
    async def generation(self) -> int:
        return int(await self.redis.get(self.k("generation")) or 0)

    async def decisions(self) -> list[Approval]:
        return list(await self.records())

    # -- audit --------------------------------------------------------------------------
    def _audit(
        self, pipe: Any, actor: Counselor | None, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        pipe.xadd(
            self.k("audit"),
            {
                "at": now_iso(),
                "actor": actor.name if actor else "cli",
                "actor_id": actor.id if actor else "cli",
                "action": action,
                "target": target,
                "detail": msgspec.json.encode(detail).decode(),
            },
        )

    async def audit(
        self, actor: Counselor | None, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self._audit(pipe, actor, action, target, detail or {})
            await pipe.execute()

    async def audit_log(self, after: str = "-", count: int = 1000) -> list[AuditEntry]:
        start = after if after == "-" else f"({after}"
        entries = await self.redis.xrange(self.k("audit"), min=start, max="+", count=count)
        return [
            AuditEntry(
                id=str(entry_id),
                at=fields.get("at", ""),
                actor=fields.get("actor", ""),
                actor_id=fields.get("actor_id", ""),
                action=fields.get("action", ""),
                target=fields.get("target", ""),
                detail=msgspec.json.decode(fields.get("detail", "{}")),
            )
            for entry_id, fields in entries
        ]


def effective_approvals(
    templates: list[Template], committed: list[Approval], decisions: list[Approval]
) -> list[Approval]:
    """The approvals a deployment serves for the current texts: the committed file, then the
    run-time decisions in order (the latest decision on a version wins). One entry per
    template whose current version is approved, in catalog order (approvals.yaml format)."""
    latest: dict[tuple[str, str], Approval] = {}
    for approval in [*committed, *decisions]:
        latest[(approval.template, approval.version)] = approval
    out: list[Approval] = []
    for template in templates:
        found = latest.get((template.id, template.version))
        if found is not None and found.decision == "approved":
            out.append(
                Approval(
                    template=found.template,
                    version=found.version,
                    decision=found.decision,
                    by=found.by,
                    at=found.at,
                    comment=found.comment,
                )
            )
    return out
