"""Load the reviewable lexicon data (``safety/data/*.yaml``) and compile it once.

The YAML is read and expanded into regular expressions at import time (or when a
test builds a :class:`Lexicon` from another folder); scanning never touches YAML.
``POLICY_VERSION`` is ``<policy>+<hash>``, the hash taken over every data file, so a
change to any data changes the version stamped on replies.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from safety.normalize import Normalizer
from safety.patterns import (
    GAPS,
    PatternError,
    anchored,
    compile_sequence,
    enumerate_word,
    split_tokens,
)
from safety.severity import Severity
from safety.verdict import CATEGORIES

DATA_FILES = ("lexicon.yaml", "normalize.yaml", "replies.yaml", "resources.yaml")
Scope = Literal["overlap", "before", "after", "sentence", "around", "third_person", "third_person_text"]
_SCOPES: tuple[str, ...] = get_args(Scope)
_WORDS = re.compile(r"[a-z]+")


class LexiconError(ValueError):
    """The lexicon data is inconsistent."""


@dataclass(frozen=True, slots=True)
class Context:
    """A named situation that cancels signals (figure of speech, media, sport...)."""

    name: str
    scope: Scope
    patterns: tuple[CompiledPattern, ...]
    except_patterns: tuple[CompiledPattern, ...]
    #: union of the patterns' trigger words (None when a pattern has none)
    any_trigger: frozenset[str] | None
    applies_to_all: bool
    first_person_only: bool


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """One pattern: its regex and, per required word, the words one of which must occur."""

    source: str
    regex: re.Pattern[str]
    requires: tuple[frozenset[str], ...]
    trigger: frozenset[str]
    #: first words a match can start with (None: search instead of anchored matching)
    anchor: frozenset[str] | None

    @property
    def rest(self) -> tuple[frozenset[str], ...]:
        """The requirements other than the trigger's (checked once a trigger word is seen)."""
        return tuple(req for req in self.requires if req is not self.trigger)


def runnable(pat: CompiledPattern, words: AbstractSet[str]) -> bool:
    """Whether every word ``pat`` requires (one of each set) occurs in ``words``."""
    for req in pat.requires:  # noqa: SIM110 - a plain loop is faster on the hot path
        if req.isdisjoint(words):
            return False
    return True


#: word -> (signal index, pattern index, the pattern's other requirements) of every
#: pattern that word triggers
TriggerMap = Mapping[str, tuple[tuple[int, int, tuple[frozenset[str], ...]], ...]]


@dataclass(frozen=True, slots=True)
class SignalRule:
    """One compiled lexicon signal."""

    id: str
    category: str
    also: tuple[str, ...]
    severity: Severity
    description: str
    patterns: tuple[CompiledPattern, ...]
    negatable: Literal["full", "before", "off"]
    contexts: tuple[Context, ...]
    triggers: frozenset[str]
    examples: tuple[str, ...]
    benign: tuple[str, ...]
    when: Literal["always", "after_disclosure"] = "always"
    #: contexts one of whose patterns must ALSO occur in the same sentence (all of them)
    needs: tuple[Context, ...] = ()


@dataclass(frozen=True, slots=True)
class Escalator:
    """A situation that raises co-occurring ``risk`` signals to ``danger``."""

    id: str
    description: str
    raises: frozenset[str]
    patterns: tuple[CompiledPattern, ...]
    examples: tuple[str, ...]
    #: when set, the escalator adds this category (at the signals' severity) instead of
    #: raising them to danger
    add_category: str | None = None


@dataclass(frozen=True, slots=True)
class Negation:
    negators: frozenset[str]
    opaque: frozenset[str]
    reversal: re.Pattern[str]
    window_words: int
    #: a new subject between a negator and the match starts another clause ("I'm not
    #: safe, he hits me") unless it follows one of ``not_a_new_clause_after`` ("never has he hit me")
    new_subjects: frozenset[str] = frozenset()
    not_a_new_clause_after: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class GeneralTalk:
    """When a whole message is general talk about abuse or suicide (an advice page, a
    definition, a news or court report), not anybody's own account: at least
    ``min_chars`` long, no word of ``writer_words`` anywhere (outside double quotation
    marks when ``quoted_speech_counts`` is false: a quoted threat is someone else's
    words), and one of ``markers`` (the phrases of such writing) somewhere in it."""

    description: str
    min_chars: int
    writer_words: frozenset[str]
    markers: tuple[CompiledPattern, ...]
    quoted_speech_counts: bool = True


