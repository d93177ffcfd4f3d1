"""Negation and frames end where a new clause or sentence says otherwise (2026-12-05).

A negator used to reach any match within six words, across a comma and a new subject:
"I'm not safe at home, he chokes me" scanned as none. And an `around` frame (a martial
art named in the next sentence) could cancel a match although that same next sentence
said why it was not one: its exceptions were only looked for up to this sentence.
"""

from __future__ import annotations

import pytest

from safety import Severity, scan


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("I'm not safe at home, he chokes me when he's drunk", Severity.DANGER),
        ("nobody came, he strangled me till i blacked out", Severity.DANGER),
        ("he didn't hit me, he punched me", Severity.RISK),
        ("Last time I didn't, she slapped me and scratched my face.", Severity.RISK),
        ("He punched me. He's been doing muay thai for years so it really hurt.", Severity.RISK),
    ],
)
def test_a_new_clause_is_not_negated_or_framed(text: str, severity: Severity) -> None:
    assert scan(text).severity is severity


@pytest.mark.parametrize(
    "text",
    [
        "never has he hit me",
        "not once did she hurt me",
        "he has never hit me",
        "I'm not scared she'll really hurt me, I'm just tired.",
        "I'm not saying he hits me, he doesn't",
        "At jiu jitsu tonight my partner choked me out twice, I tapped fast",
    ],
)
def test_negation_and_frames_still_hold_within_a_clause(text: str) -> None:
    assert not scan(text).is_disclosure


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        # round thirty-six: a negation before a restriction cancels it...
        ("She never stops me seeing my friends, she actually pushes me to go out more.", Severity.NONE),
        ("He's not stopping me from seeing my mum, we just live four hours away.", Severity.NONE),
        ("He didn't lock me out, the door jammed and he was as annoyed as I was.", Severity.NONE),
        # ...and one inside it is the restriction itself
        ("I'm not allowed to leave the house without telling him where.", Severity.RISK),
        ("He won't let me see my friends.", Severity.RISK),
        ("He never lets me have my own money.", Severity.RISK),
        ("She stops me from seeing my sister and I don't know why.", Severity.RISK),
    ],
)
def test_a_restriction_is_negated_only_from_before_it(text: str, severity: Severity) -> None:
    assert scan(text).severity is severity
