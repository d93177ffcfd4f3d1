"""Decide whether a lexicon match is cancelled by its surroundings.

Two kinds of check, both driven by data in ``lexicon.yaml``:

* **negation** ("he has never hit me", "she would never hurt me"): a negator among the
  few words before the match (or inside it) cancels it, unless the negator is about
  something else ("I never *told* anyone he hits me", "he never *stops*") or the
  sentence says it happened after all ("he hasn't hit me *since* March", "*anymore*").
* **contexts** (media, sport, figures of speech, playfulness, consent respected,
  hypotheticals...): a context pattern found in the right place cancels the match.
  Scopes: ``overlap`` (the context overlaps the match: "hit me *up*"), ``before``
  (shortly before it: "what if he..."), ``sentence`` (anywhere in the sentence),
  ``around`` (the sentence before, this one and the next: "He took my phone. Kidding,
  it was my idea"), ``third_person`` (this sentence or the one before, and only when
  the match is not about the writer: "in the book he strangles her" but never "he
  choked me").
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Set as AbstractSet

from safety.lexicon import CompiledPattern, Context, Lexicon, Negation, runnable
from safety.patterns import search_words

_TOKEN = re.compile(r"[a-z0-9']+")
_BOUNDARY = re.compile(r"[.!?;\n]")
_LOOKBACK = 120
_CLAUSE_BREAKS = frozenset(
    [
        "and",
        "but",
        "because",
        "cause",
        "cuz",
        "so",
        "then",
        "after",
        "before",
        "if",
        "while",
        "until",
        "that",
        "which",
        "who",
        "or",
        "though",
        "although",
        "when",
        "whenever",
        "since",
    ]
)


class Sentences:
    """Sentence boundaries of a normalised text, computed on first use."""

    __slots__ = ("_ends", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._ends: list[int] | None = None

    def _bounds(self) -> list[int]:
        if self._ends is None:
            self._ends = [m.start() for m in _BOUNDARY.finditer(self._text)]
        return self._ends

    def around(self, pos: int) -> tuple[int, int, int]:
        """(previous sentence start, sentence start, sentence end) around ``pos``."""
        ends = self._bounds()
        i = bisect.bisect_left(ends, pos)
        start = ends[i - 1] + 1 if i > 0 else 0
        end = ends[i] if i < len(ends) else len(self._text)
        prev = ends[i - 2] + 1 if i > 1 else 0
        return prev, start, end

    def next_end(self, pos: int) -> int:
        """End of the sentence after the one around ``pos``."""
        ends = self._bounds()
        i = bisect.bisect_left(ends, pos)
        return ends[i + 1] if i + 1 < len(ends) else len(self._text)


def is_negated(
    neg: Negation,
    text: str,
    s0: int,
    s1: int,
    start: int,
    end: int,
    *,
    inside: bool = True,
) -> bool:
    """True when a negator governs the match ``[start, end)`` in sentence ``[s0, s1)``.

    ``inside=False`` looks only at the words before the match (for signals whose own
    wording contains a negation: "I don't want to be alive").
    """
    before = _TOKEN.findall(text, max(s0, start - _LOOKBACK), start)[-neg.window_words :]
    # a clause break between a negator and the match ends the negator's reach
    for k in range(len(before) - 1, -1, -1):
        if before[k] in _CLAUSE_BREAKS:
            before = before[k + 1 :]
            break
    toks = before + _TOKEN.findall(text, start, end) if inside else before
    negators = neg.negators
    for i, tok in enumerate(toks):
        if tok in negators or (i + 1 < len(toks) and f"{tok} {toks[i + 1]}" in negators):
            if any(n in neg.opaque for n in toks[i + 1 : i + 4]):
                continue
            if _new_subject(neg, toks, i, len(before)):
                continue
            return neg.reversal.search(text, s0, s1) is None
    return False


def clause_start(text: str, s0: int, start: int) -> int:
    """Where the clause holding ``start`` begins in sentence ``[s0, ...)``: after the last
    comma or clause break ("and", "but", "because"...) before it, else the sentence's start."""
    lo = s0
    for m in _TOKEN.finditer(text, s0, start):
        if m.group() in _CLAUSE_BREAKS:
            lo = m.start()
    return max(lo, text.rfind(",", s0, start) + 1)


