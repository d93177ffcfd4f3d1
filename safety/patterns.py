"""The small pattern language of the lexicon, expanded into regular expressions.

A pattern is a sequence of tokens separated by spaces:

``{name}``
    a named word class from the lexicon (``{partner}``, ``{strike_verb}``, ``{neck}``).
``[ ... ]``
    an optional part: ``[{adverb}] hit me`` matches "hit me" and "really hit me".
``~`` / ``~~``
    up to 3 / up to 8 other words (never across a sentence end).
anything else
    a word, with ``(a|b)`` for alternatives and ``?`` for an optional letter or group:
    ``chok(e|es|ed|ing)``, ``hit(s)?``. A space inside parentheses stands for a word gap:
    ``(kill me|end my life)``.

Between tokens any spaces, commas, quotes or dashes may appear, but not ``. ! ? ;`` or a
line break, so a pattern never matches across sentences. Every pattern is anchored at
word edges. Gaps are bounded, which keeps matching linear in the length of the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: what may stand between two words of one sentence
SEP = r"(?:[^\w.!?;\n]+|(?='))"
#: one word (letters, digits, apostrophes, inner hyphens)
WORD = r"[\w'](?:[\w'-]*[\w'])?"
GAPS = {"~1": 1, "~": 3, "~~": 8}


class PatternError(ValueError):
    """A lexicon pattern that cannot be compiled."""


def split_tokens(pattern: str) -> list[str]:
    """Split ``pattern`` at spaces that are outside ``()`` and ``[]``."""
    tokens: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in pattern.strip():
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                raise PatternError(f"unbalanced brackets in {pattern!r}")
        if ch == " " and depth == 0:
            if cur:
                tokens.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if depth:
        raise PatternError(f"unbalanced brackets in {pattern!r}")
    if cur:
        tokens.append("".join(cur))
    return tokens


_CLASS_REF = re.compile(r"^\{([a-z_0-9]+)\}$")
_WORD_OK = re.compile(r"^[a-z0-9'()|?\- ]+$")
_INNER_REF = re.compile(r"\{([a-z_0-9]+)\}")


def word_regex(token: str, class_regex: Callable[[str], str] | None = None) -> str:
    """The regex of one word token (letters, ``(a|b)``, ``?``; spaces inside groups)."""
    refs: list[str] = []

    def keep(m: re.Match[str]) -> str:
        refs.append(m.group(1))
        return f"\x00{len(refs) - 1}\x00"

    plain = _INNER_REF.sub(keep, token).replace(" ~~ ", "\x01").replace(" ~ ", "\x02")
    if refs and class_regex is None:
        raise PatternError(f"class reference not allowed here: {token!r}")
    if not _WORD_OK.match(re.sub("\x00[0-9]+\x00|[\x01\x02]", "x", plain)):
        raise PatternError(f"unsupported characters in word {token!r}")
    out = (
        plain.replace("(", "(?:")
        .replace(" ", SEP)
        .replace("\x01", f"{SEP}(?:{WORD}{SEP}){{0,{GAPS['~~']}}}")
        .replace("\x02", f"{SEP}(?:{WORD}{SEP}){{0,{GAPS['~']}}}")
    )
    for i, name in enumerate(refs):
        assert class_regex is not None
        out = out.replace(f"\x00{i}\x00", class_regex(name))
    try:
        re.compile(out)
    except re.error as exc:  # pragma: no cover - reported to the lexicon author
        raise PatternError(f"bad word {token!r}: {exc}") from exc
    return out


def _optional_group(tok: str) -> str | None:
    """``(a|b)?`` as a whole token is an optional word: return ``(a|b)``."""
    if not (tok.startswith("(") and tok.endswith(")?")):
        return None
    depth = 0
    for i, ch in enumerate(tok[:-1]):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(tok) - 2:
                return None
    return re.sub(r"\s+\)$", ")", tok[:-1])


def compile_sequence(pattern: str, class_regex: Callable[[str], str]) -> str:
    """Expand a whole pattern (or one class entry) into a regex without edge anchors."""
    tokens = split_tokens(pattern)
    if not tokens:
        raise PatternError("empty pattern")
    kinds: list[str] = []
    pieces: list[str] = []
    for tok in tokens:
        if tok in GAPS:
            kinds.append("gap")
            pieces.append(f"(?:{WORD}{SEP}){{0,{GAPS[tok]}}}")
        elif _optional_group(tok) is not None:
            kinds.append("opt")
            inner = _optional_group(tok)
            assert inner is not None
            pieces.append("(?:" + compile_sequence(inner, class_regex) + SEP + ")?")
        elif tok.startswith("[") and tok.endswith("]"):
            kinds.append("opt")
            pieces.append("(?:" + compile_sequence(tok[1:-1], class_regex) + SEP + ")?")
        elif (m := _CLASS_REF.match(tok)) is not None:
            kinds.append("req")
            pieces.append(class_regex(m.group(1)))
        else:
            kinds.append("req")
            pieces.append(word_regex(tok, class_regex))
    if "req" not in kinds:
        raise PatternError(f"pattern needs at least one required word: {pattern!r}")
    out: list[str] = []
    started = False  # a required token has been placed
    for kind, piece, tok in zip(kinds, pieces, tokens, strict=True):
        if kind == "req":
            if started:
                out.append(SEP)
            out.append(piece)
            started = True
        elif kind == "gap":
            n = GAPS[tok]
            out.append(f"(?:{SEP}{WORD}){{0,{n}}}" if started else f"(?:{WORD}{SEP}){{0,{n}}}")
        else:  # optional: piece is "(?:X SEP)?" -> reshape when after a required token
            inner = piece[3 : -len(SEP) - 2]
            out.append(f"(?:{SEP}{inner})?" if started else piece)
    return "".join(out)


def anchored(body: str, *, start: bool = True) -> str:
    """Anchor ``body`` at word edges.

    With ``start=False`` the start edge is left to the caller (see
    :func:`search_words`): a leading look-behind stops ``re`` from skipping quickly
    to plausible first letters, which makes searching several times slower.
    """
    # the end edge allows a possessive apostrophe ("the kids' arms") but not a
    # contraction ("he'll")
    end = r"(?!\w)(?!'(?:t|ll|re|ve|m|d)\b)"
    return (r"(?<!\w)(?<!\w')" if start else "") + "(?:" + body + ")" + end


def search_words(rx: re.Pattern[str], text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Non-overlapping matches of ``rx`` in ``text[lo:hi]`` that start at a word edge."""
    out: list[tuple[int, int]] = []
    pos = lo
    while pos < hi:
        m = rx.search(text, pos, hi)
        if m is None:
            break
        s, e = m.span()
        if s > 0 and (
            text[s - 1].isalnum()
            or text[s - 1] == "_"
            or (text[s - 1] == "'" and s > 1 and text[s - 2].isalnum())
        ):
            pos = s + 1
            continue
        out.append((s, e))
        pos = e if e > s else s + 1
    return out


def enumerate_word(token: str) -> set[str] | None:
    """Every string a word token can match, or None when it is not a finite list."""
    pos = 0
    src = token

    def parse_alt() -> list[str]:
        nonlocal pos
        options = parse_seq()
        while pos < len(src) and src[pos] == "|":
            pos += 1
            options += parse_seq()
        return options

    def parse_seq() -> list[str]:
        nonlocal pos
        results = [""]
        while pos < len(src) and src[pos] not in "|)":
            ch = src[pos]
            if ch == "(":
                pos += 1
                inner = parse_alt()
                if pos >= len(src) or src[pos] != ")":
                    raise PatternError(f"unbalanced group in {token!r}")
                pos += 1
                atom = inner
            elif ch in "*+\\[]{}.\x00~":
                raise _Infinite
            else:
                pos += 1
                atom = [ch]
            if pos < len(src) and src[pos] == "?":
                pos += 1
                atom = [*atom, ""]
            results = [r + a for r in results for a in atom]
            if len(results) > 5000:
                raise _Infinite
        return results

    try:
        found = parse_alt()
    except _Infinite:
        return None
    if pos != len(src):
        raise PatternError(f"cannot read word {token!r}")
    return set(found)


class _Infinite(Exception):
    pass