@dataclass(frozen=True)
class Lexicon:
    """Everything the scanner needs, compiled."""

    policy_version: str
    normalizer: Normalizer
    negation: Negation
    first_person: frozenset[str]
    signals: tuple[SignalRule, ...]
    reply_signals: tuple[SignalRule, ...]
    escalators: tuple[Escalator, ...]
    contexts: Mapping[str, Context]
    trigger_words: frozenset[str] = frozenset()
    reply_trigger_words: frozenset[str] = frozenset()
    trigger_map: TriggerMap = field(default_factory=dict)
    reply_trigger_map: TriggerMap = field(default_factory=dict)
    general_talk: GeneralTalk | None = None

    @classmethod
    def load(cls, directory: Path | None = None) -> Lexicon:
        """Load and compile the data in ``directory`` (default: the package data)."""
        raw: dict[str, bytes] = {}
        for name in DATA_FILES:
            if directory is None:
                raw[name] = resources.files("safety").joinpath("data").joinpath(name).read_bytes()
            else:
                raw[name] = (directory / name).read_bytes()
        return _build(raw)


def policy_version(policy: str, raw: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(raw):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(raw[name])
        digest.update(b"\0")
    return f"{policy}+{digest.hexdigest()[:10]}"


class _Classes:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.cache: dict[str, str] = {}
        self.first: dict[str, set[str] | None] = {}
        self.keyed: dict[str, set[str] | None] = {}
        self.stack: list[str] = []

    def _entry(self, name: str) -> Mapping[str, Any]:
        if name not in self.spec:
            raise LexiconError(f"unknown word class {{{name}}}")
        entry = self.spec[name]
        if not isinstance(entry, Mapping) or not isinstance(entry.get("words"), list):
            raise LexiconError(f"class {name} needs a list of words")
        return entry

    def regex(self, name: str) -> str:
        if name in self.cache:
            return self.cache[name]
        if name in self.stack:
            raise LexiconError(f"word class {name} refers to itself")
        self.stack.append(name)
        words = [str(w) for w in self._entry(name)["words"]]
        for w in words:
            if len(_split_top(w)) > 1:  # the same ambiguity _compile_one refuses in patterns
                raise LexiconError(f"class {name}: '|' outside brackets; one alternative per word: {w!r}")
        bodies = [compile_sequence(w, self.regex) for w in words]
        bodies.sort(key=len, reverse=True)
        self.stack.pop()
        out = "(?:" + "|".join(bodies) + ")"
        self.cache[name] = out
        return out

    def first_words(self, name: str) -> set[str] | None:
        """Words a match of class ``name`` can start with (None when unbounded)."""
        return self._union(name, self.first, first_words)

    def key_words(self, name: str) -> set[str] | None:
        """Words one of which every match of class ``name`` holds (see :func:`required_words`)."""
        return self._union(name, self.keyed, required_words)

    def _union(
        self,
        name: str,
        cache: dict[str, set[str] | None],
        words_of: Callable[[list[str], _Classes], set[str] | None],
    ) -> set[str] | None:
        """``words_of`` over the class's entries, joined (None when one is unknown)."""
        if name not in cache:
            cache[name] = None  # guards recursion
            found: set[str] = set()
            for w in self._entry(name)["words"]:
                sub = words_of(split_tokens(str(w)), self)
                if sub is None:
                    return None
                found |= sub
            cache[name] = found
        return cache[name]


def _one_run_each(strings: set[str] | None, pick: Callable[[list[str]], str]) -> set[str] | None:
    """One letter run of each string a word token can be, chosen by ``pick`` (None when
    the token is not a finite list, or a string has no letters)."""
    if strings is None:
        return None
    out: set[str] = set()
    for st in strings:
        runs = _WORDS.findall(st)
        if not runs:
            return None
        out.add(pick(runs))
    return out


def _trigger_words(words: set[str] | None) -> set[str] | None:
    return _one_run_each(words, lambda runs: max(runs, key=len))


def _split_top(body: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def _single_group(tok: str) -> bool:
    if not (tok.startswith("(") and tok.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(tok):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and i != len(tok) - 1:
            return False
    return True


def _not_required(tok: str) -> bool:
    """A gap or an optional token (``[...]``, ``(...)?``): a match need not hold its words."""
    return tok in GAPS or tok.startswith("[") or (tok.startswith("(") and tok.endswith(")?"))


def _key_runs(strings: set[str] | None) -> set[str] | None:
    """For each string a word token can be, its rarest letter run (None: unknown)."""
    return _one_run_each(strings, lambda runs: min(runs, key=lambda w: (_word_cost(w), -len(w))))


def token_key_words(tok: str, classes: _Classes) -> set[str] | None:
    """Words one of which every match of the required token ``tok`` holds as a whole
    letter run: for each alternative its rarest word, not its first ("in fear" needs
    "fear", "i will kill you" needs "kill"). None when no finite list is known."""
    if tok.startswith("{") and tok.endswith("}") and tok.count("{") == 1:
        return classes.key_words(tok[1:-1])
    if _single_group(tok):
        found: set[str] = set()
        for alt in _split_top(tok[1:-1]):
            sub = required_words(split_tokens(alt), classes)
            if sub is None:
                return None
            found |= sub
        return found
    if "{" in tok:
        return None
    try:
        return _key_runs(enumerate_word(tok))
    except PatternError:
        return None


def required_words(tokens: list[str], classes: _Classes) -> set[str] | None:
    """The rarest of the word lists one of which every match of ``tokens`` holds."""
    best: set[str] | None = None
    for tok in tokens:
        if _not_required(tok):
            continue
        words = token_key_words(tok, classes)
        if words and (best is None or (_specificity(words), len(words)) < (_specificity(best), len(best))):
            best = words
    return best


def token_words(tok: str, classes: _Classes) -> set[str] | None:
    """Trigger words of one word token (class references allowed as whole alternatives)."""
    if "{" not in tok:
        try:
            return _trigger_words(enumerate_word(tok))
        except PatternError:
            return None
    if not _single_group(tok) or _split_top(tok[1:-1]) == [tok[1:-1]]:
        return None
    found: set[str] = set()
    for alt in _split_top(tok[1:-1]):
        if alt.startswith("{") and alt.endswith("}") and alt.count("{") == 1:
            sub = classes.first_words(alt[1:-1])
        elif "{" in alt:
            return None
        else:
            try:
                sub = _trigger_words(enumerate_word(alt))
            except PatternError:
                return None
        if sub is None:
            return None
        found |= sub
    return found


def first_words(tokens: list[str], classes: _Classes) -> set[str] | None:
    """Possible first words of a token sequence (None when unbounded)."""
    found: set[str] = set()
    for tok in tokens:
        if tok in GAPS:
            return None
        optional = tok.startswith("[") and tok.endswith("]")
        if optional:
            sub = first_words(split_tokens(tok[1:-1]), classes)
        elif tok.startswith("{") and tok.endswith("}"):
            sub = classes.first_words(tok[1:-1])
        else:
            sub = token_words(tok, classes)
        if sub is None:
            return None
        found |= sub
        if not optional:
            return found
    return None


#: very common words: a pattern is triggered by its most specific required word instead
COMMON_WORDS = frozenset(
    [
        "i",
        "me",
        "my",
        "mine",
        "myself",
        "we",
        "us",
        "our",
        "you",
        "your",
        "he",
        "him",
        "his",
        "she",
        "her",
        "they",
        "them",
        "their",
        "it",
        "is",
        "was",
        "are",
        "were",
        "be",
        "been",
        "am",
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "so",
        "if",
        "when",
        "then",
        "that",
        "this",
        "what",
        "not",
        "no",
        "just",
        "have",
        "has",
        "had",
        "do",
        "does",
        "did",
        "will",
        "would",
        "can",
        "could",
        "'ll",
        "'s",
        "'m",
        "there",
        "all",
        "up",
        "out",
        "about",
        "get",
        "got",
        "go",
        "going",
        "like",
        "said",
        "says",
        "told",
        "tells",
        "when",
        "after",
        "keep",
        "keeps",
        "kept",
        "time",
        "then",
        "really",
        "very",
        "one",
        "day",
        "night",
        "back",
        "home",
        "down",
        "over",
        "off",
        "from",
        "by",
        "as",
        "any",
        "some",
        "more",
        "other",
        "new",
        "good",
        "bad",
        "way",
        "know",
        "think",
        "want",
        "need",
        "make",
        "made",
        "take",
        "took",
        "give",
        "gave",
        "see",
        "saw",
        "come",
        "came",
        "feel",
        "felt",
        "try",
        "tried",
        "call",
        "called",
        "ask",
        "asked",
        "tell",
        "let",
        "put",
        "say",
        "left",
        # everyday words: as triggers they would try patterns on most messages
        "never",
        "work",
        "job",
        "how",
        "get",
        "check",
        "want",
        "kids",
        "next",
        "when",
        "partner",
        "more",
        "month",
        "know",
        "room",
        "home",
        "time",
        "night",
        "week",
        "talk",
        "plan",
        "money",
        "friends",
        "family",
        "away",
        "often",
        "back",
        "out",
        "up",
        "down",
        "off",
        "over",
        "into",
        "after",
        "every",
        "again",
        "still",
        "keep",
        "keeps",
        "take",
        "make",
        "see",
        "go",
        "going",
        "tell",
        "told",
        "said",
        "says",
    ]
)


#: words so frequent that matching at each of their occurrences costs more than a search
VERY_COMMON_WORDS = frozenset(
    [
        "i",
        "me",
        "my",
        "you",
        "your",
        "he",
        "she",
        "they",
        "it",
        "the",
        "a",
        "an",
        "to",
        "of",
        "in",
        "on",
        "and",
        "is",
        "was",
        "that",
        "this",
        "for",
        "with",
        "at",
        "be",
        "we",
        "us",
        "our",
        "his",
        "her",
        "their",
        "them",
        "him",
        "so",
        "if",
        "or",
        "but",
        "not",
        "no",
        "just",
        "have",
        "has",
        "had",
        "do",
        "did",
        "will",
        "would",
        "can",
        "could",
        "all",
        "im",
        "ive",
    ]
)


#: letter runs of contractions ("it's", "don't", "he'll"): as common as the words they end
_CONTRACTION_RUNS = frozenset(["s", "t"])
_CONTRACTION_STEMS = frozenset(
    [
        *("m", "d", "ll", "re", "ve", "don", "didn", "doesn", "isn", "wasn", "won"),
        *("couldn", "wouldn", "shouldn", "aren", "weren", "haven", "hasn", "hadn", "ain"),
    ]
)


def _word_cost(word: str) -> int:
    """How often one word is expected to occur (lower is more specific)."""
    if word in VERY_COMMON_WORDS or word in _CONTRACTION_RUNS:
        return 1000
    if word in COMMON_WORDS or word in _CONTRACTION_STEMS:
        return 100
    return 1


def _specificity(words: AbstractSet[str]) -> int:
    """How often a set of words is expected to occur (lower is more specific)."""
    return sum(_word_cost(w) for w in words)


_FIRST_RUN = re.compile(r"[a-z]+")


def _runs_of(strings: set[str] | None) -> set[str] | None:
    if strings is None:
        return None
    out: set[str] = set()
    for st in strings:
        m = _FIRST_RUN.match(st)
        if m is None:
            return None
        out.add(m.group())
    return out


def anchor_words(tokens: list[str], classes: _Classes, depth: int = 0) -> set[str] | None:
    """The first words every match of ``tokens`` starts with, if they are known."""
    if not tokens or depth > 12:
        return None
    tok = tokens[0]
    if _not_required(tok):
        return None
    if tok.startswith("{") and tok.endswith("}") and tok.count("{") == 1:
        return _class_anchor(tok[1:-1], classes, depth)
    if "{" not in tok:
        try:
            return _first_segment_strings(tok)
        except PatternError:
            return None
    if not _single_group(tok):
        return None
    found: set[str] = set()
    for alt in _split_top(tok[1:-1]):
        sub = anchor_words(split_tokens(alt), classes, depth + 1)
        if sub is None:
            return None
        found |= sub
    return found


def _first_segment_strings(tok: str) -> set[str] | None:
    strings = enumerate_word(tok)
    return _runs_of(strings)


def _class_anchor(name: str, classes: _Classes, depth: int) -> set[str] | None:
    found: set[str] = set()
    for w in classes._entry(name)["words"]:
        sub = anchor_words(split_tokens(str(w)), classes, depth + 1)
        if sub is None:
            return None
        found |= sub
    return found


def pattern_requirements(pattern: str, classes: _Classes) -> tuple[frozenset[str], ...]:
    """For each required token with a finite word list: the words one of which must occur."""
    reqs: list[frozenset[str]] = []
    for tok in split_tokens(pattern):
        if _not_required(tok):
            continue
        words = token_key_words(tok, classes)
        if words:
            reqs.append(frozenset(words))
    reqs.sort(key=lambda req: (_specificity(req), len(req)))  # the likeliest to be missing first
    return tuple(reqs)


def _compile_one(
    pattern: str, classes: _Classes, where: str, *, need_trigger: bool = True
) -> CompiledPattern:
    if len(_split_top(pattern)) > 1:
        # "a b|c" would be read as one sequence requiring a word of every branch, so the
        # pattern would only run when all of them occur: each branch is its own pattern
        raise LexiconError(f"{where}: '|' outside brackets; give each alternative its own line: {pattern!r}")
    try:
        body = compile_sequence(pattern, classes.regex)
    except PatternError as exc:
        raise LexiconError(f"{where}: {exc}") from exc
    requires = pattern_requirements(pattern, classes)
    if not requires and need_trigger:
        raise LexiconError(f"{where}: pattern has no required word to trigger on: {pattern!r}")
    trigger = min(requires, key=_specificity) if requires else frozenset()
    anchor = anchor_words(split_tokens(pattern), classes)
    if anchor is not None and anchor & VERY_COMMON_WORDS:
        anchor = None  # common first words occur everywhere: searching is cheaper
    return CompiledPattern(
        pattern,
        re.compile(anchored(body, start=False)),
        requires,
        trigger,
        frozenset(anchor) if anchor else None,
    )


def _compile_patterns(patterns: list[str], classes: _Classes, where: str) -> re.Pattern[str]:
    if not patterns:
        raise LexiconError(f"{where}: no patterns")
    try:
        bodies = [compile_sequence(str(p), classes.regex) for p in patterns]
    except PatternError as exc:
        raise LexiconError(f"{where}: {exc}") from exc
    return re.compile("|".join(anchored(b) for b in bodies))


def _negatable(value: Any, where: str) -> Literal["full", "before", "off"]:
    if value is True:
        return "full"
    if value is False:
        return "off"
    if value == "before":
        return "before"
    raise LexiconError(f"{where}: negatable must be true, false or before")


def _severity(value: Any, where: str) -> Severity:
    try:
        return Severity(str(value))
    except ValueError as exc:
        raise LexiconError(f"{where}: bad severity {value!r}") from exc


def _build(raw: Mapping[str, bytes]) -> Lexicon:
    lex = yaml.safe_load(raw["lexicon.yaml"])
    norm = yaml.safe_load(raw["normalize.yaml"])
    replies = yaml.safe_load(raw["replies.yaml"])
    classes = _Classes({**lex["classes"], **(replies.get("classes") or {})})

    contexts: dict[str, Context] = {}
    for name, spec in (lex.get("contexts") or {}).items():
        scope = spec.get("scope", "sentence")
        if scope not in _SCOPES:
            raise LexiconError(f"context {name}: bad scope {scope!r}")
        where = f"context {name}"
        cps = tuple(_compile_one(str(p), classes, where, need_trigger=False) for p in spec["patterns"])
        any_trigger: frozenset[str] | None = frozenset().union(*(c.trigger for c in cps))
        if any(not c.trigger for c in cps):
            any_trigger = None
        contexts[name] = Context(
            name=name,
            scope=scope,
            patterns=cps,
            any_trigger=any_trigger,
            except_patterns=tuple(
                _compile_one(str(p), classes, where, need_trigger=False) for p in spec.get("except") or ()
            ),
            applies_to_all=bool(spec.get("applies_to_all", False)),
            first_person_only=scope in ("third_person", "third_person_text"),
        )

    def build_signals(
        items: list[Mapping[str, Any]],
    ) -> tuple[tuple[SignalRule, ...], TriggerMap]:
        rules: list[SignalRule] = []
        tmap: dict[str, list[tuple[int, int, tuple[frozenset[str], ...]]]] = {}
        seen: set[str] = set()
        for item in items:
            sid = str(item["id"])
            where = f"signal {sid}"
            if sid in seen:
                raise LexiconError(f"{where}: duplicate id")
            seen.add(sid)
            category = str(item["category"])
            also = tuple(str(c) for c in item.get("also") or ())
            for cat in (category, *also):
                if cat not in CATEGORIES:
                    raise LexiconError(f"{where}: unknown category {cat!r}")
            names = [str(n) for n in item.get("unless") or ()]
            for n in names:
                if n not in contexts:
                    raise LexiconError(f"{where}: unknown context {n!r}")
            ignore = {str(n) for n in item.get("ignore") or ()}
            ctx = tuple(
                [c for c in contexts.values() if c.applies_to_all and c.name not in ignore]
                + [contexts[n] for n in names]
            )
            compiled = tuple(_compile_one(str(p), classes, where) for p in item["patterns"])
            triggers: set[str] = set()
            for cp in compiled:
                triggers |= cp.trigger
            need_names = [str(n) for n in item.get("needs") or ()]
            for n in need_names:
                if n not in contexts:
                    raise LexiconError(f"{where}: unknown context {n!r}")
            when = str(item.get("when", "always"))
            if when not in ("always", "after_disclosure"):
                raise LexiconError(f"{where}: bad 'when' {when!r}")
            rule = SignalRule(
                id=sid,
                category=category,
                also=also,
                severity=_severity(item["severity"], where),
                description=str(item.get("description", "")).strip(),
                patterns=compiled,
                negatable=_negatable(item.get("negatable", True), where),
                contexts=ctx,
                triggers=frozenset(triggers),
                examples=tuple(str(e) for e in item.get("examples") or ()),
                benign=tuple(str(e) for e in item.get("benign") or ()),
                when="after_disclosure" if when == "after_disclosure" else "always",
                needs=tuple(contexts[n] for n in need_names),
            )
            for j, cp in enumerate(rule.patterns):
                rest = cp.rest
                for w in cp.trigger:
                    tmap.setdefault(w, []).append((len(rules), j, rest))
            rules.append(rule)
        return tuple(rules), {k: tuple(v) for k, v in tmap.items()}

    signals, tmap = build_signals(lex["signals"])
    reply_signals, rmap = build_signals(replies["signals"])

    escalators = tuple(
        Escalator(
            id=str(e["id"]),
            description=str(e.get("description", "")).strip(),
            raises=frozenset(str(c) for c in e["raises"]),
            patterns=tuple(_compile_one(str(p), classes, f"escalator {e['id']}") for p in e["patterns"]),
            examples=tuple(str(x) for x in e.get("examples") or ()),
            add_category=str(e["add_category"]) if e.get("add_category") else None,
        )
        for e in lex.get("escalators") or ()
    )

    neg = lex["negation"]
    negation = Negation(
        negators=frozenset(str(w) for w in neg["negators"]),
        opaque=frozenset(str(w) for w in neg["opaque"]),
        reversal=_compile_patterns(neg["reversal"], classes, "negation reversal"),
        window_words=int(neg.get("window_words", 6)),
        new_subjects=frozenset(str(w) for w in neg.get("new_subjects") or ()),
        not_a_new_clause_after=frozenset(str(w) for w in neg.get("not_a_new_clause_after") or ()),
    )

    general_talk = _general_talk(lex.get("general_talk"), classes)

    vocab: set[str] = set()
    for rule in (*signals, *reply_signals):
        vocab |= rule.triggers
    if general_talk is not None:
        for pat in general_talk.markers:
            vocab |= pat.trigger
    for name in classes.spec:
        words = classes.first_words(name)
        if words:
            vocab |= words
    normalizer = Normalizer({str(k): str(v) for k, v in (norm.get("words") or {}).items()}, vocab)
    return Lexicon(
        policy_version=policy_version(str(lex["policy"]), raw),
        normalizer=normalizer,
        negation=negation,
        first_person=frozenset(str(w) for w in lex["first_person"]),
        signals=signals,
        reply_signals=reply_signals,
        escalators=escalators,
        contexts=contexts,
        trigger_map=tmap,
        reply_trigger_map=rmap,
        trigger_words=frozenset(tmap),
        reply_trigger_words=frozenset(rmap),
        general_talk=general_talk,
    )


def _general_talk(spec: Mapping[str, Any] | None, classes: _Classes) -> GeneralTalk | None:
    if not spec:
        return None
    where = "general_talk"
    writer = frozenset(str(w) for w in spec["writer_words"])
    if not writer or any(not w.isalpha() for w in writer):
        raise LexiconError(f"{where}: writer_words must be single words of letters")
    return GeneralTalk(
        description=str(spec.get("description", "")).strip(),
        min_chars=int(spec["min_chars"]),
        writer_words=writer,
        markers=tuple(_compile_one(str(p), classes, where) for p in spec["markers"]),
        quoted_speech_counts=bool(spec.get("quoted_speech_counts", True)),
    )
