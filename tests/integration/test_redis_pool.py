"""The coach's Redis pool after Redis is killed and restarted, or stops answering
(coach/redis_pool.py).

Found by the redis_restart drill: seconds after Redis was back, single requests still
answered 503 because they were sent on pooled connections to the dead server. With
redis-py's own pool, nine of these ten requests fail after the restart. Found by the
redis_stall drill: with no socket timeout, a request on a Redis that stopped answering
waited for as long as it stayed stopped."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from coach import redis_pool
from coach.redis_pool import connection_pool
from tests.conftest import RedisServer

PARALLEL = 10
#: the pool's socket timeout here (the coach's default, COACH_REDIS_TIMEOUT, is 2 s)
TIMEOUT = 0.5
#: a command still waiting this long on a stopped Redis hangs
HANG = 10 * TIMEOUT


class Pooled:
    """A redis-server of its own and a client on the coach's pool, with PARALLEL idle
    connections in the pool."""

    def __init__(self) -> None:
        self.server = self.first = RedisServer().start()
        pool = connection_pool(self.server.url, max_connections=50, socket_timeout=TIMEOUT)
        self.client = aioredis.Redis(connection_pool=pool)

    def kill(self) -> None:
        assert self.server.proc is not None
        self.server.proc.kill()
        self.server.proc.wait(timeout=10)

    def stop_answering(self) -> None:
        """SIGSTOP: the server keeps its sockets and answers nothing (a hung Redis, or a
        partition that drops packets); the kernel still accepts new connections."""
        assert self.server.proc is not None
        os.kill(self.server.proc.pid, signal.SIGSTOP)

    def go_on(self) -> None:
        assert self.server.proc is not None
        os.kill(self.server.proc.pid, signal.SIGCONT)

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
    pool.go_on()
    await pool.client.aclose()
    pool.server.stop()
    pool.first.close()


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


async def connections_received(url: str) -> int:
    """How many connections the server has accepted, asked on a connection of its own."""
    probe = aioredis.from_url(url)
    try:
        return int((await probe.info("stats"))["total_connections_received"])
    finally:
        await probe.aclose()


async def test_on_a_redis_that_stops_answering_commands_fail_instead_of_waiting(
    pooled: Pooled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command fails with a timeout while Redis is still stopped, whether its pooled
    connection was just used or sat idle (pinged first), and the pool serves again as soon
    as Redis goes on."""
    monkeypatch.setattr(redis_pool, "IDLE_CHECK_SECONDS", 0.05)
    busy = [pooled.client.set(f"busy-{i}", i) for i in range(PARALLEL // 2)]
    pooled.stop_answering()
    try:
        fresh = await asyncio.wait_for(asyncio.gather(*busy, return_exceptions=True), HANG)
        await asyncio.sleep(0.1)  # the other pooled connections are idle now
        idle = await asyncio.wait_for(
            asyncio.gather(*(pooled.client.get(f"k{i}") for i in range(PARALLEL)), return_exceptions=True),
            HANG,
        )
    finally:
        pooled.go_on()
    assert [type(r) for r in fresh + idle] == [RedisTimeoutError] * len(fresh + idle)
    assert await pooled.writes_in_parallel("after") == [True] * PARALLEL


async def test_an_idle_connection_that_does_not_answer_its_ping_fails_the_request_at_once(
    pooled: Pooled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PING that times out means Redis is there but not answering: a new connection would
    wait as long again, so the request fails without opening one (one timeout, not two)."""
    monkeypatch.setattr(redis_pool, "IDLE_CHECK_SECONDS", 0.05)
    before = await connections_received(pooled.server.url)
    await asyncio.sleep(0.1)
    pooled.stop_answering()
    try:
        answers = await asyncio.wait_for(
            asyncio.gather(*(pooled.client.get(f"k{i}") for i in range(PARALLEL)), return_exceptions=True),
            HANG,
        )
    finally:
        pooled.go_on()
    assert [type(r) for r in answers] == [RedisTimeoutError] * PARALLEL
    # only the probe's own connection is new
    assert await connections_received(pooled.server.url) == before + 1
