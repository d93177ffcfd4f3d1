"""One turn: scan in -> render -> model -> scan out -> persist -> publish.

Every inbound message is scanned before any model call; at risk or danger the model is
not asked to coach, the author privately gets a counselor-approved help message, and a
joint exercise pauses for both partners without telling the other why. Every model
reply is scanned (streamed replies sentence by sentence, before a sentence is shown)
and an unsafe reply is replaced by the step's approved scripted line. If scanning
fails, nothing unscanned is shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec

from coach.approvals import ApprovalGate
from coach.catalog import Catalog, Exercise
from coach.classifier import Classifier
from coach.helpmessages import (
    HelpMessage,
    concern_notice,
    held_message,
    help_message,
    paused_notice,
    safety_info,
    shared_info,
)
from coach.learned import LearnedClassifier
from coach.model import (
    OFFLINE_MODEL,
    ChatMessage,
    ModelRequest,
    ModelUnavailable,
    ResilientClient,
    StreamBroken,
)
from coach.records import COACH, Couple, Partner, SafetyInfo, Session, TemplateRef, Turn
from coach.sentences import SentenceBuffer
from coach.store import Receipt, ReplyCount, Store, new_id
from safety import (
    Classification,
    ScanContext,
    SessionSignals,
    Severity,
    Verdict,
    accumulate,
    combine,
    lower,
    lowered_from,
    needs_full_score,
    scan,
    stage_applies,
)

log = logging.getLogger("coach.turn")


class SessionPaused(Exception):
    """The joint exercise is paused; the other partner is not told why."""


class SessionCompleted(Exception):
    """Every step of the exercise is done."""


class SafetyUnavailable(Exception):
    """The safety check failed: nothing unscanned may be shown."""


class NotHeld(Exception):
    """The message to share is not one held for its author, or was already shared."""


class TurnResult(msgspec.Struct, kw_only=True):
    session: Session
    message: Turn
    reply: Turn


class Pending(msgspec.Struct, kw_only=True):
    """A safe message, persisted and published, waiting for the coach's reply."""

    session: Session
    message: Turn
    request: ModelRequest
    template: TemplateRef
    step_id: str
    draft: bool
    reply_to: str | None  # None: everyone in the session
    after_disclosure: bool
    country: str
    started: float


StreamEvent = tuple[Literal["message", "delta", "replace", "error", "done"], dict[str, Any]]


def _verdict_info(verdict: Verdict) -> SafetyInfo:
    return SafetyInfo(
        severity=verdict.severity.value,
        categories=list(verdict.categories),
        resources=[],
        policy_version=verdict.policy_version,
    )


def _notice(
    session_id: str,
    text: str,
    template: TemplateRef,
    step_id: str,
    visible_to: str,
    now: float,
    safety: SafetyInfo | None = None,
) -> Turn:
    """A coach notice addressed to one partner only."""
    return Turn(
        id=new_id("ntc"),
        session_id=session_id,
        seq=0,
        kind="notice",
        author=COACH,
        text=text,
        created_at=now,
        step_id=step_id,
        visible_to=visible_to,
        template=template,
        safety=safety,
    )


class InboundCheck:
    """One inbound message's safety check, started as soon as its text is known: the
    lexicon scan at once, and the learned stage as a task, so that its encoder (a few
    milliseconds, in its own thread) runs while the endpoint waits on Redis for the session
    and the turn's claim. :meth:`verdict` is :meth:`Coach.check_inbound`'s answer; a check
    the turn never used is dropped with :meth:`cancel`. A lexicon failure is raised by
    :meth:`verdict` (fail closed), where the turn handles it as before."""

    def __init__(self, coach: Coach, text: str, country: str) -> None:
        self._coach = coach
        self._text = text
        self._error: SafetyUnavailable | None = None
        self._learned: asyncio.Task[Classification | None] | None = None
        try:
            self._lexicon = coach.scan_inbound(text, country)
        except SafetyUnavailable as exc:
            self._error = exc
            return
        learned = coach.learned
        if learned is not None and stage_applies(self._lexicon, "learned"):
            full = needs_full_score(self._lexicon, lowers=learned.lowers)
            self._learned = asyncio.create_task(learned.classify(text, full=full))

    async def verdict(self) -> Verdict:
        if self._error is not None:
            raise self._error
        verdict = self._lexicon
        if self._learned is not None and self._coach.learned is not None:
            answer = await self._learned
            verdict = _lowered(_raised(verdict, answer, "learned", self._coach.learned.stamp), answer)
        classifier = self._coach.classifier
        if classifier is not None and stage_applies(verdict, "classifier"):
            verdict = _raised(verdict, await classifier.classify(self._text), "classifier", classifier.stamp)
        return verdict

    def cancel(self) -> None:
        if self._learned is not None and not self._learned.done():
            self._learned.cancel()


