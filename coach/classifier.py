"""The optional second safety stage: the model labels a message, and can only raise its verdict.

Off by default (``COACH_SAFETY_CLASSIFIER``). When on, each inbound message the lexicon
did not already find at risk or danger is sent, as the only user-role message, to the
model with the approved ``safety.classifier`` template as the system message and a JSON
schema for the answer. ``safety.combine`` merges a valid answer into the lexicon's
verdict (never lowering it).

The classifier never raises and never blocks the first stage: a timeout (its own short
deadline), an open circuit breaker, an HTTP error, an unparseable answer or an
unapproved template all return ``None`` - logged without the message text - and the
lexicon verdict stands. It talks to a raw model client, never the offline fallback: a
scripted line is not a classification.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from coach.approvals import ApprovalGate
from coach.catalog import Catalog
from coach.model import ModelClient, ModelRequest, ModelUnavailable
from safety import CLASSIFICATION_SCHEMA, Classification, parse_classification

log = logging.getLogger("coach.safety")

#: Enough for the object with every category named.
MAX_TOKENS = 120


class Classifier(Protocol):
    #: Added to the policy version of a verdict this stage answered for, so a stamp says
    #: which second stage (and which version of it) judged the message too.
    stamp: str

    async def classify(self, text: str) -> Classification | None: ...


class ModelClassifier:
    """``classify(text)``: the model's checked classification, or ``None`` on any failure."""

    def __init__(
        self,
        *,
        client: ModelClient,
        catalog: Catalog,
        gate: ApprovalGate,
        timeout: float,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.gate = gate
        self.timeout = timeout
        self.template = catalog.classifier
        self.instructions = catalog.render(self.template, {})
        self.stamp = f"classifier.{self.template.id}@{self.template.version}"

    @property
    def servable(self) -> bool:
        """Whether counselors approved this version of the prompt (or drafts are allowed)."""
        return self.gate.servable(self.template)

    async def classify(self, text: str) -> Classification | None:
        if not self.servable:
            log.debug("safety classifier skipped: its template is not approved")
            return None
        started = time.monotonic()
        request = ModelRequest(
            messages=(
                {"role": "system", "content": self.instructions},
                {"role": "user", "content": text},
            ),
            scripted="",  # never answered offline: the client here has no fallback
            json_schema=CLASSIFICATION_SCHEMA,
            max_tokens=MAX_TOKENS,
        )
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self.client.complete(request, deadline=started + self.timeout)
            if reply.fallback:
                raise ValueError("a fallback answer is not a classification")
            result = parse_classification(reply.text)
        except Exception as exc:
            log.warning(
                "safety classifier failed; the lexicon verdict stands",
                extra={"event": "safety_classifier", "outcome": "failed", **self._fields(started, exc)},
            )
            return None
        log.info(
            "safety classifier",
            extra={
                "event": "safety_classifier",
                "outcome": "ok",
                "severity": result.severity.value,
                "categories": list(result.categories),
                "model": reply.model,
                **self._fields(started),
            },
        )
        return result

    def _fields(self, started: float, exc: Exception | None = None) -> dict[str, object]:
        fields: dict[str, object] = {
            "template": f"{self.template.id}@{self.template.version}",
            "ms": round((time.monotonic() - started) * 1000, 2),
        }
        if exc is not None:
            fields["reason"] = type(exc).__name__
            if isinstance(exc, ModelUnavailable):  # our own fixed wording, e.g. "circuit breaker open"
                fields["detail"] = str(exc)
            # Other messages are not logged: a parse error could quote the model's answer.
        return fields

    async def aclose(self) -> None:
        await self.client.aclose()


async def classify_all(
    classifier: Classifier, texts: list[str], *, concurrency: int = 8
) -> dict[str, Classification | None]:
    """Classify many texts, ``concurrency`` at a time (``coach safety eval --classifier``)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(text: str) -> Classification | None:
        async with gate:
            return await classifier.classify(text)

    results = await asyncio.gather(*(one(text) for text in texts))
    return dict(zip(texts, results, strict=True))
