"""Live session events: one Redis reader per process fans out to every SSE listener.

Events live in a Redis stream per session (written by ``Store.commit_turns``), so any
worker process can serve any listener and ``Last-Event-ID`` resumes exactly. Instead of
one blocking XREAD (and one Redis connection) per listener, a process runs a single
reader over the streams its listeners follow; a private wake-up stream interrupts the
blocking read when a listener for a new session arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec
import redis.asyncio as aioredis

from coach.records import Turn
from coach.store import Store

log = logging.getLogger("coach.events")

T = TypeVar("T")
Event = tuple[str, Turn, str]  # (stream id, turn, visible_to or "")


def stream_id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms or 0), int(seq or 0)


class _Listener:
    def __init__(self, last: str) -> None:
        self.last = stream_id_key(last)
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def offer(self, event: Event) -> None:
        key = stream_id_key(event[0])
        if key > self.last:
            self.last = key
            self.queue.put_nowait(event)


#: how long the hub's one ``XREAD`` waits for new events before asking again
BLOCK_MS = 30_000


class EventHub:
    def __init__(
        self, store: Store, *, redis: aioredis.Redis | None = None, block_ms: int = BLOCK_MS
    ) -> None:
        self.store = store
        #: the client the hub's blocking read uses (the store's unless given one)
        self.redis = redis if redis is not None else store.redis
        self.block_ms = block_ms
        self.listeners: dict[str, set[_Listener]] = {}
        self.cursors: dict[str, str] = {}
        self.wake_key = store.k("hub", secrets.token_hex(8))
        self.task: asyncio.Task[None] | None = None

    @property
    def listener_count(self) -> int:
        return sum(len(v) for v in self.listeners.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: str, after: str) -> AsyncIterator[_Listener]:
        listener = _Listener(after)
        new_session = session_id not in self.listeners
        self.listeners.setdefault(session_id, set()).add(listener)
        if new_session:
            self.cursors[session_id] = after
        try:
            # Catch up from ``after`` directly; the hub's read covers what comes next,
            # and ``offer`` drops anything delivered twice.
            for event in await self.store.read_events(session_id, after, block_ms=None):
                listener.offer(event)
            if new_session:
                await self._wake()
            self._ensure_running()
            yield listener
        finally:
            group = self.listeners.get(session_id)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self.listeners[session_id]
                    self.cursors.pop(session_id, None)

    def _ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="coach-event-hub")

    async def _wake(self) -> None:
        await self.store.redis.xadd(self.wake_key, {"w": "1"}, maxlen=10, approximate=True)
        await self.store.redis.expire(self.wake_key, 3600)

    async def _run(self) -> None:
        wake_cursor = "$"
        while self.listeners:
            streams: dict[Any, Any] = {
                self.store.k("session", sid, "events"): cur for sid, cur in self.cursors.items()
            }
            streams[self.wake_key] = wake_cursor
            try:
                result: Any = await self.redis.xread(streams, block=self.block_ms, count=500)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event hub read failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for stream_key, entries in result or []:
                if stream_key == self.wake_key:
                    wake_cursor = entries[-1][0]
                    continue
                session_id = stream_key.split(":")[2]
                for event_id, fields in entries:
                    self.cursors[session_id] = event_id
                    turn = msgspec.json.decode(fields["turn"], type=Turn)
                    event = (event_id, turn, fields.get("visible_to", ""))
                    for listener in list(self.listeners.get(session_id, ())):
                        listener.offer(event)

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def next_event(listener: _Listener, wait_seconds: float) -> Event | None:
    try:
        async with asyncio.timeout(wait_seconds):  # not wait_for: a task per call on 3.11
            return await listener.queue.get()
    except TimeoutError:
        return None


__all__ = ["EventHub", "next_event"]


async def with_heartbeats(source: AsyncIterator[T], every: float) -> AsyncIterator[T | None]:
    """Items of ``source``, with None whenever ``every`` seconds pass without one (the
    caller sends a heartbeat comment). Closing this generator cancels ``source``."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(("item", item))
            await queue.put(("end", None))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put(("error", exc))

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                async with asyncio.timeout(every):
                    kind, value = await queue.get()
            except TimeoutError:
                yield None
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
