"""Turn a blaming "you" sentence into an "I" statement.

With a model: structured output (a JSON schema), validated with msgspec; one corrective
retry when the output fails validation or keeps "you always/never". Offline, or when the
model fails twice: the counselor-approved scaffold. A message that describes abuse is
never rewritten: the safety layer answers it instead.
"""

from __future__ import annotations

import re
import time

import msgspec

from coach.catalog import Catalog
from coach.model import OFFLINE_MODEL, ChatMessage, ModelRequest, ResilientClient


class RewriteParts(msgspec.Struct, forbid_unknown_fields=True):
    rewrite: str
    feeling: str
    situation: str
    need: str
    request: str


SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("rewrite", "feeling", "situation", "need", "request")},
    "required": ["rewrite", "feeling", "situation", "need", "request"],
    "additionalProperties": False,
}

_ABSOLUTES = re.compile(r"\byou(?:'re|\s+are)?\s+(?:always|never)\b", re.IGNORECASE)


def problem_with(parts: RewriteParts) -> str | None:
    """Why a rewrite is not acceptable, or None when it is."""
    if _ABSOLUTES.search(parts.rewrite):
        return 'it still says "you always" or "you never"'
    if not parts.feeling.strip() or not parts.request.strip():
        return "it must name a feeling and a concrete request"
    if not re.match(r"^\s*I\b", parts.rewrite):
        return 'it must start with "I"'
    if parts.feeling.strip().lower() not in parts.rewrite.lower():
        return "the rewrite must name the feeling it gives"
    return None


class RewriteResult(msgspec.Struct, kw_only=True):
    text: str
    parts: RewriteParts | None
    model: str
    attempts: int


def _parse(text: str) -> RewriteParts | str:
    try:
        parts = msgspec.json.decode(text.strip().removeprefix("```json").strip("`\n "), type=RewriteParts)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return f"the answer was not the JSON object asked for ({exc})"
    return problem_with(parts) or parts


async def rewrite_i_statement(
    text: str, *, catalog: Catalog, model: ResilientClient, deadline_seconds: float
) -> RewriteResult:
    template = catalog.rewrite
    scaffold = catalog.render(template, {}, "scaffold")
    if model.primary is None:
        return RewriteResult(text=scaffold, parts=None, model=OFFLINE_MODEL, attempts=0)
    deadline = time.monotonic() + deadline_seconds
    messages: list[ChatMessage] = [
        {"role": "system", "content": catalog.render(template, {})},
        {"role": "user", "content": text},
    ]
    for attempt in (1, 2):
        reply = await model.complete(
            ModelRequest(messages=tuple(messages), scripted=scaffold, json_schema=SCHEMA),
            deadline=deadline,
        )
        if reply.fallback:
            return RewriteResult(text=scaffold, parts=None, model=OFFLINE_MODEL, attempts=attempt)
        parsed = _parse(reply.text)
        if isinstance(parsed, RewriteParts):
            return RewriteResult(text=parsed.rewrite, parts=parsed, model=reply.model, attempts=attempt)
        messages += [
            {"role": "assistant", "content": reply.text},
            {
                "role": "user",
                "content": catalog.render(template, {"problem": parsed}, "correction"),
            },
        ]
    return RewriteResult(text=scaffold, parts=None, model=OFFLINE_MODEL, attempts=2)
