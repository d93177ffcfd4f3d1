"""The Redis connection pool: one that hands out no connection made before a failure.

redis-py's pool checks a pooled connection before handing it out, but after Redis is
killed and restarted its idle connections to the dead server can pass that check: the
redis_restart drill (bench/drills) saw single ``503 store-unavailable`` answers seconds
after Redis was back, each a command sent on such a connection ("Connection closed by
server."). When several requests took idle connections at once after a restart, all but
one failed (``tests/integration/test_redis_pool.py``).

So a command that fails for its connection (redis-py closes that connection with the
error) starts a new *generation*: every connection made before it is reconnected by the
next request that takes it, before that request sends anything. And a connection idle
for longer than :data:`IDLE_CHECK_SECONDS` is first asked ``PING``; if that fails it is
reconnected (and a new generation starts) - so a restart while the coach was idle, with
no failed command to notice it, costs no request either. Nothing is retried - a command
Redis may have carried out before dying is never sent twice (``PING`` changes nothing) -
only sockets that may lead to a dead server are replaced. The cost is one reconnect per
pooled connection after each failure, and one ``PING`` round trip when a request takes a
connection that sat idle for a second.

A Redis that stops answering without closing its sockets (a hung server, a network
partition; the redis_stall drill stops it with SIGSTOP) is bounded by the socket timeout:
a command waits at most that long, fails, and the request answers 503. An idle
connection whose ``PING`` times out fails the request at once rather than being remade
and tried again, so such a request waits one timeout, not two.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: A pooled connection idle longer than this is pinged before a request uses it.
IDLE_CHECK_SECONDS = 1.0


class FreshAfterFailurePool(aioredis.BlockingConnectionPool):
    """A blocking pool (a request waits briefly for a free connection) that reconnects
    every connection made before the latest connection failure before reusing it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.generation = 0
        self._made_in: weakref.WeakKeyDictionary[AbstractConnection, int] = weakref.WeakKeyDictionary()
        self._released_at: weakref.WeakKeyDictionary[AbstractConnection, float] = weakref.WeakKeyDictionary()

    def connection_failed(self) -> None:
        self.generation += 1

    def make_connection(self) -> AbstractConnection:
        connection: AbstractConnection = super().make_connection()  # type: ignore[no-untyped-call]
        close = connection.disconnect

        async def close_noting_failure(
            nowait: bool = False,
            error: Exception | None = None,
            failure_count: int | None = None,
            health_check_failed: bool = False,
        ) -> None:
            # redis-py passes the error only when a command failed on this connection
            if error is not None:
                self.connection_failed()
            await close(nowait, error, failure_count, health_check_failed)

        connection.disconnect = close_noting_failure  # type: ignore[method-assign]
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        self._released_at[connection] = time.monotonic()
        await super().release(connection)

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        if connection.is_connected and self._made_in.get(connection) != self.generation:
            await connection.disconnect()
        elif connection.is_connected and not await self._answers_after_idling(connection):
            self.connection_failed()
            await connection.disconnect()
        await super().ensure_connection(connection)
        self._made_in[connection] = self.generation

    async def _answers_after_idling(self, connection: AbstractConnection) -> bool:
        """True unless the connection sat idle and does not answer a PING."""
        released = self._released_at.get(connection)
        if released is None or time.monotonic() - released <= IDLE_CHECK_SECONDS:
            return True
        try:
            await connection.send_command("PING", check_health=False)
            return await connection.read_response() in ("PONG", b"PONG")
        except RedisTimeoutError:
            # Redis is there but not answering: a new connection would wait as long again.
            self.connection_failed()
            await connection.disconnect()
            raise
        except (RedisConnectionError, OSError):
            return False


def connection_pool(url: str, *, max_connections: int, socket_timeout: float) -> FreshAfterFailurePool:
    """The coach's pool for ``url``: at most ``max_connections``, a request waits up to 5 s
    for a free one and 2 s to connect, and a command fails after ``socket_timeout`` seconds
    without an answer. No redis-py health check: the idle ``PING`` above does its work
    before a request sends anything."""
    pool: FreshAfterFailurePool = FreshAfterFailurePool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=socket_timeout,
    )
    return pool
