"""One Redis reader per process serves every live listener, without loss or repeats."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from coach.events import EventHub, next_event
from coach.records import Session, Turn
from coach.store import Store


async def add_message(store: Store, session_id: str, text: str) -> None:
    def update(session: Session) -> list[Turn]:
        return [
            Turn(
                id=f"msg_{text}",
                session_id=session_id,
                seq=0,
                kind="message",
                author="ptn_x",
                text=text,
                created_at=time.time(),
                step_id="s",
            )
        ]

    await store.commit_turns(session_id, update)


async def new_session(store: Store, sid: str) -> None:
    now = time.time()
    await store.create_session(
        Session(
            id=sid,
            couple_id="cpl",
            exercise_id="deeper-questions",
            created_by="ptn_x",
            mode="together",
            created_at=now,
            updated_at=now,
        )
    )


async def test_many_listeners_one_reader_and_a_new_session_wakes_it(redis_client: Any) -> None:
    store = Store(redis_client, retention_seconds=600)
    hub = EventHub(store, block_ms=60_000)  # a missed wake-up would stall for a minute
    await new_session(store, "ses_one")
    await new_session(store, "ses_two")
    await add_message(store, "ses_one", "before")
    try:
        async with hub.subscribe("ses_one", "0") as a, hub.subscribe("ses_one", "0") as b:
            # Both catch up on what was there before they connected.
            for listener in (a, b):
                event = await asyncio.wait_for(next_event(listener, 5), 5)
                assert event is not None and event[1].text == "before"
            await add_message(store, "ses_one", "live")
            for listener in (a, b):
                event = await next_event(listener, 5)
                assert event is not None and event[1].text == "live"
            # A listener on another session joins while the reader is blocked.
            last = await store.last_event_id("ses_two")
            async with hub.subscribe("ses_two", last) as c:
                await add_message(store, "ses_two", "other")
                event = await next_event(c, 5)
                assert event is not None and event[1].text == "other"
                assert hub.listener_count == 3
            # Nothing repeated, nothing from the other session.
            assert a.queue.empty() and b.queue.empty()
        assert hub.listener_count == 0
    finally:
        await hub.aclose()
