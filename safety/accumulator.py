"""Policy rule 4: mild signals add up over a session.

The coach keeps one :class:`SessionSignals` per session (it stores
``msgspec.json.encode(state)``) and calls :func:`accumulate` after scanning each
inbound message.

Weights (also in ``safety/data/README.md``):

* a turn at ``concern`` adds **1.0** point, **1.5** when its concern signals span two or
  more categories (e.g. walking on eggshells *and* hopelessness);
* a turn at ``risk`` or ``danger`` adds **3.0** points (it is already a disclosure);
* a turn at ``none`` adds nothing.

Points are kept per partner and for the whole session (both partners together). A turn
that is itself at least ``concern`` is raised to ``risk`` when, after adding it, the
author's points **or** the session's points reach **3.0** - so three mild messages from
one partner, or from both partners together, make the third a ``risk``, and a mild
message after an earlier disclosure is a ``risk`` too. A raised verdict keeps its own
signals and gains one ``accumulated.concern`` signal (span 0..0, empty text) per
category, with the categories seen so far. Verdicts are never lowered; a ``none`` turn
is never raised (there is nothing in it to act on).
"""

from __future__ import annotations

import msgspec

from safety.severity import Severity
from safety.verdict import Signal, Verdict

CONCERN_POINTS = 1.0
CONCERN_MULTI_CATEGORY_POINTS = 1.5
DISCLOSURE_POINTS = 3.0
THRESHOLD = 3.0
ACCUMULATED_ID = "accumulated.concern"


class PartnerSignals(msgspec.Struct):
    """What one partner's turns have added up to."""

    points: float = 0.0
    turns: int = 0
    flagged_turns: int = 0
    max_severity: Severity = Severity.NONE
    categories: list[str] = msgspec.field(default_factory=list)


class SessionSignals(msgspec.Struct):
    """Per-session accumulation state; JSON-serialisable with msgspec."""

    version: int = 1
    turns: int = 0
    points: float = 0.0
    categories: list[str] = msgspec.field(default_factory=list)
    partners: dict[str, PartnerSignals] = msgspec.field(default_factory=dict)


def _turn_points(verdict: Verdict) -> float:
    rank = verdict.severity.rank
    if rank >= Severity.RISK.rank:
        return DISCLOSURE_POINTS
    if rank == Severity.CONCERN.rank:
        cats = {s.category for s in verdict.signals if s.severity == Severity.CONCERN}
        return CONCERN_MULTI_CATEGORY_POINTS if len(cats) > 1 else CONCERN_POINTS
    return 0.0


def _merge(into: list[str], new: tuple[str, ...]) -> list[str]:
    return sorted(set(into) | set(new))


def accumulate(
    state: SessionSignals | None, partner_id: str, verdict: Verdict
) -> tuple[SessionSignals, Verdict]:
    """Add ``verdict`` (one turn by ``partner_id``) to ``state``.

    Returns the new state (the input is not modified) and the verdict for this turn,
    raised to ``risk`` when the accumulated points reach the threshold.
    """
    old = state if state is not None else SessionSignals()
    partners = {k: msgspec.structs.replace(v) for k, v in old.partners.items()}
    mine = partners.get(partner_id, PartnerSignals())
    points = _turn_points(verdict)
    flagged = verdict.severity.rank >= Severity.CONCERN.rank
    mine = PartnerSignals(
        points=mine.points + points,
        turns=mine.turns + 1,
        flagged_turns=mine.flagged_turns + (1 if flagged else 0),
        max_severity=verdict.severity
        if verdict.severity.rank > mine.max_severity.rank
        else mine.max_severity,
        categories=_merge(mine.categories, verdict.categories),
    )
    partners[partner_id] = mine
    new_state = SessionSignals(
        version=old.version,
        turns=old.turns + 1,
        points=old.points + points,
        categories=_merge(old.categories, verdict.categories),
        partners=partners,
    )
    if verdict.severity != Severity.CONCERN:
        return new_state, verdict
    if mine.points < THRESHOLD and new_state.points < THRESHOLD:
        return new_state, verdict
    own = set(verdict.categories)
    categories = tuple(sorted(own | set(mine.categories)))
    extra = tuple(Signal(ACCUMULATED_ID, cat, Severity.RISK, 0, 0, "") for cat in sorted(own))
    raised = Verdict(
        severity=Severity.RISK,
        categories=categories,
        signals=(*verdict.signals, *extra),
        policy_version=verdict.policy_version,
    )
    return new_state, raised
