"""Normalise how people type, keeping a map back to the original offsets.

What changes (all data-driven by ``data/normalize.yaml`` except the first three):

* case (``str.lower``, kept length-preserving), curly quotes/apostrophes and dashes;
* tabs and other odd spaces become plain spaces (runs are left alone: the patterns
  allow any run of spaces between words);
* letters repeated three or more times (``sooo``, ``hiiiit``) collapse to one letter when
  that gives a word the lexicon knows, otherwise to two;
* whole words from the ``words`` table: contractions typed without an apostrophe
  (``im``, ``dont``, ``hes``), texting (``bf``, ``u``, ``ur``, ``idk``) and common
  misspellings (``choaked``, ``strangeld``, ``suicde``).

The normalised text keeps sentence punctuation, so the scanner can still tell
sentences apart. :class:`Normalized` maps a span of the normalised text back to the
span of the original text it came from.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping

_TRANSLATE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u00b4": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2010": "-",
        "\u2011": "-",
        "\u00a0": " ",
        "\t": " ",
        "\r": "\n",
        "\f": " ",
        "\v": " ",
        "\u200b": " ",
        "\u200c": " ",
        "\u200d": " ",
        "\u2028": "\n",
        "\u2029": "\n",
    }
)

#: the ASCII characters _TRANSLATE changes (an ASCII text without them needs no pass)
_ASCII_ODD = tuple(k for k in map(chr, _TRANSLATE) if k.isascii())
#: every byte but a-z to a space: ``split()`` then gives the ``[a-z]+`` runs of ASCII text
_LETTER_RUNS = bytes(c if 97 <= c <= 122 else 32 for c in range(256))

#: three of one character in a row; searched in the text's distinct words joined by
#: single spaces, where only letters can repeat (faster than ``([a-z])\1\1`` in the text)
_TRIPLE = re.compile(r"(.)\1\1")
_LETTERS = re.compile(r"[a-z]+")
_RUN = re.compile(r"([a-z])\1{2,}")


def alternation(words: Iterable[str]) -> str:
    """A regex alternation of literal ``words``, factored as a trie (fast in ``re``)."""
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def render(node: dict) -> str:  # type: ignore[type-arg]
        ends = "" in node
        branches = [re.escape(ch) + render(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?"
        return body

    return render(trie)


class Normalized:
    """A normalised text plus the map back to the original text."""

    __slots__ = ("_norm_starts", "_segments", "original", "text", "words")

    def __init__(
        self,
        original: str,
        text: str,
        segments: list[tuple[int, int, int, int]],
        words: set[str] | None = None,
    ) -> None:
        self.original = original
        self.text = text
        #: the letter runs (``[a-z]+``) of ``text`` when already computed, else None
        self.words = words
        # (norm_start, norm_end, orig_start, orig_end) of every changed stretch
        self._segments = segments
        self._norm_starts = [s[0] for s in segments]

    def _to_original(self, pos: int, *, end: bool) -> int:
        i = bisect.bisect_right(self._norm_starts, pos if not end else pos - 1) - 1
        if i < 0:
            return pos
        _n0, n1, o0, o1 = self._segments[i]
        probe = pos - 1 if end else pos
        if probe < n1:
            return o1 if end else o0
        return o1 + (pos - n1)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original-text span of the normalised span ``[start, end)``."""
        if end <= start:
            o = self._to_original(start, end=False)
            return o, o
        return self._to_original(start, end=False), self._to_original(end, end=True)


class Normalizer:
    """Compiled normalisation tables (build once, use from any thread)."""

    def __init__(self, words: Mapping[str, str], vocabulary: Iterable[str]) -> None:
        self._words = {k.lower(): v.lower() for k, v in words.items()}
        self._keys = frozenset(self._words)
        # a key of plain letters can only match a whole letter run of the text; the few
        # other keys ("b4", "gf's") are looked for as substrings, and only when their
        # longest letter run is a word of the text (it is when the key starts a word)
        self._plain_keys = frozenset(k for k in self._keys if _LETTERS.fullmatch(k))
        self._other_keys = tuple(
            (max(_LETTERS.findall(k), key=len, default=""), k)
            for k in self._keys
            if k not in self._plain_keys
        )
        self._vocab = frozenset(vocabulary) | frozenset(self._words.values())
        word_alt = alternation(sorted(self._words))
        # no leading look-behind: it makes ``re`` try every position slowly; the word
        # start is checked in Python instead
        base = r"(?P<w>" + word_alt + r")(?![\w'])"
        self._main = re.compile(base)
        self._main_rep = re.compile(r"(?P<rep>[a-z']*([a-z])\2\2[a-z']*)|" + base)

    def _collapse(self, word: str) -> str:
        one = _RUN.sub(r"\1", word)
        for cand in (one, _RUN.sub(r"\1\1", word)):
            if cand in self._words:
                return self._words[cand]
            if cand in self._vocab:
                return cand
        return _RUN.sub(r"\1\1", word)

    def __call__(self, original: str) -> Normalized:
        low = original.lower()
        if len(low) != len(original):  # rare: characters whose lower case is longer
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in original)
        ascii_text = low.isascii()
        if not ascii_text or any(c in low for c in _ASCII_ODD):
            low = low.translate(_TRANSLATE)
        # one pass gives the fast-path tests and the scanner's word set (the same [a-z]+
        # runs either way; bytes.translate + split is the faster for ASCII)
        if ascii_text:
            letters = set(low.encode().translate(_LETTER_RUNS).decode().split())
        else:
            letters = set(_LETTERS.findall(low))
        triple = _TRIPLE.search(" ".join(letters)) is not None
        if (
            not triple
            and self._plain_keys.isdisjoint(letters)
            and not any((not run or run in letters) and k in low for run, k in self._other_keys)
        ):
            return Normalized(original, low, [], letters)
        rx = self._main_rep if triple else self._main
        parts: list[str] = []
        segments: list[tuple[int, int, int, int]] = []
        last = 0
        delta = 0
        words = self._words
        for m in rx.finditer(low):
            s, e = m.span()
            if s and (low[s - 1].isalnum() or low[s - 1] == "_"):
                continue
            found = m.group()
            rep = words[found] if m.lastgroup == "w" else self._collapse(found)
            if rep == found:
                continue
            parts.append(low[last:s])
            parts.append(rep)
            ns = s + delta
            segments.append((ns, ns + len(rep), s, e))
            delta += len(rep) - (e - s)
            last = e
        if not segments:  # nothing replaced: the word set found above still holds
            return Normalized(original, low, segments, letters)
        parts.append(low[last:])
        return Normalized(original, "".join(parts), segments)