def words_outside(text: str, spans: list[tuple[int, int]]) -> int:
    """How many words of ``text`` lie outside ``spans``."""
    count, pos = 0, 0
    for lo, hi in sorted(spans):
        if lo > pos:
            count += len(_TOKEN.findall(text, pos, lo))
        pos = max(pos, hi)
    return count + len(_TOKEN.findall(text, pos))


def _new_subject(neg: Negation, toks: list[str], i: int, stop: int) -> bool:
    """A subject between the negator ``toks[i]`` and the match (before ``stop``) starts
    another clause: "I'm not safe at home, he chokes me", "I didn't, she threw a plate".
    Not after an inversion or a word that takes a clause: "never has he hit me", "I'm not
    scared she'll hurt me"."""
    return any(
        toks[j] in neg.new_subjects and toks[j - 1] not in neg.not_a_new_clause_after
        for j in range(i + 1, stop)
    )


def _any_match(
    patterns: tuple[CompiledPattern, ...],
    text: str,
    words: AbstractSet[str],
    lo: int,
    hi: int,
    overlap: tuple[int, int] | None = None,
) -> bool:
    for pat in patterns:
        if not runnable(pat, words):
            continue
        for s, e in search_words(pat.regex, text, lo, hi):
            if overlap is None or (s < overlap[1] and e > overlap[0]):
                return True
    return False


def cancelled_by(
    lex: Lexicon,
    contexts: tuple[Context, ...],
    text: str,
    words: AbstractSet[str],
    sentences: Sentences,
    start: int,
    end: int,
    cache: dict[tuple[str, int, int, int, int], bool] | None = None,
) -> str | None:
    """The name of the first context that cancels the match, if any.

    ``cache`` (one per text) remembers each context's answer for a span, so signals
    matching in the same sentence do not test the same context twice.
    """
    prev, s0, s1 = sentences.around(start)
    first_person: bool | None = None
    for ctx in contexts:
        if ctx.any_trigger is not None and ctx.any_trigger.isdisjoint(words):
            continue
        overlap: tuple[int, int] | None = None
        if ctx.first_person_only:
            if first_person is None:
                tail = []
                for tok in _TOKEN.findall(text, end, min(s1, end + 40))[:3]:
                    if tok in _CLAUSE_BREAKS:
                        break  # "...pulls a gun on her, and I had to look away"
                    tail.append(tok)
                first_person = not lex.first_person.isdisjoint([*_TOKEN.findall(text, start, end), *tail])
            if first_person:
                continue
            lo, hi = (0, len(text)) if ctx.scope == "third_person_text" else (prev, s1)
        elif ctx.scope == "before":
            lo, hi = max(s0, start - _LOOKBACK), end
        elif ctx.scope == "after":
            lo, hi = start, s1
        elif ctx.scope == "around":
            lo, hi = prev, sentences.next_end(start)
        elif ctx.scope == "overlap":
            lo, hi = max(s0, start - _LOOKBACK), min(s1, end + _LOOKBACK)
            overlap = (start, end)
        else:
            lo, hi = s0, s1
        key = (ctx.name, lo, hi, *(overlap or (-1, -1)))
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            # an `around` context's exceptions are looked for as far as its phrases are:
            # "He punched me. He's been doing muay thai for years so it really hurt."
            ehi = hi if ctx.scope == "around" else s1
            hit = _any_match(ctx.patterns, text, words, lo, hi, overlap) and not (
                ctx.except_patterns and _any_match(ctx.except_patterns, text, words, prev, ehi)
            )
            if cache is not None:
                cache[key] = hit
        if hit:
            return ctx.name
    return None


def satisfied(
    contexts: tuple[Context, ...],
    text: str,
    words: AbstractSet[str],
    sentences: Sentences,
    start: int,
    cache: dict[tuple[str, int, int, int, int], bool] | None = None,
) -> bool:
    """True when every context in ``contexts`` occurs in the sentence around ``start``
    (scope ``before``: this sentence or the one before) and none of its ``except:``
    phrases does there ("bought a rope **swing**")."""
    prev, s0, s1 = sentences.around(start)
    for ctx in contexts:
        if ctx.any_trigger is not None and ctx.any_trigger.isdisjoint(words):
            return False
        lo = prev if ctx.scope == "before" else s0
        key = ("needs:" + ctx.name, lo, s1, -1, -1)
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            hit = _any_match(ctx.patterns, text, words, lo, s1) and not (
                ctx.except_patterns and _any_match(ctx.except_patterns, text, words, lo, s1)
            )
            if cache is not None:
                cache[key] = hit
        if not hit:
            return False
    return True
