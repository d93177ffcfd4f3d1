"""Every lexicon signal fires on its examples and stays quiet on its benign lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from safety import ScanContext, Severity, scan
from safety.engine import LEXICON
from safety.lexicon import Lexicon, LexiconError, SignalRule

REPLY = ScanContext(source="reply", after_disclosure=True)


def _examples(rules: tuple[SignalRule, ...]) -> list[tuple[str, str]]:
    return [(r.id, e) for r in rules for e in r.examples]


def _benign(rules: tuple[SignalRule, ...]) -> list[tuple[str, str]]:
    return [(r.id, b) for r in rules for b in r.benign]


def test_every_signal_is_documented_and_exemplified() -> None:
    for rule in (*LEXICON.signals, *LEXICON.reply_signals):
        assert rule.description, rule.id
        assert rule.examples, f"{rule.id} has no examples"
        assert rule.benign, f"{rule.id} has no benign lines"


@pytest.mark.parametrize(("signal_id", "text"), _examples(LEXICON.signals))
def test_signal_fires_on_its_examples(signal_id: str, text: str) -> None:
    verdict = scan(text)
    assert signal_id in {s.id for s in verdict.signals}, [s.id for s in verdict.signals]


@pytest.mark.parametrize(("signal_id", "text"), _benign(LEXICON.signals))
def test_signal_stays_quiet_on_benign_lines(signal_id: str, text: str) -> None:
    verdict = scan(text)
    assert signal_id not in {s.id for s in verdict.signals}
    assert verdict.severity.rank < Severity.RISK.rank, verdict.signals


@pytest.mark.parametrize(("signal_id", "text"), _examples(LEXICON.reply_signals))
def test_reply_signal_fires_on_its_examples(signal_id: str, text: str) -> None:
    assert signal_id in {s.id for s in scan(text, REPLY).signals}


@pytest.mark.parametrize(("signal_id", "text"), _benign(LEXICON.reply_signals))
def test_reply_signal_stays_quiet_on_benign_lines(signal_id: str, text: str) -> None:
    assert signal_id not in {s.id for s in scan(text, REPLY).signals}


@pytest.mark.parametrize("escalator", LEXICON.escalators, ids=lambda e: e.id)
def test_escalator_examples_raise(escalator: object) -> None:
    from safety.lexicon import Escalator

    assert isinstance(escalator, Escalator)
    for text in escalator.examples:
        ids = {s.id for s in scan(text).signals}
        assert escalator.id in ids, (text, ids)


@pytest.mark.parametrize(
    "text",
    [
        "he has never hit me",
        "He would never hurt me.",
        "My wife has never laid a finger on me.",
        "a crime show where the husband strangles his wife",
        "in the book he strangles her",
        "she beat me at chess",
        "he killed it at karaoke",
        "she tackled me into the pool laughing",
        "this commute is killing me",
        "I'd kill for a coffee",
        "work is strangling our weekends",
        "she'll kill me if I forget the milk haha",
        "I'd die for my kids",
        "we both share locations, it's mutual",
        "Awareness week: one in four women experience domestic abuse.",
        "He slammed the door because he was late, then apologised.",
        "She rolled her eyes at my joke.",
        "He raised his voice and apologised after.",
        "She'd hunt me down if I spoiled the finale.",
        "Shoot me now, we're hosting both families for Easter.",
        "she slapped my hand away from the cookie dough",
        "I've written letters to my kids to open on their 18th birthdays.",
    ],
)
def test_brief_negatives_stay_below_risk(text: str) -> None:
    assert scan(text).severity.rank < Severity.RISK.rank


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my ex used to choke me", Severity.DANGER),
        ("hands around my neck", Severity.DANGER),
        ("he grabbed me by the throat", Severity.DANGER),
        ("she squeezed my throat", Severity.DANGER),
        ("I was choked", Severity.DANGER),
        ("he's been hitting me", Severity.RISK),
        ("got hit again last night", Severity.RISK),
        ("how do I help a friend whose husband hits her", Severity.RISK),
        ("I shoved her into the wall", Severity.RISK),
        ("hes been hittin me n idk wat to do", Severity.RISK),
        ("he CHOAKED me", Severity.DANGER),
        ("he strangeld me last nite", Severity.DANGER),
        ("she thretened to kill me", Severity.DANGER),
        ("im thinking about suicde", Severity.RISK),
        ("She threatened to hurt my cat if I stayed out late again.", Severity.RISK),
        (
            "He said he'd bought a rope and hidden it behind the lawnmower for when I'm at work.",
            Severity.DANGER,
        ),
    ],
)
def test_brief_positives(text: str, expected: Severity) -> None:
    assert scan(text).severity.rank >= expected.rank


def test_around_scope_reads_the_next_sentence() -> None:
    """An arrangement explained in the next sentence cancels the match ("around")."""
    assert not scan("He took away my phone at dinner. Kidding, it was my idea.").is_disclosure
    assert scan("He took away my phone at dinner. I hate it.").is_disclosure


def test_third_person_tail_stops_at_a_clause_break() -> None:
    """'...pulls a gun on her, and I had to look away' is about the film, not the writer."""
    assert not scan("In the film the boyfriend pulls a gun on her and I had to cover my eyes.").is_disclosure


def test_a_stated_role_frames_the_whole_text_but_never_the_writer() -> None:
    """'I'm a paramedic' early on makes a later stranger's strangulation part of the job;
    the writer's own account, or a sister's, is still a disclosure."""
    job = "I'm a paramedic and the nights are long. Last night he had strangled her in front of the kids."
    assert not scan(job).is_disclosure
    own = "I'm a paramedic and the nights are long. Last night my boyfriend strangled me."
    assert scan(own).severity is Severity.DANGER
    sister = "I'm a paramedic and the nights are long. Last night my sister's husband strangled her."
    assert scan(sister).severity is Severity.DANGER
    no_role = "The nights are long. Last night he had strangled her in front of the kids."
    assert scan(no_role).is_disclosure


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        # "a b|c" was once read as one sequence needing a word of every branch, so an
        # except like "... (breathe|get a breath)|genuinely|terrified" never ran unless
        # all of them occurred: each branch must be its own line
        ("\"(couldn't|could not|can't|cannot) (breathe|get a breath)\"", r"playful.*outside brackets"),
        # a class word is compiled like a pattern, so it would be as ambiguous
        ("\"(not|wasn't|isn't|weren't|never) joking\"", r"class earnest.*outside brackets"),
    ],
)
def test_a_bar_outside_brackets_is_refused_at_load(data_copy: Path, line: str, refused: str) -> None:
    lex = data_copy / "lexicon.yaml"
    text = lex.read_text(encoding="utf-8")
    assert text.count(line) == 1
    lex.write_text(text.replace(line, line[:-1] + '|kidding"'), encoding="utf-8")
    with pytest.raises(LexiconError, match=refused):
        Lexicon.load(data_copy)
