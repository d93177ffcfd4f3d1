"""The second stage's pure half: a classifier answer is checked, and can only raise a verdict."""

from __future__ import annotations

import itertools

import pytest

from safety import (
    CLASSIFICATION_SCHEMA,
    POLICY_VERSION,
    Classification,
    InvalidClassification,
    Severity,
    Signal,
    Verdict,
    combine,
    parse_classification,
    scan,
)
from safety.second_stage import MESSAGE_CATEGORIES
from safety.verdict import make_verdict

STRANGLED = "Last night he put his hands around my throat and squeezed until I couldn't breathe."


def verdict_at(severity: Severity, category: str = "emotional_abuse") -> Verdict:
    if severity is Severity.NONE:
        return make_verdict([], POLICY_VERSION)
    return make_verdict([Signal("lexicon.test", category, severity, 3, 9, "words")], POLICY_VERSION)


# -- parsing ---------------------------------------------------------------------------


def test_a_well_formed_answer_is_read() -> None:
    answer = '{"severity": "danger", "categories": ["threats", "physical_abuse", "threats"]}'
    got = parse_classification(answer)
    assert got == Classification(Severity.DANGER, ("physical_abuse", "threats"))


def test_a_code_fence_and_extra_keys_are_tolerated() -> None:
    answer = '```json\n{"severity": "risk", "categories": ["stalking"], "why": "tracking"}\n```'
    assert parse_classification(answer) == Classification(Severity.RISK, ("stalking",))


@pytest.mark.parametrize(
    "answer",
    [
        '{"severity": "extreme", "categories": []}',  # unknown severity
        '{"severity": "RISK", "categories": []}',  # severities are exact
        '{"severity": "risk", "categories": ["rudeness"]}',  # unknown category
        '{"severity": "risk", "categories": ["unsafe_reply"]}',  # reply-only category
        '{"severity": "risk", "categories": "stalking"}',
        '{"categories": ["stalking"]}',
        "[]",
        "danger",
        "I can't help with that.",
        "",
    ],
)
def test_anything_else_is_an_invalid_classification(answer: str) -> None:
    with pytest.raises(InvalidClassification):
        parse_classification(answer)


def test_the_schema_offers_exactly_what_the_parser_accepts() -> None:
    props = CLASSIFICATION_SCHEMA["properties"]
    assert props["severity"]["enum"] == ["none", "concern", "risk", "danger"]
    assert props["categories"]["items"]["enum"] == list(MESSAGE_CATEGORIES)
    assert "unsafe_reply" not in MESSAGE_CATEGORIES
    for category in MESSAGE_CATEGORIES:
        parse_classification(f'{{"severity": "risk", "categories": ["{category}"]}}')


# -- combining ---------------------------------------------------------------------------


def test_the_classifier_raises_a_message_the_lexicon_missed() -> None:
    first = scan("We had dinner and then watched a film.")
    assert first.severity is Severity.NONE
    got = combine(first, Classification(Severity.DANGER, ("physical_abuse", "threats")))
    assert got.severity is Severity.DANGER and got.is_disclosure
    assert got.categories == ("physical_abuse", "threats")
    assert [(s.id, s.category, s.start, s.end, s.text) for s in got.signals] == [
        ("classifier.danger", "physical_abuse", 0, 0, ""),
        ("classifier.danger", "threats", 0, 0, ""),
    ]
    assert got.policy_version == first.policy_version


def test_the_classifier_cannot_lower_a_lexicon_finding() -> None:
    first = scan(STRANGLED)
    assert first.severity is Severity.DANGER
    assert combine(first, Classification(Severity.NONE, ())) == first
    assert combine(first, Classification(Severity.RISK, ("emotional_abuse",))) == first


def test_no_classification_leaves_the_verdict_as_it_was() -> None:
    first = scan(STRANGLED)
    assert combine(first, None) is first


@pytest.mark.parametrize(("a", "b"), list(itertools.product(Severity, Severity)))
def test_the_combined_severity_is_the_higher_of_the_two(a: Severity, b: Severity) -> None:
    first = verdict_at(a)
    got = combine(first, Classification(b, ("stalking",) if b is not Severity.NONE else ()))
    assert got.severity.rank == max(a.rank, b.rank)
    assert set(first.categories) <= set(got.categories)
    assert got.signals[: len(first.signals)] == first.signals


def test_an_equally_serious_classification_adds_its_categories() -> None:
    first = verdict_at(Severity.RISK, "physical_abuse")
    got = combine(first, Classification(Severity.RISK, ("coercive_control", "physical_abuse")))
    assert got.severity is Severity.RISK
    assert got.categories == ("coercive_control", "physical_abuse")
    assert [(s.id, s.category) for s in got.signals[1:]] == [("classifier.risk", "coercive_control")]


def test_a_less_serious_classification_adds_nothing() -> None:
    first = verdict_at(Severity.RISK, "physical_abuse")
    assert combine(first, Classification(Severity.CONCERN, ("emotional_abuse",))) == first


def test_a_none_classification_adds_no_categories() -> None:
    first = verdict_at(Severity.NONE)
    assert combine(first, Classification(Severity.NONE, ("threats",))) == first


def test_a_raise_without_categories_still_shows_where_it_came_from() -> None:
    got = combine(verdict_at(Severity.NONE), Classification(Severity.RISK, ()))
    assert got.severity is Severity.RISK and got.categories == ()
    assert [s.id for s in got.signals] == ["classifier.risk"]
