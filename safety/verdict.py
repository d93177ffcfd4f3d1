"""The values a scan returns: signals, verdicts and the scan context."""

from __future__ import annotations

from typing import Literal

import msgspec

from safety.severity import Severity

#: Category for problems found in a model reply rather than in a person's message.
UNSAFE_REPLY = "unsafe_reply"

CATEGORIES: tuple[str, ...] = (
    "physical_abuse",
    "sexual_coercion",
    "coercive_control",
    "emotional_abuse",
    "threats",
    "stalking",
    "child_safety",
    "self_harm",
    "harm_to_others",
    UNSAFE_REPLY,
)


class Signal(msgspec.Struct, frozen=True):
    """One lexicon signal found in a text; ``start``/``end`` index the original text."""

    id: str
    category: str
    severity: Severity
    start: int
    end: int
    text: str


class Verdict(msgspec.Struct, frozen=True):
    """The result of a scan: the most serious severity and what was found."""

    severity: Severity
    categories: tuple[str, ...]
    signals: tuple[Signal, ...]
    policy_version: str
    #: the lexicon found signals only where a negation governs them and the text says
    #: nothing else ("He has never hit me."): ``none``, and no second stage is asked
    negated_only: bool = False
    #: the whole message is general talk about abuse or suicide (an advice page, a
    #: definition, a news report; ``general_talk`` in the lexicon), not the writer's own
    #: account: its signals are kept at ``concern`` at most, and no second stage is asked
    general_talk: bool = False

    @property
    def is_disclosure(self) -> bool:
        """True at ``risk`` or ``danger``: the coach stops coaching and offers help."""
        return self.severity.rank >= Severity.RISK.rank

    @property
    def leading_categories(self) -> tuple[str, ...]:
        """The categories of the signals at ``risk`` or above, or all categories when no
        such signal has one (a verdict raised by a stage that names no category).

        The help message and the author-of-harm check follow these, so a ``concern``
        beside a disclosure ("I feel worthless" after "he hits me") does not turn an
        abuse disclosure's help into the self-harm message."""
        leading = {s.category for s in self.signals if s.severity.rank >= Severity.RISK.rank and s.category}
        return tuple(sorted(leading)) if leading else self.categories

    @property
    def is_author_of_harm(self) -> bool:
        """True when the author says they harm (or want to harm) someone."""
        return "harm_to_others" in self.leading_categories


class ScanContext(msgspec.Struct, frozen=True):
    """Where a text comes from; ``reply`` adds the model-reply checks."""

    source: Literal["message", "reply"] = "message"
    country: str | None = None
    after_disclosure: bool = False


def make_verdict(
    signals: list[Signal] | tuple[Signal, ...],
    policy_version: str,
    *,
    negated_only: bool = False,
    general_talk: bool = False,
) -> Verdict:
    """Build a verdict from signals (ordered by position, duplicates removed)."""
    unique = sorted(set(signals), key=lambda s: (s.start, s.end, s.id, s.category, s.severity.rank))
    severity = Severity.NONE
    for sig in unique:
        if sig.severity.rank > severity.rank:
            severity = sig.severity
    categories = tuple(sorted({s.category for s in unique if s.severity.rank > 0}))
    return Verdict(severity, categories, tuple(unique), policy_version, negated_only, general_talk)
