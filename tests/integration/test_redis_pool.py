"""The coach's Redis pool after Redis is killed and restarted (coach/redis_pool.py).

Found by the redis_restart drill: seconds after Redis was back, single requests still
answered 503 because they were sent on pooled connections to the dead server. With
redis-py's own pool, nine of these ten requests fail after the restart."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from coach import redis_pool
from coach.redis_pool import connection_pool
from tests.conftest import RedisServer

PARALLEL = 10


async def fill_pool(client: aioredis.Redis) -> None:
    """PARALLEL connections in the pool, idle."""
    popped = await asyncio.gather(*(client.blpop(["nothing"], 0.05) for _ in range(PARALLEL)))
    assert popped == [None] * PARALLEL


async def test_after_a_restart_no_request_is_sent_on_a_connection_to_the_dead_server() -> None:
    server = RedisServer().start()
    client = aioredis.Redis(connection_pool=connection_pool(server.url, max_connections=50))
    try:
        await fill_pool(client)
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait(timeout=10)
        with pytest.raises(RedisConnectionError):
            await client.get("while-down")  # a quick failure, not hidden
        server = RedisServer(port=server.port, workdir=server.dir).start()

        async def write(i: int) -> bool:
            return bool(await client.set(f"after-{i}", i))

        assert await asyncio.gather(*(write(i) for i in range(PARALLEL))) == [True] * PARALLEL
        assert await client.mget([f"after-{i}" for i in range(PARALLEL)]) == [str(i) for i in range(PARALLEL)]
    finally:
        await client.aclose()
        server.stop()


async def test_a_restart_while_the_coach_was_idle_costs_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing failed while Redis was down, so nothing started a new generation: the
    connections had sat idle, so each is pinged before use and remade when it does not
    answer (the idle time is shortened to keep the test quick)."""
    monkeypatch.setattr(redis_pool, "IDLE_CHECK_SECONDS", 0.05)
    server = RedisServer().start()
    client = aioredis.Redis(connection_pool=connection_pool(server.url, max_connections=50))
    try:
        await fill_pool(client)
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait(timeout=10)
        server = RedisServer(port=server.port, workdir=server.dir).start()
        await asyncio.sleep(0.1)
        writes = await asyncio.gather(*(client.set(f"idle-{i}", i) for i in range(PARALLEL)))
        assert writes == [True] * PARALLEL
    finally:
        await client.aclose()
        server.stop()


async def test_without_a_failure_pooled_connections_are_reused_not_remade() -> None:
    server = RedisServer().start()
    client = aioredis.Redis(connection_pool=connection_pool(server.url, max_connections=50))
    try:
        await fill_pool(client)
        made = int((await client.info("stats"))["total_connections_received"])
        for _ in range(3):
            await asyncio.gather(*(client.incr("n") for _ in range(PARALLEL)))
        assert int((await client.info("stats"))["total_connections_received"]) == made
        assert await client.get("n") == str(3 * PARALLEL)
    finally:
        await client.aclose()
        server.stop()
