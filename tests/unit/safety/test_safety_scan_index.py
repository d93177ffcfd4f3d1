"""The scanner's shortcuts find what a full search would, and verdicts are repeatable.

The trigger index lets a pattern run only when one word of each of its requirement
sets occurs, and short texts are searched whole instead of sentence by sentence. Both
are only sound if every match really holds a word of each set, and if the whole-text
search finds exactly the windows' matches; these tests check that on the lexicon's own
examples, so a new signal that breaks either assumption fails here, not in production.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from safety.engine import LEXICON
from safety.lexicon import CompiledPattern
from safety.patterns import search_words
from safety.scanner import _WINDOW, _Text

ROOT = Path(__file__).resolve().parents[3]
_RUNS = re.compile(r"[a-z]+")


def _pattern_texts() -> list[tuple[str, CompiledPattern, list[str]]]:
    """(owner, pattern, texts the pattern should find something in) for every pattern."""
    out: list[tuple[str, CompiledPattern, list[str]]] = []
    for rule in (*LEXICON.signals, *LEXICON.reply_signals):
        out += [(rule.id, pat, [*rule.examples]) for pat in rule.patterns]
    for esc in LEXICON.escalators:
        out += [(esc.id, pat, [*esc.examples]) for pat in esc.patterns]
    benign = [t for rule in LEXICON.signals for t in rule.benign]
    for ctx in LEXICON.contexts.values():
        out += [(f"context {ctx.name}", pat, benign) for pat in (*ctx.patterns, *ctx.except_patterns)]
    return out


def test_every_match_holds_a_word_of_each_requirement() -> None:
    checked = 0
    wrong: list[str] = []
    for owner, pat, texts in _pattern_texts():
        for original in texts:
            text = LEXICON.normalizer(original).text
            for start, end in search_words(pat.regex, text, 0, len(text)):
                runs = set(_RUNS.findall(text, start, end))
                checked += 1
                for req in pat.requires:
                    if req.isdisjoint(runs):
                        found = text[start:end]
                        wrong.append(f"{owner}: {pat.source!r} matched {found!r} without {sorted(req)}")
    assert checked > 3000  # the examples do exercise the patterns
    assert not wrong, "\n".join(wrong[:20])


def test_a_short_text_searched_whole_finds_what_its_sentence_windows_find() -> None:
    compared = 0
    for _owner, pat, texts in _pattern_texts():
        if not pat.trigger:
            continue
        for original in texts:
            doc = _Text(LEXICON.normalizer(original))
            if len(doc.text) > _WINDOW:
                continue
            present = sorted(pat.trigger & doc.words)
            windows = doc.windows(present)
            windowed = [m for lo, hi in windows for m in search_words(pat.regex, doc.text, lo, hi)]
            assert search_words(pat.regex, doc.text, 0, len(doc.text)) == windowed, (pat.source, original)
            compared += bool(windowed)
    assert compared > 3000


_PROBE = """
import json, sys
from safety import scan, scan_reply
out = []
for text in json.load(sys.stdin):
    for verdict in (scan(text), scan_reply(text, True)):
        out.append([[s.id, s.category, s.severity.value, s.start, s.end] for s in verdict.signals])
print(json.dumps(out))
"""


def test_the_same_text_gets_the_same_signals_in_every_process() -> None:
    # Python salts string hashes per process; signals once came out of a set, so which
    # category an escalator was filed under (and the order of signals at one span)
    # changed from run to run. These two seeds gave different answers for this text.
    case = next(
        json.loads(line)["text"]
        for line in (ROOT / "tests/safety_cases/holdout31.jsonl").read_text().splitlines()
        if "staff toilet" in line
    )
    texts = [case, "He threw a glass at my head when I was pregnant with Maya. Missed. Hit the wall."]
    answers = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
        )
        answers.append(json.loads(done.stdout))
    assert any(sig[0].startswith("escalator.") for sig in answers[0][0])
    assert answers[0] == answers[1]


def test_patterns_are_keyed_on_their_rarest_words_not_their_first() -> None:
    # a class entry such as "i will kill you" or "in fear" is indexed under its rarest
    # word, so ordinary messages full of "i", "in" and "will" try no threat pattern
    kill = next(
        pat
        for rule in LEXICON.signals
        if rule.id == "threats.kill"
        for pat in rule.patterns
        if pat.source == "{threat_verb} ~~ {kill_phrase}"
    )
    assert any("kill" in req for req in kill.requires)
    assert not any(req & {"i", "you", "will", "would"} for req in kill.requires)
    assert not {"the", "in", "have", "i", "you", "will"} & LEXICON.trigger_words
