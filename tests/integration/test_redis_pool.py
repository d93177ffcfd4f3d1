"""The coach's Redis pool after Redis is killed and restarted (coach/redis_pool.py).

Found by the redis_restart drill: seconds after Redis was back, single requests still
answered 503 because they were sent on pooled connections to the dead server. With
redis-py's own pool, nine of these ten requests fail after the restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from coach import redis_pool
from coach.redis_pool import connection_pool
from tests.conftest import RedisServer

PARALLEL = 10


class Pooled:
    """A redis-server of its own and a client on the coach's pool, with PARALLEL idle
    connections in the pool."""

    def __init__(self) -> None:
        self.server = RedisServer().start()
        self.client = aioredis.Redis(connection_pool=connection_pool(self.server.url, max_connections=50))

    def kill(self) -> None:
        assert self.server.proc is not None
        self.server.proc.kill()
        self.server.proc.wait(timeout=10)

    def start_again(self) -> None:
        """A new redis-server on the same port and folder."""
        self.server = RedisServer(port=self.server.port, workdir=self.server.dir).start()

    async def writes_in_parallel(self, prefix: str) -> list[bool]:
        return list(await asyncio.gather(*(self.client.set(f"{prefix}-{i}", i) for i in range(PARALLEL))))


@pytest.fixture
async def pooled() -> AsyncIterator[Pooled]:
    pool = Pooled()
    popped = await asyncio.gather(*(pool.client.blpop(["nothing"], 0.05) for _ in range(PARALLEL)))
    assert popped == [None] * PARALLEL
    yield pool
    await pool.client.aclose()
    pool.server.stop()


async def test_after_a_restart_no_request_is_sent_on_a_connection_to_the_dead_server(pooled: Pooled) -> None:
    pooled.kill()
    with pytest.raises(RedisConnectionError):
        await pooled.client.get("while-down")  # a quick failure, not hidden
    pooled.start_again()
    assert await pooled.writes_in_parallel("after") == [True] * PARALLEL
    keys = [f"after-{i}" for i in range(PARALLEL)]
    assert await pooled.client.mget(keys) == [str(i) for i in range(PARALLEL)]


async def test_a_restart_while_the_coach_was_idle_costs_no_request(
    pooled: Pooled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing failed while Redis was down, so nothing started a new generation: the
    connections had sat idle, so each is pinged before use and remade when it does not
    answer (the idle time is shortened to keep the test quick)."""
    monkeypatch.setattr(redis_pool, "IDLE_CHECK_SECONDS", 0.05)
    pooled.kill()
    pooled.start_again()
    await asyncio.sleep(0.1)
    assert await pooled.writes_in_parallel("idle") == [True] * PARALLEL


async def test_without_a_failure_pooled_connections_are_reused_not_remade(pooled: Pooled) -> None:
    client = pooled.client
    made = int((await client.info("stats"))["total_connections_received"])
    for _ in range(3):
        await asyncio.gather(*(client.incr("n") for _ in range(PARALLEL)))
    assert int((await client.info("stats"))["total_connections_received"]) == made
    assert await client.get("n") == str(3 * PARALLEL)