def _raised(verdict: Verdict, answer: Classification | None, source: str, stamp: str) -> Verdict:
    """``verdict`` raised by a second stage's ``answer`` (never lowered), stamped with the
    stage when it answered; a raise is logged without the text."""
    combined = combine(verdict, answer, source=source)
    if answer is not None:
        combined = msgspec.structs.replace(combined, policy_version=f"{combined.policy_version}+{stamp}")
    if combined.severity is not verdict.severity:
        log.info(
            "the learned safety stage raised the verdict"
            if source == "learned"
            else "the safety classifier raised the verdict",
            extra={
                "event": "safety_raised",
                "stage": source,
                "lexicon_severity": verdict.severity.value,
                "severity": combined.severity.value,
                "categories": list(combined.categories),
            },
        )
    return combined


def _lowered(verdict: Verdict, answer: Classification | None) -> Verdict:
    """``verdict`` lowered by the learned stage when it is sure (lowering on; see
    ``safety.lower``); a lowering is logged without the text."""
    lowered = lower(verdict, answer, source="learned")
    if lowered is not verdict:
        log.info(
            "the learned safety stage lowered the verdict",
            extra={
                "event": "safety_lowered",
                "stage": "learned",
                "lexicon_severity": verdict.severity.value,
                "severity": lowered.severity.value,
                "categories": list(lowered.categories),
            },
        )
    return lowered


