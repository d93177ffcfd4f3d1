"""Sessions: start an exercise, post messages (JSON or SSE), read the transcript, live events."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.response import ServerSentEventMessage, Stream
from litestar.status_codes import HTTP_201_CREATED

from coach.api.idempotency import Claim, Replay, claim, idempotent
from coach.api.problems import Problem, is_store_error, problem_responses
from coach.api.schemas import (
    MessageList,
    MessageOut,
    PostMessage,
    PostResult,
    SessionList,
    SessionOut,
    StartSession,
)
from coach.api.sse import event_stream
from coach.api.views import can_see, message_out, safety_out, session_out
from coach.catalog import Catalog
from coach.conversation import (
    Coach,
    InboundCheck,
    NotHeld,
    Pending,
    SafetyUnavailable,
    SessionCompleted,
    SessionPaused,
    TurnResult,
)
from coach.events import EventHub, next_event, with_heartbeats
from coach.records import Couple, Partner, Session
from coach.settings import Settings
from coach.store import Store

log = logging.getLogger("coach.api")
STORE_FAILED = "The reply could not be saved. Send the message again with the same Idempotency-Key."

SessionId = Annotated[str, PathParameter(description="The session id", max_length=64)]
MessageId = Annotated[str, PathParameter(description="The held message's id", max_length=64)]


async def names_of(store: NamedDependency[Store], couple: NamedDependency[Couple]) -> dict[str, str | None]:
    return await store.display_names(couple.partner_ids)


class TurnInput(msgspec.Struct, frozen=True):
    """A message to post: what the endpoint read before the turn starts."""

    session: Session
    partner: Partner
    couple: Couple
    text: str
    names: dict[str, str | None]
    #: the message's safety check, started before the endpoint's Redis round trips
    check: InboundCheck | None = None
    #: the id of the author's held message to share (``text`` is then unused)
    shares: str | None = None


async def session_for(
    store: NamedDependency[Store], session_id: str, partner: NamedDependency[Partner]
) -> Session:
    """The session, if this partner may see it; otherwise 404 (never reveals existence)."""
    return visible_session(await store.get_session(session_id), partner)


def visible_session(session: Session | None, partner: Partner) -> Session:
    if session is None or session.couple_id != partner.couple_id or not session.visible_for(partner.id):
        raise Problem("not-found", "No such session.")
    return session


def check_text(text: str, settings: Settings) -> str:
    if not text.strip():
        raise Problem("message-empty", "Write something before sending.")
    if len(text) > settings.max_message_chars:
        raise Problem(
            "message-too-long",
            f"A message may be at most {settings.max_message_chars} characters.",
            limit=settings.max_message_chars,
            length=len(text),
        )
    return text.strip()


def result_out(result: TurnResult, viewer: str, names: dict[str, str | None], catalog: Catalog) -> PostResult:
    message = message_out(result.message, viewer, names)
    reply = message_out(result.reply, viewer, names)
    if result.message.safety is not None:
        # The author sees the verdict on their own message, with its resources.
        reply.safety = safety_out(result.message.safety)
    exercise = catalog.exercises[result.session.exercise_id]
    return PostResult(message=message, reply=reply, session=session_out(result.session, exercise))


# Why the coach can refuse a turn, and the problem each one is answered with.
TURN_REFUSALS = (SessionPaused, SessionCompleted, SafetyUnavailable, NotHeld)


def turn_problem(exc: Exception) -> Problem:
    if isinstance(exc, SessionPaused):
        return Problem("session-paused", "This exercise is paused for now.")
    if isinstance(exc, SessionCompleted):
        return Problem("session-completed", "Start the exercise again for a new round.")
    if isinstance(exc, NotHeld):
        return Problem("not-held", "Only a message held for you can be shared, and only once.")
    return Problem("safety-unavailable", headers={"Retry-After": "5"})


def replay_stream(replay: Replay) -> Response[Any]:
    """A retried streamed turn: the stored result, replayed as the same kind of stream."""
    body = msgspec.json.decode(replay.body)

    async def events() -> AsyncGenerator[ServerSentEventMessage, None]:
        yield ServerSentEventMessage(
            data=msgspec.json.encode(body["message"]).decode(), event="message", id=1
        )
        yield ServerSentEventMessage(
            data=msgspec.json.encode({"text": body["reply"]["text"]}).decode(), event="delta", id=2
        )
        yield ServerSentEventMessage(data=msgspec.json.encode(body).decode(), event="done", id=3)

    return event_stream(
        events(),
        status_code=replay.status,
        headers={"Cache-Control": "no-store", "Idempotent-Replayed": "true"},
    )


async def start_turn(coach: Coach, turn: TurnInput, found: Claim | None) -> TurnResult | Pending:
    """Accept the message; or, when an earlier attempt with this Idempotency-Key stored it
    and then failed, resume that turn (its stored reply, or the reply still to make)."""
    try:
        if found is not None and found.resumed:
            return await coach.resume(turn.session.id, found.message_id, turn.partner, turn.couple)
        receipt = found.receipt() if found else None
        if turn.shares is not None:
            return await coach.share(
                turn.session, turn.partner, turn.couple, turn.shares, receipt, turn.names
            )
        return await coach.accept(
            turn.session, turn.partner, turn.couple, turn.text, receipt, turn.names, turn.check
        )
    except KeyError:
        raise Problem("not-found", "No such message." if turn.shares else "No such session.") from None


def wants_stream(request: Request[Any, Any, Any]) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


class SessionController(Controller):
    path = "/v1/sessions"
    tags = ["sessions"]
    security = [{"bearer": []}]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Start an exercise",
        responses={
            201: ResponseSpec(SessionOut, description="SessionOut", generate_examples=False),
            **problem_responses(401, 404, 409, 413),
        },
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[StartSession],
        partner: NamedDependency[Partner],
        couple: NamedDependency[Couple],
        store: NamedDependency[Store],
        coach: NamedDependency[Coach],
        catalog: NamedDependency[Catalog],
    ) -> Response[bytes]:
        exercise = coach.servable_exercises().get(data.exercise_id)
        if exercise is None:
            raise Problem("not-found", f"No exercise {data.exercise_id!r}.")

        async def run(_: Claim | None) -> tuple[int, SessionOut]:
            session = await coach.start_session(partner, couple, exercise)
            return 201, session_out(session, exercise)

        return await idempotent(request, store, partner.id, run)

    @get("/", summary="This partner's sessions, newest first", responses=problem_responses(401))
    async def list_sessions(
        self,
        partner: NamedDependency[Partner],
        store: NamedDependency[Store],
        catalog: NamedDependency[Catalog],
    ) -> SessionList:
        sessions = await store.list_sessions(partner.couple_id)
        return SessionList(
            sessions=[
                session_out(s, catalog.exercises[s.exercise_id])
                for s in sessions
                if s.visible_for(partner.id) and s.exercise_id in catalog.exercises
            ]
        )

    @get(
        "/{session_id:str}",
        summary="One session: its exercise, step and status",
        responses=problem_responses(401, 404),
    )
    async def show(
        self,
        session_id: SessionId,
        partner: NamedDependency[Partner],
        store: NamedDependency[Store],
        catalog: NamedDependency[Catalog],
    ) -> SessionOut:
        session = await session_for(store, session_id, partner)
        return session_out(session, catalog.exercises[session.exercise_id])

    @post(
        "/{session_id:str}/messages",
        status_code=HTTP_201_CREATED,
        summary="Send a message; the coach replies (JSON, or SSE with Accept: text/event-stream)",
        response_description="The message and the coach's reply",
        responses={
            201: ResponseSpec(PostResult, description="PostResult", generate_examples=False),
            **problem_responses(401, 404, 409, 413),
        },
    )
    async def post_message(
        self,
        request: Request[Any, Any, Any],
        session_id: SessionId,
        data: JSONBody[PostMessage],
        partner: NamedDependency[Partner],
        couple: NamedDependency[Couple],
        store: NamedDependency[Store],
        coach: NamedDependency[Coach],
        catalog: NamedDependency[Catalog],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        text = check_text(data.text, settings)
        check = coach.start_inbound(text, couple.country)  # runs while Redis answers below
        try:
            session, names = await store.session_with_names(session_id, couple.partner_ids)
            session = visible_session(session, partner)
            turn = TurnInput(session, partner, couple, text, names, check)
            return await self._respond(request, turn, store, coach, catalog, settings)
        finally:
            check.cancel()  # a check the turn did not use (not found, refused, replayed)

    @post(
        "/{session_id:str}/messages/{message_id:str}/share",
        status_code=HTTP_201_CREATED,
        summary="Share a held message with the session; the coach replies (JSON, or SSE)",
        description=(
            "A message the safety check held private to its author (`held: true`; see "
            "docs/safety.md) is shown to the session and coached, at its author's request. "
            "No body; `Idempotency-Key` and `Accept: text/event-stream` work as for sending."
        ),
        response_description="The shared message (`shares`: the held one's id) and the coach's reply",
        responses={
            201: ResponseSpec(PostResult, description="PostResult", generate_examples=False),
            **problem_responses(401, 404, 409),
        },
    )
    async def share(
        self,
        request: Request[Any, Any, Any],
        session_id: SessionId,
        message_id: MessageId,
        partner: NamedDependency[Partner],
        couple: NamedDependency[Couple],
        store: NamedDependency[Store],
        coach: NamedDependency[Coach],
        catalog: NamedDependency[Catalog],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        session, names = await store.session_with_names(session_id, couple.partner_ids)
        session = visible_session(session, partner)
        turn = TurnInput(session, partner, couple, "", names, shares=message_id)
        return await self._respond(request, turn, store, coach, catalog, settings)

    async def _respond(
        self,
        request: Request[Any, Any, Any],
        turn: TurnInput,
        store: Store,
        coach: Coach,
        catalog: Catalog,
        settings: Settings,
    ) -> Response[Any]:
        """Run the turn once per Idempotency-Key: JSON, or streamed when asked."""
        if wants_stream(request):
            return await self._stream(request, turn, store, coach, catalog, settings)

        async def run(found: Claim | None) -> tuple[int, PostResult]:
            result = await self._turn(turn, store, coach, settings, found)
            return 201, result_out(result, turn.partner.id, turn.names, catalog)

        return await idempotent(request, store, turn.partner.id, run)

    @staticmethod
    async def _claim(store: Store, partner: Partner, settings: Settings) -> str:
        """The partner's turn claim (its token), or 409 when a turn is in flight."""
        token = await store.claim_turn(partner.id, int(settings.turn_deadline) + 15)
        if token is None:
            raise Problem("turn-in-progress", headers={"Retry-After": "1"})
        return token

    async def _turn(
        self, turn: TurnInput, store: Store, coach: Coach, settings: Settings, found: Claim | None
    ) -> TurnResult:
        partner = turn.partner
        token = await self._claim(store, partner, settings)
        store_failed = False
        try:
            started = await start_turn(coach, turn, found)
            return started if isinstance(started, TurnResult) else await coach.reply(started)
        except TURN_REFUSALS as exc:
            raise turn_problem(exc) from None
        except Exception as exc:
            store_failed = is_store_error(exc)
            raise
        finally:
            await store.release_turn(partner.id, token, wait=not store_failed)

    async def _stream(
        self,
        request: Request[Any, Any, Any],
        turn: TurnInput,
        store: Store,
        coach: Coach,
        catalog: Catalog,
        settings: Settings,
    ) -> Response[Any]:
        partner, names = turn.partner, turn.names
        found = await claim(request, store, partner.id)
        if isinstance(found, Replay):
            return replay_stream(found)
        try:
            token = await self._claim(store, partner, settings)
        except BaseException as exc:
            if found is not None:
                await found.abandon(wait=not is_store_error(exc))
            raise
        try:
            accepted = await start_turn(coach, turn, found)
        except BaseException as exc:
            await store.release_turn(partner.id, token, wait=not is_store_error(exc))
            if found is not None:
                await found.abandon(wait=not is_store_error(exc))
            if isinstance(exc, TURN_REFUSALS):
                raise turn_problem(exc) from None
            raise

        async def events() -> AsyncGenerator[ServerSentEventMessage, None]:
            n = 0

            def event(kind: str, payload: Any) -> ServerSentEventMessage:
                nonlocal n
                n += 1
                return ServerSentEventMessage(data=msgspec.json.encode(payload).decode(), event=kind, id=n)

            finished = store_failed = False

            async def done(result: TurnResult) -> ServerSentEventMessage:
                nonlocal finished
                body = result_out(result, partner.id, names, catalog)
                if found is not None:
                    await found.finish(201, msgspec.json.encode(body))
                finished = True
                return event("done", body)

            try:
                message = accepted.message
                yield event("message", message_out(message, partner.id, names))
                if message.safety is not None:
                    yield event("safety", safety_out(message.safety))
                if isinstance(accepted, TurnResult):
                    yield event("delta", {"text": accepted.reply.text})
                    yield await done(accepted)
                    return
                assert isinstance(accepted, Pending)
                async for item in with_heartbeats(coach.stream(accepted), settings.heartbeat_seconds):
                    if item is None:
                        yield ServerSentEventMessage(comment="heartbeat")
                        continue
                    kind, payload = item
                    yield await done(payload["result"]) if kind == "done" else event(kind, payload)
            except Exception as exc:
                if not is_store_error(exc):
                    raise
                # The reply could not be saved: say so in the stream (the 201 is long sent).
                # The message is stored; a retry with the same Idempotency-Key completes it.
                log.warning("store unavailable during a streamed turn: %s", type(exc).__name__)
                store_failed = True
                yield event("error", {"type": "store-unavailable", "detail": STORE_FAILED})
            finally:
                # After a store failure the clean-ups run in the background: the stream ends now.
                await store.release_turn(partner.id, token, wait=not store_failed)
                if found is not None and not finished:
                    await found.abandon(wait=not store_failed)

        return event_stream(events(), status_code=HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @get(
        "/{session_id:str}/messages",
        summary="The transcript this partner may see",
        responses=problem_responses(401, 404),
    )
    async def transcript(
        self,
        session_id: SessionId,
        partner: NamedDependency[Partner],
        couple: NamedDependency[Couple],
        store: NamedDependency[Store],
        after: Annotated[int, QueryParameter(ge=0, description="Only messages with seq > after")] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 100,
    ) -> MessageList:
        session = await session_for(store, session_id, partner)
        last_event = await store.last_event_id(session.id)
        names = await names_of(store, couple)
        visible = [t for t in await store.list_turns(session.id) if can_see(t, partner.id) and t.seq > after]
        page = visible[:limit]
        next_cursor = page[-1].seq if len(visible) > limit else None
        return MessageList(
            messages=[message_out(t, partner.id, names) for t in page],
            last_event_id=last_event,
            next_cursor=next_cursor,
        )

    @get(
        "/{session_id:str}/events",
        summary="Live: messages and coach replies (SSE)",
        media_type="text/event-stream",
        response_description="Server-sent events: each turn this partner may see, as it is stored",
        responses=problem_responses(401, 404),
    )
    async def live(
        self,
        request: Request[Any, Any, Any],
        session_id: SessionId,
        partner: NamedDependency[Partner],
        couple: NamedDependency[Couple],
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
        hub: NamedDependency[EventHub],
        last_event_id: Annotated[
            str | None,
            HeaderParameter(name="Last-Event-ID", required=False, pattern=r"^\d{1,20}(-\d{1,20})?$"),
        ] = None,
    ) -> Stream:
        session = await session_for(store, session_id, partner)
        start = last_event_id or await store.last_event_id(session.id)

        async def events() -> AsyncGenerator[ServerSentEventMessage, None]:
            names = await names_of(store, couple)
            yield ServerSentEventMessage(comment="connected", retry=2000)
            async with hub.subscribe(session.id, start) as listener:
                while True:
                    event = await next_event(listener, settings.heartbeat_seconds)
                    if event is None:
                        yield ServerSentEventMessage(comment="heartbeat")
                        continue
                    event_id, turn, visible_to = event
                    if visible_to and visible_to != partner.id:
                        continue
                    if turn.author not in names and turn.author != "coach":
                        names = await names_of(store, couple)
                    view = message_out(turn, partner.id, names)
                    yield ServerSentEventMessage(
                        data=msgspec.json.encode(view).decode(), event=turn.kind, id=event_id
                    )

        return event_stream(events(), headers={"Cache-Control": "no-store"})


__all__ = ["MessageOut", "SessionController"]
