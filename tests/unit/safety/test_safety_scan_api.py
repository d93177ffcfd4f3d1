"""The public API: types, spans in the original text, normalisation, long input."""

from __future__ import annotations

import msgspec
import pytest

import safety
from safety import (
    POLICY_VERSION,
    Resource,
    ScanContext,
    SessionSignals,
    Severity,
    Signal,
    Verdict,
    accumulate,
    country_name,
    max_severity,
    resources_for,
    scan,
    scan_reply,
)


def test_public_names_are_exported() -> None:
    for name in (
        "Severity",
        "Signal",
        "Verdict",
        "ScanContext",
        "scan",
        "SessionSignals",
        "accumulate",
        "Resource",
        "resources_for",
        "country_name",
        "POLICY_VERSION",
        "scan_reply",
        "max_severity",
    ):
        assert hasattr(safety, name), name
    assert callable(accumulate) and callable(resources_for) and callable(country_name)
    assert Resource and SessionSignals


def test_severity_order_and_helpers() -> None:
    assert [s.rank for s in Severity] == [0, 1, 2, 3]
    assert Severity("danger") is Severity.DANGER
    assert max_severity(Severity.CONCERN, Severity.DANGER, Severity.RISK) is Severity.DANGER
    assert max_severity() is Severity.NONE


def test_verdict_shape() -> None:
    v = scan("He punched me and then he choked me until I nearly passed out.")
    assert isinstance(v, Verdict)
    assert v.severity is Severity.DANGER
    assert v.is_disclosure
    assert v.categories == tuple(sorted(set(v.categories)))
    assert "physical_abuse" in v.categories
    assert v.policy_version == POLICY_VERSION
    assert all(isinstance(s, Signal) for s in v.signals)
    decoded = msgspec.json.decode(msgspec.json.encode(v), type=Verdict)
    assert decoded == v


def test_clean_text_is_none() -> None:
    v = scan("We had a lovely walk by the river and talked about our plans.")
    assert v.severity is Severity.NONE
    assert v.signals == () and v.categories == ()
    assert not v.is_disclosure


@pytest.mark.parametrize(
    "text",
    [
        "He \u201cjust\u201d  CHOAKED   me last night \u2014 I cant breathe properly",
        "So yeah.\n\nhe grabbed   me by the THROAT and i couldnt talk",
        "im scared, hes been hittin me n punchd me 2day",
        "Sooooo he chooooked me",
    ],
)
def test_spans_point_at_the_original_text(text: str) -> None:
    v = scan(text)
    assert v.severity.rank >= Severity.RISK.rank, text
    for sig in v.signals:
        if sig.end > sig.start:
            assert text[sig.start : sig.end] == sig.text
            assert 0 <= sig.start < sig.end <= len(text)


@pytest.mark.parametrize(
    "text",
    [
        "he\tchoked me\tlast night",  # tabs (ASCII, rewritten)
        "he won`t let me see my friends",  # a backtick for an apostrophe
        "he choked me\U0001f622 last night",  # an emoji right after a word
        "caf\u00e9 was closed and then he choked me",  # an accented letter elsewhere
        "he\u00a0choked\u00a0me",  # no-break spaces
    ],
)
def test_words_are_found_however_the_text_is_encoded(text: str) -> None:
    # ASCII texts take a faster path to their words than others: both must find them
    assert scan(text).severity.rank >= Severity.RISK.rank, text
    assert scan(text.replace("choked", "hugged").replace("won`t let me", "let me")).severity is Severity.NONE


def test_span_of_a_misspelling_covers_the_typed_word() -> None:
    text = "last night he choaked me"
    v = scan(text)
    sig = next(s for s in v.signals if s.id == "physical.strangulation")
    assert "choaked" in sig.text
    assert text[sig.start : sig.end] == sig.text


def test_apostrophes_and_texting_are_normalised() -> None:
    for text in ("he wont let me see my friends", "he won\u2019t let me see my friends"):
        assert scan(text).severity is Severity.RISK, text
    assert scan("my bf hits me").severity is Severity.RISK
    assert scan("u said ur gf hits u").severity is Severity.NONE


def test_very_long_input_works_and_finds_a_buried_disclosure() -> None:
    filler = "We talked about the holidays and the kids' schedules, it was fine. " * 1500
    text = filler + " Last week he strangled me in the kitchen. " + filler
    assert len(text) > 100_000
    v = scan(text)
    assert v.severity is Severity.DANGER
    sig = next(s for s in v.signals if s.id == "physical.strangulation")
    assert text[sig.start : sig.end] == sig.text


def test_long_benign_text_stays_none() -> None:
    text = "Honestly this commute is killing me and we argue about chores. " * 2000
    assert scan(text).severity.rank < Severity.RISK.rank


def test_scan_context_reply_equals_scan_reply() -> None:
    text = "What did you do to provoke him?"
    assert scan(text, ScanContext(source="reply")) == scan_reply(text)
    assert scan(text).severity is Severity.NONE
    assert scan_reply(text).severity is Severity.RISK


def test_scan_context_defaults() -> None:
    ctx = ScanContext()
    assert ctx.source == "message" and ctx.country is None and not ctx.after_disclosure


def test_author_of_harm_is_marked() -> None:
    v = scan("I slapped my girlfriend last night and I feel sick about it.")
    assert v.is_disclosure
    assert v.is_author_of_harm
    assert not scan("My girlfriend slapped me.").is_author_of_harm


def test_pregnancy_raises_violence_to_danger() -> None:
    assert scan("He kicked me.").severity is Severity.RISK
    assert scan("He kicked me while I was pregnant.").severity is Severity.DANGER
    assert scan("He kicked me. I'm not pregnant though.").severity is Severity.RISK


def test_spans_do_not_depend_on_the_process_hash_seed() -> None:
    # a counselor reviewing a flagged message sees the same highlighted words whichever
    # process scanned it (set order changes with PYTHONHASHSEED)
    import os
    import subprocess
    import sys

    code = (
        "from safety import scan\n"
        "for t in ["
        '"my husband keeps saying he\'s going to kill me one of these days", '
        "'He checks my phone every night and reads all my messages.', "
        "'i keep googling the easiest way to die']:\n"
        "    print([(s.id, s.start, s.end) for s in scan(t).signals])\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3, 4)
    }
    assert len(outputs) == 1, outputs
    assert "('threats.kill', 11, 45)" in outputs.pop()