class Coach:
    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        model: ResilientClient,
        turn_deadline: float,
        history_turns: int,
        gate: ApprovalGate,
        classifier: Classifier | None = None,
        learned: LearnedClassifier | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.model = model
        self.turn_deadline = turn_deadline
        self.history_turns = history_turns
        self.gate = gate
        self.classifier = classifier  # the optional second safety stage (None: off)
        self.learned = learned  # the learned safety stage (None: off or unavailable)

    # -- sessions -------------------------------------------------------------------
    async def start_session(self, partner: Partner, couple: Couple, exercise: Exercise) -> Session:
        now = time.time()
        day = None
        if exercise.id == "thirty-day-challenge":
            progress = await self.store.get_challenge(couple.id)
            day = min(30, len(progress.completed) + 1) if progress else 1
        session = Session(
            id=new_id("ses"),
            couple_id=couple.id,
            exercise_id=exercise.id,
            created_by=partner.id,
            mode=exercise.mode,
            day=day,
            created_at=now,
            updated_at=now,
            turn_count=0,
        )
        await self.store.create_session(session)
        return session

    def servable_exercises(self) -> dict[str, Exercise]:
        return self.gate.servable_exercises(self.catalog)

    def exercise_of(self, session: Session) -> Exercise:
        return self.catalog.exercises[session.exercise_id]

    # -- the safety check -------------------------------------------------------------
    @staticmethod
    def scan_inbound(text: str, country: str) -> Verdict:
        try:
            return scan(text, ScanContext(source="message", country=country))
        except Exception as exc:  # fail closed
            raise SafetyUnavailable("the safety check failed") from exc

    def start_inbound(self, text: str, country: str) -> InboundCheck:
        """Start the inbound check of ``text`` now (see :class:`InboundCheck`); the
        endpoint does, before its own Redis round trips, and passes it to :meth:`accept`."""
        return InboundCheck(self, text, country)

    async def check_inbound(self, text: str, country: str) -> Verdict:
        """The inbound verdict: the lexicon scan, then the learned stage (local, off the
        event loop; unless the verdict is already danger) and the model classifier (while
        no disclosure was found), each when on (``stage_applies``); they can only raise it,
        unless ``COACH_SAFETY_LEARNED_LOWERS`` lets the learned stage lower a verdict it is
        sure about (``safety.lower``). A stage's failure leaves the verdict as it is. Each
        stage that answered adds its ``stamp`` to the verdict's policy version
        (``<lexicon>+learned.<heads>``)."""
        return await self.start_inbound(text, country).verdict()

    @staticmethod
    def scan_reply(text: str, *, after_disclosure: bool) -> Verdict | None:
        """The reply's verdict, or None when the check itself failed (fail closed).

        The lexicon's reply checks only: the optional model classifier is for inbound
        messages (a call per streamed sentence would slow every reply; see docs/safety.md)."""
        try:
            return scan(text, ScanContext(source="reply", after_disclosure=after_disclosure))
        except Exception:
            log.exception("reply safety check failed; the reply is replaced")
            return None

    # -- accepting a message ----------------------------------------------------------
    async def accept(
        self,
        base: Session,
        partner: Partner,
        couple: Couple,
        text: str,
        receipt: Receipt | None = None,
        names: dict[str, str | None] | None = None,
        check: InboundCheck | None = None,
    ) -> TurnResult | Pending:
        """Scan and persist the partner's message. A disclosure is answered here and now
        (privately); a safe message comes back as ``Pending`` for the model. With a
        ``receipt``, its idempotency key is marked as having stored the message, in the
        same transaction (a retry then resumes this turn instead of repeating it).

        ``base`` is the session as the caller read it (the commit writes in one round trip
        while it is unchanged); ``names`` the couple's display names, when already read;
        ``check`` the message's inbound check when the caller started it early."""
        session_id = base.id
        started = time.monotonic()
        check = check or self.start_inbound(text, couple.country)
        verdict = await check.verdict()
        message_id = receipt.message_id if receipt is not None else new_id("msg")
        captured: dict[str, Any] = {}

        def update(session: Session) -> list[Turn]:
            captured.clear()
            exercise = self.exercise_of(session)
            step_index = min(session.step_index, len(exercise.steps) - 1)
            step = exercise.steps[step_index]
            state = (
                msgspec.json.decode(session.safety_state, type=SessionSignals)
                if session.safety_state
                else None
            )
            state, turn_verdict = accumulate(state, partner.id, verdict)
            captured["verdict"] = turn_verdict
            now = time.time()
            # (a refused turn raises below, and then nothing of the session is written)
            session.safety_state = msgspec.json.encode(state).decode()
            if turn_verdict.is_disclosure:
                return self._disclosure(
                    session, partner, couple, text, turn_verdict, message_id, step.id, now
                )
            if lowered_from(turn_verdict) is not None:
                # Lowered by the learned stage: held private, whatever the session's state.
                help_msg = held_message(self.catalog, turn_verdict, couple.country)
                return self._private(session, partner, text, help_msg, message_id, step.id, now, held=True)
            safety = safety_info(turn_verdict, couple.country)
            return self._publish(session, couple, partner, text, safety, message_id, captured)

        session, turns, recent = await self.store.commit_turns(
            session_id, update, receipt, base=base, recent=self._history_margin()
        )
        turn_verdict: Verdict = captured["verdict"]
        if "step_index" not in captured:  # a disclosure, or a held message: answered privately
            message, reply = turns[0], turns[1]
            self._log(session, message, reply, started, turn_verdict)
            return TurnResult(session=session, message=message, reply=reply)
        return await self._pending(
            session, turns[0], partner, couple, captured["step_index"], started, names, recent
        )

    async def share(
        self,
        base: Session,
        partner: Partner,
        couple: Couple,
        held_id: str,
        receipt: Receipt | None = None,
        names: dict[str, str | None] | None = None,
    ) -> Pending:
        """Publish a message held for its author (:meth:`accept`, lowering on), at their
        request: it is shown and coached as a ``concern`` message, and it adds nothing more
        to the session's accumulated signals (it did when it was held). ``KeyError`` when
        this partner has no such message; :class:`NotHeld` when it is not held or was
        already shared."""
        started = time.monotonic()
        turns = await self.store.list_turns(base.id)
        held = next(
            (t for t in turns if t.id == held_id and t.kind == "message" and t.author == partner.id), None
        )
        if held is None:
            raise KeyError(held_id)
        if not held.held or held.safety is None or any(t.shares == held_id for t in turns):
            raise NotHeld
        safety = shared_info(held.safety, couple.country)
        message_id = receipt.message_id if receipt is not None else new_id("msg")
        captured: dict[str, Any] = {}

        def update(session: Session) -> list[Turn]:
            captured.clear()
            return self._publish(
                session, couple, partner, held.text, safety, message_id, captured, shares=held_id
            )

        session, stored, recent = await self.store.commit_turns(
            base.id, update, receipt, base=base, recent=self._history_margin()
        )
        return await self._pending(
            session, stored[0], partner, couple, captured["step_index"], started, names, recent
        )

    def _publish(
        self,
        session: Session,
        couple: Couple,
        partner: Partner,
        text: str,
        safety: SafetyInfo,
        message_id: str,
        captured: dict[str, Any],
        shares: str | None = None,
    ) -> list[Turn]:
        """The message for the session (both partners in a joint exercise), the step
        advanced; ``captured["step_index"]`` the step it answers. Refused while the
        exercise is paused or complete."""
        if session.status == "paused":
            raise SessionPaused
        if session.status == "completed":
            raise SessionCompleted
        exercise = self.exercise_of(session)
        step_index = min(session.step_index, len(exercise.steps) - 1)
        message = Turn(
            id=message_id,
            session_id=session.id,
            seq=0,
            kind="message",
            author=partner.id,
            text=text,
            created_at=time.time(),
            step_id=exercise.steps[step_index].id,
            visible_to=None if session.mode == "together" else partner.id,
            safety=safety,
            shares=shares,
        )
        captured["step_index"] = step_index
        self._advance(session, couple, partner, exercise)
        return [message]

    async def resume(
        self, session_id: str, message_id: str, partner: Partner, couple: Couple
    ) -> TurnResult | Pending:
        """A retried turn whose message is already stored: its stored reply, or the reply
        still to be made (the first attempt failed after storing the message)."""
        session = await self.store.get_session(session_id)
        if session is None:
            raise KeyError(session_id)
        turns = await self.store.list_turns(session_id)
        message = next((t for t in turns if t.id == message_id), None)
        if message is None:
            raise KeyError(message_id)
        reply = next((t for t in turns if t.kind == "reply" and t.in_reply_to == message_id), None)
        if reply is not None:
            return TurnResult(session=session, message=message, reply=reply)
        exercise = self.exercise_of(session)
        step_index = next(
            (i for i, s in enumerate(exercise.steps) if s.id == message.step_id), session.step_index
        )
        return await self._pending(session, message, partner, couple, step_index, time.monotonic())

    async def _pending(
        self,
        session: Session,
        message: Turn,
        partner: Partner,
        couple: Couple,
        step_index: int,
        started: float,
        names: dict[str, str | None] | None = None,
        recent: list[Turn] | None = None,
    ) -> Pending:
        text = message.text
        exercise = self.exercise_of(session)
        step = exercise.steps[step_index]
        context = self.catalog.step_context(
            exercise, step_index, partner_count=len(couple.partner_ids), day=session.day
        )
        scripted = self.catalog.render(step.template, context, "scripted")
        system = self.catalog.render(
            self.catalog.system,
            self.catalog.system_context(exercise, partner_count=min(2, len(couple.partner_ids))),
        )
        instructions = self.catalog.render(step.template, context)
        history = await self._history(
            session, couple, partner, exclude=message.id, names=names, recent=recent
        )
        messages: list[ChatMessage] = [
            {"role": "system", "content": system},
            {"role": "system", "content": instructions},
            *history,
            {"role": "user", "content": self._label(couple, partner, session) + text},
        ]
        return Pending(
            session=session,
            message=message,
            request=ModelRequest(messages=tuple(messages), scripted=scripted),
            template=TemplateRef(step.template.id, step.template.version),
            step_id=step.id,
            draft=self.gate.is_draft(step.template) or self.gate.is_draft(self.catalog.system),
            reply_to=message.visible_to,
            after_disclosure=bool(session.disclosed_by),
            country=couple.country,
            started=started,
        )

    def _disclosure(
        self,
        session: Session,
        partner: Partner,
        couple: Couple,
        text: str,
        verdict: Verdict,
        message_id: str,
        step_id: str,
        now: float,
    ) -> list[Turn]:
        """Private to the author: the message and the help reply. The exercise pauses;
        the other partner gets a neutral notice, once, that says nothing of why."""
        help_msg = help_message(self.catalog, verdict, couple.country)
        turns = self._private(session, partner, text, help_msg, message_id, step_id, now)
        if session.mode == "together" and session.status != "paused":
            notice_text, notice_ref = paused_notice(self.catalog, couple.country)
            turns += [
                _notice(session.id, notice_text, notice_ref, step_id, other, now)
                for other in couple.partner_ids
                if other != partner.id
            ]
        session.status = "paused"
        if partner.id not in session.disclosed_by:
            session.disclosed_by.append(partner.id)
        return turns

    def _private(
        self,
        session: Session,
        partner: Partner,
        text: str,
        help_msg: HelpMessage,
        message_id: str,
        step_id: str,
        now: float,
        *,
        held: bool = False,
    ) -> list[Turn]:
        """The message and its help reply, both visible to the author alone."""
        return [
            Turn(
                id=message_id,
                session_id=session.id,
                seq=0,
                kind="message",
                author=partner.id,
                text=text,
                created_at=now,
                step_id=step_id,
                visible_to=partner.id,
                safety=help_msg.safety,
                held=held,
            ),
            Turn(
                id=new_id("rpl"),
                session_id=session.id,
                seq=0,
                kind="reply",
                author=COACH,
                text=help_msg.text,
                created_at=now,
                step_id=step_id,
                visible_to=partner.id,
                template=help_msg.template,
                model=None,
                safety=help_msg.safety,
                draft=self.gate.is_draft(self.catalog.template(help_msg.template.id)),
                in_reply_to=message_id,
            ),
        ]

    @staticmethod
    def _advance(session: Session, couple: Couple, partner: Partner, exercise: Exercise) -> None:
        step = exercise.steps[min(session.step_index, len(exercise.steps) - 1)]
        if partner.id not in session.step_posts:
            session.step_posts.append(partner.id)
        if step.advance == "each" and session.mode == "together":
            needed = set(couple.partner_ids)
        else:
            needed = {partner.id}
        if needed <= set(session.step_posts):
            session.step_index += 1
            session.step_posts = []
            if session.step_index >= len(exercise.steps):
                session.step_index = len(exercise.steps) - 1
                session.status = "completed"

    def _label(self, couple: Couple, partner: Partner, session: Session) -> str:
        if session.mode == "solo":
            return ""
        return f"{self._speaker(couple, partner.id, partner.display_name)}: "

    @staticmethod
    def _speaker(couple: Couple, partner_id: str, display_name: str | None) -> str:
        index = couple.partner_ids.index(partner_id) if partner_id in couple.partner_ids else 0
        fallback = f"Partner {'AB'[index] if index < 2 else index + 1}"
        return display_name or fallback

    def _history_margin(self) -> int:
        """How many of the newest turns to read for the history: partners' turns interleave
        with notices and private turns, so a margin over ``history_turns``."""
        return self.history_turns * 3 + 4 if self.history_turns > 0 else 0

    async def _history(
        self,
        session: Session,
        couple: Couple,
        partner: Partner,
        *,
        exclude: str,
        names: dict[str, str | None] | None = None,
        recent: list[Turn] | None = None,
    ) -> list[ChatMessage]:
        if self.history_turns <= 0:
            return []
        turns = recent if recent else await self.store.list_turns(session.id, last=self._history_margin())
        shared = [
            t
            for t in turns
            if t.id != exclude
            and t.kind in ("message", "reply")
            and (t.visible_to is None or (session.mode == "solo" and t.visible_to == partner.id))
        ][-self.history_turns :]
        authors = sorted({t.author for t in shared if t.author != COACH})
        if names is None or any(a not in names for a in authors):
            names = await self.store.display_names(authors)
        out: list[ChatMessage] = []
        for turn in shared:
            if turn.author == COACH:
                out.append({"role": "assistant", "content": turn.text})
                continue
            label = (
                ""
                if session.mode == "solo"
                else f"{self._speaker(couple, turn.author, names.get(turn.author))}: "
            )
            out.append({"role": "user", "content": label + turn.text})
        return out

    # -- the coach's reply --------------------------------------------------------------
    def _deadline(self) -> float:
        return time.monotonic() + self.turn_deadline

    async def reply(self, pending: Pending) -> TurnResult:
        answer = await self.model.complete(pending.request, deadline=self._deadline())
        verdict = self.scan_reply(answer.text, after_disclosure=pending.after_disclosure)
        replaced = verdict is None or verdict.is_disclosure
        text = pending.request.scripted if replaced else answer.text
        return await self._finish(
            pending,
            text=text,
            model=answer.model,
            fallback=answer.fallback,
            replaced=replaced,
            verdict=verdict,
        )

    async def _finish(
        self,
        pending: Pending,
        *,
        text: str,
        model: str,
        fallback: bool,
        replaced: bool,
        verdict: Verdict | None,
    ) -> TurnResult:
        reply_info = _verdict_info(verdict) if verdict is not None else None
        reply = Turn(
            id=new_id("rpl"),
            session_id=pending.session.id,
            seq=0,
            kind="reply",
            author=COACH,
            text=text,
            created_at=time.time(),
            step_id=pending.step_id,
            visible_to=pending.reply_to,
            template=pending.template,
            model=model,
            safety=reply_info,
            fallback=fallback,
            replaced=replaced,
            draft=pending.draft,
            in_reply_to=pending.message.id,
        )
        inbound = pending.message.safety
        author = pending.message.author
        # A shared held message had its check already: no second notice.
        concern = (
            inbound is not None
            and inbound.severity == Severity.CONCERN.value
            and pending.message.shares is None
        )

        def update(session: Session) -> list[Turn]:
            turns = [reply]
            if concern and author not in session.concern_noted:
                # A mild signal: a gentle, private pointer to a counselor, once a session.
                session.concern_noted.append(author)
                text, ref = concern_notice(self.catalog, pending.country)
                turns.append(_notice(session.id, text, ref, pending.step_id, author, time.time(), inbound))
            return turns

        ref = pending.template
        count = ReplyCount(template_id=ref.id, version=ref.version, replaced=replaced)
        session, turns, _ = await self.store.commit_turns(
            pending.session.id, update, count=count, base=pending.session
        )
        self._log(session, pending.message, turns[0], pending.started, None, reply_verdict=verdict)
        return TurnResult(session=session, message=pending.message, reply=turns[0])

    async def stream(self, pending: Pending) -> AsyncIterator[StreamEvent]:
        """Stream the coach's reply, releasing each sentence only after the safety check
        passed the reply so far. An unsafe sentence is never shown: the reply is replaced
        by the approved scripted line. A stream that breaks after text was shown is not
        replayed: it ends with an ``error`` event and the fallback line appended."""
        buffer = SentenceBuffer()
        shown: list[str] = []
        model = self.model.name
        fallback = replaced = False
        verdict: Verdict | None = None
        primary = self.model.primary
        deadline = self._deadline()

        def check(candidate: str) -> bool:
            nonlocal verdict
            verdict = self.scan_reply(candidate, after_disclosure=pending.after_disclosure)
            return verdict is not None and not verdict.is_disclosure

        if primary is None:
            upstream: AsyncIterator[str] = self.model.offline.stream(pending.request, deadline=deadline)
            model = OFFLINE_MODEL
        else:
            upstream = primary.stream(pending.request, deadline=deadline)
        try:
            try:
                async for delta in upstream:
                    for sentence in buffer.feed(delta):
                        if not check("".join(shown) + sentence):
                            replaced = True
                            break
                        shown.append(sentence)
                        yield "delta", {"text": sentence}
                    if replaced:
                        break
                if not replaced:
                    rest = buffer.flush()
                    if rest:
                        if check("".join(shown) + rest):
                            shown.append(rest)
                            yield "delta", {"text": rest}
                        else:
                            replaced = True
            finally:
                close = getattr(upstream, "aclose", None)
                if close is not None:
                    await close()
        except ModelUnavailable:
            # Nothing was shown yet: the offline line answers in full.
            fallback, model = True, OFFLINE_MODEL
            shown = [pending.request.scripted]
            yield "delta", {"text": pending.request.scripted}
        except StreamBroken:
            fallback = True
            yield "error", {"type": "stream-broken", "detail": "The reply was cut off."}
            line = (" " if shown else "") + pending.request.scripted
            shown.append(line)
            yield "delta", {"text": line}
        if replaced:
            shown = [pending.request.scripted]
            yield "replace", {"text": pending.request.scripted}
        if not shown:
            fallback, model = True, OFFLINE_MODEL
            shown = [pending.request.scripted]
            yield "delta", {"text": pending.request.scripted}
        result = await asyncio.shield(
            self._finish(
                pending,
                text="".join(shown).strip(),
                model=model,
                fallback=fallback,
                replaced=replaced,
                verdict=verdict,
            )
        )
        yield "done", {"result": result}

    # -- observability ----------------------------------------------------------------------
    @staticmethod
    def _log(
        session: Session,
        message: Turn,
        reply: Turn,
        started: float,
        verdict: Verdict | None,
        *,
        reply_verdict: Verdict | None = None,
    ) -> None:
        severity = message.safety.severity if message.safety else "unknown"
        log.info(
            "turn",
            extra={
                "event": "turn",
                "session_id": session.id,
                "exercise_id": session.exercise_id,
                "step_id": message.step_id,
                "message_id": message.id,
                "reply_id": reply.id,
                "template": f"{reply.template.id}@{reply.template.version}" if reply.template else None,
                "model": reply.model,
                "severity": severity,
                "reply_severity": reply_verdict.severity.value if reply_verdict else None,
                "fallback": reply.fallback,
                "replaced": reply.replaced,
                "ms": round((time.monotonic() - started) * 1000, 2),
            },
        )
