"""General talk about abuse or suicide, as a whole message, is not a disclosure (session
thirty, ``general_talk`` in lexicon.yaml; judged on real writing, bench/real_text/set2).

A message of at least 300 characters that never mentions the writer (no I, me, my, we,
us, our...) and reads as a news or court report, a definition, the law, research or
people in general keeps its signals at ``concern`` and is not put to a second stage.
Anything about the writer or someone of theirs, any short message, and any model reply
is read as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safety import Severity, scan, stage_applies
from safety.lexicon import Lexicon, LexiconError
from safety.scanner import scan_with
from safety.verdict import ScanContext

REPORT = (
    "A man from Lowbridge was jailed for four years on Friday after he strangled his partner "
    "in their kitchen and held a knife to her throat. The court heard that she passed out and "
    "was found on the floor by a neighbour. Domestic abuse charities say strangulation is one "
    "of the strongest warning signs that an abuser may one day kill."
)
DEFINITION = (
    "Coercive control is a pattern of behaviour that takes away a person's freedom. It can "
    "look like checking a partner's phone every night, deciding who they may see, taking "
    "their bank cards or their passport, and threatening to hurt them if they leave. Under "
    "the law in several countries it is a crime, even where nobody is hit, and survivors "
    "often say it was worse than the violence."
)


@pytest.mark.parametrize("text", [REPORT, DEFINITION])
def test_a_pasted_report_or_definition_is_concern_with_its_signals_kept(text: str) -> None:
    before = scan(text[:299])  # too short to be read as general talk: the plain scan
    verdict = scan(text)
    assert before.is_disclosure and not before.general_talk
    assert verdict.general_talk and verdict.severity is Severity.CONCERN
    # what matched stays for counselors, at concern
    assert {s.id for s in verdict.signals} >= {s.id for s in before.signals if s.start < 299}
    assert all(s.severity is Severity.CONCERN for s in verdict.signals if s.severity.rank)
    assert not stage_applies(verdict, "learned")
    assert not stage_applies(verdict, "classifier")


@pytest.mark.parametrize(
    "text",
    [
        REPORT.replace("A man from Lowbridge", "My sister's husband"),
        REPORT.replace("Domestic abuse charities say", "We all know"),
        DEFINITION + " That is what he does to me.",
        DEFINITION.replace("It can look like", "For us it looked like"),
    ],
)
def test_a_text_that_mentions_the_writer_is_read_as_before(text: str) -> None:
    verdict = scan(text)
    assert not verdict.general_talk
    assert verdict.is_disclosure


def test_a_long_worry_about_someone_named_without_the_writer_is_still_a_disclosure() -> None:
    # no "I" or "my", but none of the phrases of a report, a definition or research
    text = (
        "Update on Dana. Her husband took her phone again and will not let her see anyone, "
        "she is not allowed out without him, and last night he put his hands around her "
        "throat when she tried to leave for her mum's. She says it was the first time. She is "
        "staying at a friend's place tonight but has to go back for the kids tomorrow."
    )
    assert len(text) >= 300
    verdict = scan(text)
    assert not verdict.general_talk
    assert verdict.severity is Severity.DANGER


def test_short_messages_without_the_writer_are_read_as_before() -> None:
    # a phrase of a report ("police said"), but a chat message's length
    text = "He held a knife to her throat last night. Police said she should press charges."
    verdict = scan(text)
    assert not verdict.general_talk
    assert verdict.severity is Severity.DANGER


def test_a_model_reply_is_never_general_talk() -> None:
    verdict = scan(REPORT, ScanContext(source="reply"))
    assert not verdict.general_talk
    assert verdict.is_disclosure


def test_writer_words_must_be_plain_words(data_copy: Path) -> None:
    lex = data_copy / "lexicon.yaml"
    text = lex.read_text(encoding="utf-8")
    line = "  writer_words: [i, me, my,"
    assert text.count(line) == 1
    lex.write_text(text.replace(line, '  writer_words: ["i\'m", me, my,'), encoding="utf-8")
    with pytest.raises(LexiconError, match="writer_words"):
        Lexicon.load(data_copy)


def test_without_the_section_nothing_is_general_talk(data_copy: Path) -> None:
    lex = data_copy / "lexicon.yaml"
    text = lex.read_text(encoding="utf-8")
    lex.write_text(text[: text.index("\ngeneral_talk:")] + "\n", encoding="utf-8")
    verdict = scan_with(Lexicon.load(data_copy), REPORT)
    assert not verdict.general_talk and verdict.severity is Severity.DANGER


WHY_THEY_STAY = (
    'Why do people stay? Fear comes first. Someone who hears "If you try to leave, I will kill '
    'you" every week has good reason to believe it, and leaving is often the most dangerous '
    "time. Money is next: an abuser may control every account. Children, shame, love and "
    "immigration status follow. The most common reasons overlap, and survivors often name "
    "several at once."
)


def test_quoted_speech_is_somebody_elses_words() -> None:
    # the only "I" is inside quotation marks: an advice page quoting a threat
    assert len(WHY_THEY_STAY) >= 300
    verdict = scan(WHY_THEY_STAY)
    assert verdict.general_talk and verdict.severity is Severity.CONCERN
    assert any(s.category == "threats" for s in verdict.signals)


def test_the_writer_outside_the_quotes_is_still_the_writer() -> None:
    told = WHY_THEY_STAY.replace("Someone who hears", "My husband says")
    verdict = scan(told)
    assert not verdict.general_talk and verdict.severity is Severity.DANGER
