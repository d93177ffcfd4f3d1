"""A turn's commit: one round trip when the session is unchanged, and still exact when it
changed meanwhile (concurrent turns), on a real redis-server and on the in-process store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import msgspec
import pytest
import redis.asyncio as aioredis

from coach.records import Session, Turn
from coach.store import ReplyCount, Store
from tests.conftest import RedisServer


@pytest.fixture(params=["redis-server", "fakeredis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "redis-server":
        server: RedisServer = request.getfixturevalue("redis_server")
        client: Any = aioredis.from_url(server.url, decode_responses=True)
        await client.flushdb()
    else:
        client = fakeredis.FakeAsyncRedis(decode_responses=True)
    yield Store(client, retention_seconds=600)
    await client.aclose()


async def started(store: Store, sid: str = "ses_c") -> Session:
    now = time.time()
    session = Session(
        id=sid,
        couple_id="cpl",
        exercise_id="deeper-questions",
        created_by="ptn_a",
        mode="together",
        created_at=now,
        updated_at=now,
    )
    await store.create_session(session)
    return session


def one_message(text: str) -> Any:
    def update(session: Session) -> list[Turn]:
        return [
            Turn(
                id=f"msg_{text}",
                session_id=session.id,
                seq=0,
                kind="message",
                author="ptn_a",
                text=text,
                created_at=time.time(),
                step_id="s",
            )
        ]

    return update


async def test_concurrent_commits_from_one_stale_read_each_land_once_in_order(store: Store) -> None:
    base = await started(store)
    results = await asyncio.gather(
        *(store.commit_turns(base.id, one_message(str(i)), base=base) for i in range(20))
    )
    turns = await store.list_turns(base.id)
    assert sorted(t.seq for t in turns) == list(range(1, 21))
    assert sorted(t.text for t in turns) == sorted(str(i) for i in range(20))
    assert sorted(r[1][0].seq for r in results) == list(range(1, 21))  # what each caller was told
    stored = await store.get_session(base.id)
    assert stored is not None and stored.turn_count == 20
    events = await store.read_events(base.id, "0", block_ms=None)
    assert [e[1].seq for e in events] == list(range(1, 21))


async def test_a_record_written_differently_is_read_back_and_committed(store: Store) -> None:
    base = await started(store)
    # As an older version might have written it: other key order, an unknown field.
    legacy = msgspec.json.decode(msgspec.json.encode(base))
    legacy = {"legacy_field": 1, **dict(reversed(list(legacy.items())))}
    await store.redis.set(store.k("session", base.id), msgspec.json.encode(legacy))
    session, turns, _ = await store.commit_turns(base.id, one_message("x"), base=base)
    assert turns[0].seq == 1 and session.turn_count == 1
    assert [t.text for t in await store.list_turns(base.id)] == ["x"]


async def test_a_gone_session_is_a_key_error_and_writes_nothing(store: Store) -> None:
    base = await started(store)
    await store.redis.delete(store.k("session", base.id))
    with pytest.raises(KeyError):
        await store.commit_turns(base.id, one_message("x"), base=base)
    assert await store.list_turns(base.id) == []


async def test_reply_counts_land_with_the_turns(store: Store) -> None:
    base = await started(store)
    count = ReplyCount(template_id="t", version="v1", replaced=True)
    session, _, _ = await store.commit_turns(base.id, one_message("a"), count=count, base=base)
    await store.commit_turns(
        base.id,
        one_message("b"),
        count=ReplyCount(template_id="t", version="v1", replaced=False),
        base=session,
    )
    assert await store.reply_counts("t", "v1") == (2, 1)


async def test_a_commit_can_answer_with_the_newest_turns(store: Store) -> None:
    session = await started(store)
    for text in "abc":
        session, _, recent = await store.commit_turns(session.id, one_message(text), base=session, recent=2)
    assert [t.text for t in recent] == ["b", "c"]
    assert (await store.commit_turns(session.id, one_message("d"), base=session)).recent == []
