"""The optional second stage: a model's classification, checked, that can only raise a verdict.

The coach asks a model (prompt ``prompts/safety/classifier.yaml``) to label a message
with one JSON object ``{"severity": ..., "categories": [...]}``. This module holds the
pure part: the JSON schema the answer must follow, :func:`parse_classification` (an
unknown severity or category, or anything that is not that object, is an
:class:`InvalidClassification` - the caller treats it like any other failure), and
:func:`combine`, which merges a classification into the first-stage (lexicon) verdict:

* the severity becomes the higher of the two - a classification never lowers it;
* when the classification is at least ``concern`` and at least as serious as the
  first stage, its categories are added (never removed); a less serious
  classification adds nothing at all;
* what the classification added is visible as signals with id ``classifier.<severity>``
  (or ``learned.<severity>`` for the learned stage; one per category it named, or one
  with an empty category when it named none; span 0..0 and empty text: neither stage
  points at words), so a counselor can tell a model finding from a lexicon one.

No I/O here: calling the model is the coach's job.
"""

from __future__ import annotations

from typing import Any

import msgspec

from safety.severity import Severity
from safety.verdict import CATEGORIES, UNSAFE_REPLY, Signal, Verdict

#: The categories a classification may name (``unsafe_reply`` belongs to reply checks).
MESSAGE_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c != UNSAFE_REPLY)
SIGNAL_PREFIX = "classifier."

#: Structured-output schema for the classifier's answer (OpenAI ``json_schema``, strict).
CLASSIFICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "severity": {"type": "string", "enum": [s.value for s in Severity]},
        "categories": {"type": "array", "items": {"type": "string", "enum": list(MESSAGE_CATEGORIES)}},
    },
    "required": ["severity", "categories"],
    "additionalProperties": False,
}


class InvalidClassification(ValueError):
    """The classifier's answer is not the JSON object asked for."""


class Classification(msgspec.Struct, frozen=True):
    """A checked classifier answer; ``categories`` are sorted, known and unique.

    ``clear`` is the learned stage's alone, and only with lowering switched on: it is sure
    the text is not a disclosure (see :func:`lower`). A model's answer never sets it."""

    severity: Severity
    categories: tuple[str, ...] = ()
    clear: bool = False


def parse_classification(answer: str) -> Classification:
    """Read one classifier answer; raises :class:`InvalidClassification` when it is not
    ``{"severity": <known severity>, "categories": [<known category>, ...]}``.

    A code fence around the object is tolerated; extra keys are ignored.
    """
    body = answer.strip().removeprefix("```json").strip("`\n\t ")
    try:
        raw = msgspec.json.decode(body, type=Classification)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidClassification(f"not a classification: {exc}") from None
    unknown = sorted(set(raw.categories) - set(MESSAGE_CATEGORIES))
    if unknown:
        raise InvalidClassification(f"unknown categories: {', '.join(unknown)}")
    return Classification(raw.severity, tuple(sorted(set(raw.categories))))


def stage_applies(verdict: Verdict, source: str) -> bool:
    """Whether a second stage is asked about a message, given the verdict so far: the model
    classifier while no disclosure was found; the learned stage unless the verdict is
    already danger (its danger head can raise a risk to danger, and emergency help first;
    with lowering on it may also lower a risk, see :func:`lower`, but never a danger, so it
    has nothing to say about one, whether lowering is on or off). Neither is asked
    about a text that says nothing but a negated signal (``verdict.negated_only``: "He has
    never hit me." is ``none``, as the issue asks; both stages read the negation as a
    disclosure, RETRAIN.md round thirty-five), nor about a message the lexicon read as
    general talk about abuse or suicide as a whole (``verdict.general_talk``: an advice
    page, a definition, a news report; on real writing the stage raised such pages,
    ``bench/real_text``)."""
    if verdict.negated_only or verdict.general_talk:
        return False
    if source == "learned":
        return verdict.severity is not Severity.DANGER
    return not verdict.is_disclosure


def combine(first: Verdict, second: Classification | None, *, source: str = "classifier") -> Verdict:
    """The first-stage verdict, raised (never lowered) by the classification.

    ``None`` (the classifier failed or did not run) returns ``first`` unchanged.
    ``source`` names the stage in the added signals' ids (``<source>.<severity>``):
    ``classifier`` for the model, ``learned`` for :mod:`safety.learned`.
    """
    if second is None or second.severity.rank < max(first.severity.rank, Severity.CONCERN.rank):
        return first
    added = tuple(c for c in second.categories if c not in first.categories)
    raised = second.severity.rank > first.severity.rank
    if not raised and not added:
        return first
    named = second.categories if raised else added
    signals = tuple(
        Signal(f"{source}.{second.severity.value}", category, second.severity, 0, 0, "")
        for category in (named or ("",))
    )
    return Verdict(
        severity=second.severity if raised else first.severity,
        categories=tuple(sorted({*first.categories, *second.categories})),
        signals=(*first.signals, *signals),
        policy_version=first.policy_version,
    )


def needs_full_score(first: Verdict, *, lowers: bool) -> bool:
    """Whether the learned stage must score this text in full (no early exit): only when
    it may lower verdicts and the first stage found ``risk`` - the texts :func:`lower`
    could change. Elsewhere the stage can only raise, which its exit was measured never to
    have cost on fresh sets."""
    return lowers and first.severity is Severity.RISK


def lower(first: Verdict, second: Classification | None, *, source: str = "learned") -> Verdict:
    """The first-stage verdict lowered to ``concern`` when it is ``risk`` and the stage is
    sure the text is no disclosure (``second.clear``); otherwise ``first``.

    A ``danger`` is never lowered (since session twenty-nine, 2026-12-06): the lexicon's
    danger signals are the high-lethality indicators, and on real published writing
    (``bench/real_text/``) the stage was sure of texts such as "I have decided to commit
    suicide ..." - a long letter, unlike the chat messages it was trained on - and lowering
    cost 3 of 21 dangers there. Its confidence is not trusted against a danger signal.

    Off unless the service switches it on (``COACH_SAFETY_LEARNED_LOWERS``): measured in
    round twenty-two (docs/safety.md), a counselors' decision. The lexicon's signals stay
    for counselors to read, and a ``<source>.lowered`` signal at ``concern`` (empty category
    and span) says why the severity is lower than theirs; at ``concern`` the turn still
    adds to the session's accumulated points, so repeated alarming wording comes back as
    ``risk``."""
    if second is None or not second.clear or first.severity is not Severity.RISK:
        return first
    signal = Signal(f"{source}.lowered", "", Severity.CONCERN, 0, 0, "")
    return Verdict(
        severity=Severity.CONCERN,
        categories=first.categories,
        signals=(*first.signals, signal),
        policy_version=first.policy_version,
    )


def lowered_from(verdict: Verdict) -> Severity | None:
    """The severity :func:`lower` took ``verdict`` down from (the most serious of its other
    signals), or None when no stage lowered it. The coach holds such a message private and
    offers the resources of that severity (docs/safety.md, "Held messages")."""
    if not any(s.id.endswith(".lowered") and not s.category for s in verdict.signals):
        return None
    found = [s.severity for s in verdict.signals if not s.id.endswith(".lowered")]
    return max(found, key=lambda s: s.rank, default=None)
