"""``scan(text, context) -> Verdict``: find abuse and crisis signals in one text.

How a scan runs (linear in the length of the text):

1. normalise the text (case, quotes, texting, misspellings), keeping an offset map;
2. look its words up in the trigger index: every lexicon pattern is indexed under its
   most specific required word, and only patterns whose required words all occur are
   tried (most messages try none or a few);
3. run each such pattern only over the sentences that hold its trigger word (at most
   a few hundred characters around it), so the cost stays proportional to the length;
   a text of at most that many characters is searched whole (the same matches, since
   a match never leaves its sentence and always holds a trigger word);
4. drop matches cancelled by negation or a context (media, sport, figure of speech...);
   a text whose only matches were negated, with fewer than :data:`NOTHING_ELSE_WORDS`
   words outside their clauses, is ``negated_only`` (no second stage is asked about it);
5. apply escalators (pregnancy, escalating violence, a gun at home) that raise
   ``risk`` to ``danger``;
6. a message that is general talk about abuse or suicide as a whole (the lexicon's
   ``general_talk``: long, never about the writer, with the phrases of an advice page,
   a definition or a news report) keeps its signals at ``concern`` at most;
7. for replies (``ScanContext(source="reply")``), add the reply checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

from safety.context import Sentences, cancelled_by, clause_start, is_negated, satisfied, words_outside
from safety.lexicon import CompiledPattern, GeneralTalk, Lexicon, SignalRule, TriggerMap, runnable
from safety.normalize import Normalized
from safety.patterns import search_words
from safety.severity import Severity
from safety.verdict import UNSAFE_REPLY, ScanContext, Signal, Verdict, make_verdict

_WORDS = re.compile(r"[a-z]+")
#: a quotation on one line (the normaliser makes every double quote straight)
_QUOTED = re.compile(r'"[^"\n]{0,400}"')
_WINDOW = 300
_DEFAULT = ScanContext()
#: fewer words than this outside a text's negated clauses: it says nothing but the negation
NOTHING_ELSE_WORDS = 5


class _Text:
    """A normalised text with lazily computed word positions and sentences."""

    __slots__ = ("_positions", "_windows", "ctx_cache", "negated", "norm", "sentences", "text", "words")

    def __init__(self, norm: Normalized) -> None:
        self.norm = norm
        self.text = norm.text
        self.words = norm.words if norm.words is not None else set(_WORDS.findall(self.text))
        self.sentences = Sentences(self.text)
        self._positions: dict[str, list[int]] = {}
        self._windows: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        self.ctx_cache: dict[tuple[str, int, int, int, int], bool] = {}
        #: each negated match's clause, from the clause's start to the match's end
        self.negated: list[tuple[int, int]] = []

    def positions(self, word: str) -> list[int]:
        """Start offsets of ``word`` as a whole word."""
        found = self._positions.get(word)
        if found is None:
            found = []
            text = self.text
            n = len(word)
            i = text.find(word)
            while i >= 0:
                before = text[i - 1] if i else " "
                after = text[i + n] if i + n < len(text) else " "
                if not ("a" <= before <= "z") and not ("a" <= after <= "z"):
                    found.append(i)
                i = text.find(word, i + 1)
            self._positions[word] = found
        return found

    def windows(self, words: list[str]) -> list[tuple[int, int]]:
        """Merged sentence windows (clipped to +-300 chars) around ``words``."""
        key = tuple(words)
        cached = self._windows.get(key)
        if cached is None:
            cached = self._windows[key] = self._compute_windows(words)
        return cached

    def _compute_windows(self, words: list[str]) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for w in words:
            for pos in self.positions(w):
                _, s0, s1 = self.sentences.around(pos)
                spans.append((max(s0, pos - _WINDOW), min(s1, pos + _WINDOW + len(w))))
        spans.sort()
        out: list[tuple[int, int]] = []
        for lo, hi in spans:
            if out and lo <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], hi))
            else:
                out.append((lo, hi))
        return out


def run_rules(
    lex: Lexicon,
    doc: _Text,
    rules: tuple[SignalRule, ...],
    tmap: TriggerMap,
    trigger_words: frozenset[str],
    *,
    after_disclosure: bool = True,
) -> list[Signal]:
    """All uncancelled matches of ``rules`` in ``doc``."""
    present = trigger_words.intersection(doc.words)
    if not present:
        return []
    words = doc.words
    # a pattern is tried only when one word of each set it requires occurs
    candidates: dict[tuple[int, int], list[str]] = {}
    for w in present:
        for i, j, rest in tmap[w]:
            for req in rest:
                if req.isdisjoint(words):
                    break
            else:
                candidates.setdefault((i, j), []).append(w)
    found: list[Signal] = []
    done: set[int] = set()  # one accepted match per signal is enough for a verdict
    for key in sorted(candidates):
        i, j = key
        if i in done:
            continue
        rule = rules[i]
        if rule.when == "after_disclosure" and not after_disclosure:
            continue
        for start, end in _matches(rule.patterns[j], doc, candidates[key]):
            accepted = _accept(lex, rule, doc, start, end)
            if accepted:
                found.extend(accepted)
                done.add(i)
                break
    return found


def _matches(pat: CompiledPattern, doc: _Text, trigger_words: list[str]) -> list[tuple[int, int]]:
    """Matches of one pattern: anchored at its possible first words when they are known
    (one cheap attempt per occurrence), else searched around its trigger words."""
    if pat.anchor is not None:
        out: list[tuple[int, int]] = []
        match = pat.regex.match
        text = doc.text
        for w in pat.anchor.intersection(doc.words):
            for pos in doc.positions(w):
                m = match(text, pos)
                if m is not None:
                    out.append(m.span())
        out.sort()  # earliest first, whatever order the set gave the words in
        return out
    if len(doc.text) <= _WINDOW:
        # every match holds a trigger word and stays inside one sentence, and a text this
        # short has no window narrower than its sentences: one search finds the same
        return search_words(pat.regex, doc.text, 0, len(doc.text))
    spans: list[tuple[int, int]] = []
    for lo, hi in doc.windows(trigger_words):
        spans.extend(search_words(pat.regex, doc.text, lo, hi))
    return spans


def _accept(lex: Lexicon, rule: SignalRule, doc: _Text, start: int, end: int) -> list[Signal]:
    """The signals for one match, or none when negation or a context cancels it."""
    text = doc.text
    if rule.negatable != "off":
        _, s0, s1 = doc.sentences.around(start)
        inside = rule.negatable == "full"
        if is_negated(lex.negation, text, s0, s1, start, end, inside=inside):
            doc.negated.append((clause_start(text, s0, start), end))
            return []
    if cancelled_by(lex, rule.contexts, text, doc.words, doc.sentences, start, end, doc.ctx_cache):
        return []
    if rule.needs and not satisfied(rule.needs, text, doc.words, doc.sentences, start, doc.ctx_cache):
        return []
    o0, o1 = doc.norm.span(start, end)
    snippet = doc.norm.original[o0:o1]
    return [Signal(rule.id, cat, rule.severity, o0, o1, snippet) for cat in (rule.category, *rule.also)]


def _escalate(lex: Lexicon, doc: _Text, signals: list[Signal]) -> list[Signal]:
    """Raise ``risk`` signals to ``danger`` when an escalator occurs in the text."""
    out = signals
    for esc in lex.escalators:
        if esc.add_category is not None:
            hits = [s for s in out if s.category in esc.raises and s.severity.rank >= 2]
        else:
            hits = [s for s in out if s.category in esc.raises and s.severity == Severity.RISK]
        if not hits:
            continue
        match = _first_escalator_match(lex, esc.patterns, doc)
        if match is None:
            continue
        o0, o1 = doc.norm.span(*match)
        first = min(hits, key=lambda s: s.start)  # the first found of the earliest (a list: repeatable)
        if esc.add_category is not None:
            top = max((s.severity for s in hits), key=lambda v: v.rank)
            snippet = doc.norm.original[o0:o1]
            out = [*out, Signal(esc.id, esc.add_category, top, o0, o1, snippet)]
            continue
        raised = set(hits)
        out = [msgspec.structs.replace(s, severity=Severity.DANGER) if s in raised else s for s in out]
        out.append(Signal(esc.id, first.category, Severity.DANGER, o0, o1, doc.norm.original[o0:o1]))
    return out


def _first_escalator_match(
    lex: Lexicon, patterns: tuple[CompiledPattern, ...], doc: _Text
) -> tuple[int, int] | None:
    def not_negated(start: int, end: int) -> bool:
        _, s0, s1 = doc.sentences.around(start)
        return not is_negated(lex.negation, doc.text, s0, s1, start, end)

    return _first_match(patterns, doc, not_negated)


def _first_match(
    patterns: tuple[CompiledPattern, ...], doc: _Text, keep: Callable[[int, int], bool] | None = None
) -> tuple[int, int] | None:
    """The first match of the first of ``patterns`` that has one (and that ``keep``
    accepts, when given), searched as signals are: only where its words occur."""
    for pat in patterns:
        if not runnable(pat, doc.words):
            continue
        words = [w for w in pat.trigger if w in doc.words]
        for start, end in _matches(pat, doc, words):
            if keep is None or keep(start, end):
                return start, end
    return None


def scan_with(lex: Lexicon, text: str, context: ScanContext | None = None) -> Verdict:
    """:func:`safety.scan` against a given lexicon (tests use this with modified data)."""
    ctx = context or _DEFAULT
    doc = _Text(lex.normalizer(text))
    signals = run_rules(lex, doc, lex.signals, lex.trigger_map, lex.trigger_words)
    if signals:
        signals = _escalate(lex, doc, signals)
    # "He has never hit me and never would.": a negated signal and nothing else said
    negated_only = (
        not signals and bool(doc.negated) and words_outside(doc.text, doc.negated) < NOTHING_ELSE_WORDS
    )
    rule = lex.general_talk
    general = ctx.source == "message" and rule is not None and _general_talk(rule, doc)
    if general:
        signals = [_at_most_concern(s) for s in signals]
    if ctx.source == "reply":
        carried = [
            Signal("reply.carries_signal", UNSAFE_REPLY, s.severity, s.start, s.end, s.text)
            for s in signals
            if s.severity.rank >= Severity.RISK.rank
        ]
        signals += carried
        signals += run_rules(
            lex,
            doc,
            lex.reply_signals,
            lex.reply_trigger_map,
            lex.reply_trigger_words,
            after_disclosure=ctx.after_disclosure,
        )
    return make_verdict(signals, lex.policy_version, negated_only=negated_only, general_talk=general)


def _general_talk(rule: GeneralTalk, doc: _Text) -> bool:
    """Whether the whole text is general talk (:class:`safety.lexicon.GeneralTalk`): long
    enough, no writer's word anywhere (or outside quotations, as the rule says), and a
    marker somewhere (any sentence)."""
    if len(doc.text) < rule.min_chars:
        return False
    if not rule.writer_words.isdisjoint(doc.words):
        if rule.quoted_speech_counts or '"' not in doc.text:
            return False
        unquoted = _QUOTED.sub(" ", doc.text)
        if not rule.writer_words.isdisjoint(_WORDS.findall(unquoted)):
            return False
    return _first_match(rule.markers, doc) is not None


def _at_most_concern(signal: Signal) -> Signal:
    if signal.severity.rank <= Severity.CONCERN.rank:
        return signal
    return msgspec.structs.replace(signal, severity=Severity.CONCERN)
