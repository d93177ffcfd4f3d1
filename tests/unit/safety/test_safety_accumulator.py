"""Policy rule 4: mild signals add up over a session, never lowering a verdict."""

from __future__ import annotations

import msgspec

from safety import SessionSignals, Severity, Verdict, accumulate, scan

MILD = [
    "I feel like I'm walking on eggshells around him.",
    "He lies to me all the time about money.",
    "I feel so hopeless lately.",
]


def test_mild_messages_are_concern() -> None:
    for text in MILD:
        assert scan(text).severity is Severity.CONCERN, text


def test_three_mild_messages_from_one_partner_add_up_to_risk() -> None:
    state = None
    results: list[Verdict] = []
    for text in MILD:
        state, v = accumulate(state, "a", scan(text))
        results.append(v)
    assert [v.severity for v in results[:2]] == [Severity.CONCERN, Severity.CONCERN]
    assert results[2].severity is Severity.RISK
    assert results[2].is_disclosure
    assert any(s.id == "accumulated.concern" for s in results[2].signals)


def test_mild_messages_across_both_partners_add_up() -> None:
    state, v1 = accumulate(None, "a", scan(MILD[0]))
    state, v2 = accumulate(state, "b", scan(MILD[1]))
    state, v3 = accumulate(state, "a", scan(MILD[2]))
    assert v1.severity is Severity.CONCERN and v2.severity is Severity.CONCERN
    assert v3.severity is Severity.RISK


def test_never_lowers_and_none_turns_are_not_raised() -> None:
    state, v = accumulate(None, "a", scan("He choked me."))
    assert v.severity is Severity.DANGER
    state, v = accumulate(state, "a", scan("We had pasta for dinner."))
    assert v.severity is Severity.NONE
    state, v = accumulate(state, "a", scan(MILD[0]))
    assert v.severity is Severity.RISK  # mild after a disclosure


def test_state_round_trips_through_json() -> None:
    state, _ = accumulate(None, "a", scan(MILD[0]))
    state, _ = accumulate(state, "b", scan(MILD[1]))
    raw = msgspec.json.encode(state)
    back = msgspec.json.decode(raw, type=SessionSignals)
    assert back == state
    back, v = accumulate(back, "a", scan(MILD[2]))
    assert v.severity is Severity.RISK


def test_accumulate_does_not_mutate_its_input() -> None:
    state, _ = accumulate(None, "a", scan(MILD[0]))
    before = msgspec.json.encode(state)
    accumulate(state, "a", scan(MILD[1]))
    assert msgspec.json.encode(state) == before
