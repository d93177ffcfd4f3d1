"""A text that says nothing but a negated signal is not put to a second stage (round
thirty-five, bench/learned_stage/RETRAIN.md).

The learned stage can only raise, and it read "he has never hit me" as risk: most texts
that start so go on "...but he blocks the door", and it had learned that. The lexicon
marks a text whose only matches were negated and which has fewer than five words outside
those matches' clauses (``negated_only``); neither stage is asked about it. A negation
with more said around it is still read, and a qualifier that says it happens after all
("never in front of the kids") is no negation.
"""

from __future__ import annotations

import pytest

from safety import Severity, scan, stage_applies


@pytest.mark.parametrize(
    "text",
    [
        "He has never hit me.",
        "He has never hit me and never would.",
        "He would never hit me.",
        "He's never been violent with me.",
        "No, he has never threatened me.",
        "I would never hurt myself, I promise.",
    ],
)
def test_a_negated_signal_alone_is_not_put_to_a_second_stage(text: str) -> None:
    verdict = scan(text)
    assert verdict.severity is Severity.NONE and verdict.negated_only
    assert not stage_applies(verdict, "learned")
    assert not stage_applies(verdict, "classifier")


@pytest.mark.parametrize(
    "text",
    [
        # more is said beside the negation: the stage reads it all
        "So the thing is, he doesn't hit me. He just stands really close and blocks the door.",
        "He's not violent but he's broken my laptop, my phone and the bedroom door.",
        "I didn't want to and he said fine, then sulked for three days till I gave in.",
        # no signal at all, negated or not
        "We never argue about the bins any more.",
    ],
)
def test_a_negation_with_more_said_is_still_put_to_the_stage(text: str) -> None:
    verdict = scan(text)
    assert not verdict.negated_only
    assert stage_applies(verdict, "learned")


@pytest.mark.parametrize(
    "text",
    [
        "He never hits me in front of the kids.",
        "He never hits me in the face.",
        "He never hits me where it shows.",
        "She's never hit me sober.",
        "He has never hit me in public.",
        "He's never hit me with a closed fist.",
    ],
)
def test_a_qualifier_that_says_it_happens_is_no_negation(text: str) -> None:
    verdict = scan(text)
    assert verdict.is_disclosure and not verdict.negated_only


@pytest.mark.parametrize(
    "text",
    [
        "He has never hit me, he works hard and loves us.",
        "He has never hurt me, he's been sober for three years.",
        "He never hit me. Not once, not in front of the kids, not ever.",
    ],
)
def test_the_qualifiers_do_not_turn_a_denial_into_a_disclosure(text: str) -> None:
    assert scan(text).severity is Severity.NONE


def test_a_verdict_that_says_so_reads_back_the_same() -> None:
    import msgspec

    from safety import Verdict

    verdict = scan("He has never hit me.")
    assert msgspec.json.decode(msgspec.json.encode(verdict), type=Verdict) == verdict
    earlier = msgspec.json.encode(
        {"severity": "none", "categories": [], "signals": [], "policy_version": "x"}
    )
    assert msgspec.json.decode(earlier, type=Verdict).negated_only is False
