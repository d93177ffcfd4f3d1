"""CPU per Redis round trip on the coach's pool with and without a socket timeout.

    taskset -c 1 .venv/bin/python bench/redis_timeout_cost.py

``COACH_REDIS_TIMEOUT`` (since 2026-12-06) makes redis-py arm a timer around every read;
this measures what that costs: sequential GETs on a local redis-server, the two pools
interleaved over five rounds, process CPU time per GET (medians printed)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from coach.redis_pool import connection_pool  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

GETS = 20_000
ROUNDS = 5


async def cpu_per_get(url: str, socket_timeout: float | None) -> float:
    pool = connection_pool(url, max_connections=8, socket_timeout=socket_timeout)
    client = aioredis.Redis(connection_pool=pool)
    await client.set("k", "v")
    start = time.process_time()
    for _ in range(GETS):
        await client.get("k")
    spent = time.process_time() - start
    await client.aclose()
    return spent / GETS * 1e6


async def main() -> None:
    server = RedisServer().start()
    try:
        runs: dict[float | None, list[float]] = {None: [], 2.0: []}
        for _ in range(ROUNDS):
            for timeout in runs:
                runs[timeout].append(await cpu_per_get(server.url, timeout))
        for timeout, values in runs.items():
            values.sort()
            print(
                f"socket_timeout={timeout}: median {values[len(values) // 2]:.1f} us CPU per GET "
                f"(runs {', '.join(f'{v:.1f}' for v in values)})"
            )
    finally:
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
