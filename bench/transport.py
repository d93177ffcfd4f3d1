"""The model API's transport, one request at a time against ``bench/fake_upstream.py``:
a raw asyncio client (the floor), httpx with its own transport (httpcore over anyio),
httpx on the coach's ``LeanTransport``, and the coach's ``OpenAIClient`` (lean transport,
SDK headers and errors, msgspec). Per path: latency p50/p99 with a 20 ms upstream, and
client CPU per request with a 0 ms upstream (best of 3 rounds).

Run: ``.venv/bin/python bench/transport.py`` (about 40 s; starts its own upstream).
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.drills.common import free_port  # noqa: E402
from bench.load import RawConn  # noqa: E402
from coach.model import CircuitBreaker, ModelRequest, OpenAIClient  # noqa: E402
from coach.transport import LeanTransport  # noqa: E402

N, ROUNDS = 300, 3
CONTENT = "A message from a partner, a sentence or two long, as the model sees it. " * 6
BODY = b'{"model":"m","max_tokens":400,"messages":[{"role":"user","content":"' + CONTENT.encode() + b'"}]}'
HEADERS = {"content-type": "application/json"}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def latency(fn: Callable[[dict[str, str]], Awaitable[object]]) -> tuple[float, float]:
    for _ in range(30):
        await fn({})
    samples = []
    for _ in range(N):
        start = time.perf_counter()
        await fn({})
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return samples[N // 2], samples[int(N * 0.99)]


async def cpu_per_request(fn: Callable[[dict[str, str]], Awaitable[object]]) -> float:
    zero = {"x-fake-latency-ms": "0"}
    best = float("inf")
    for _ in range(ROUNDS):
        start = cpu()
        for _ in range(N):
            await fn(zero)
        best = min(best, (cpu() - start) / N * 1000)
    return best


async def main(port: int) -> None:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    raw = RawConn("127.0.0.1", port)
    plain = httpx.AsyncClient()
    lean = httpx.AsyncClient(transport=LeanTransport())
    coach = OpenAIClient(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="k",
        model="m",
        request_timeout=10,
        breaker=CircuitBreaker(5, 5),
    )
    request = ModelRequest(messages=({"role": "user", "content": CONTENT},), scripted="-")

    async def via_raw(extra: dict[str, str]) -> object:
        return await raw.request("POST", "/v1/chat/completions", BODY, {**HEADERS, **extra})

    async def via_httpx(extra: dict[str, str]) -> object:
        return (await plain.post(url, content=BODY, headers={**HEADERS, **extra})).content

    async def via_lean(extra: dict[str, str]) -> object:
        return (await lean.post(url, content=BODY, headers={**HEADERS, **extra})).content

    async def via_coach(extra: dict[str, str]) -> object:
        coach.headers.update(extra)
        try:
            return await coach.complete(request, deadline=time.monotonic() + 10)
        finally:
            for name in extra:
                coach.headers.pop(name, None)

    paths = {
        "raw asyncio client (floor)": via_raw,
        "httpx, its own transport": via_httpx,
        "httpx on LeanTransport": via_lean,
        "coach OpenAIClient (lean)": via_coach,
    }
    print("| path | p50 ms (20 ms upstream) | p99 ms | client CPU ms/request (0 ms upstream) |")
    print("|---|---|---|---|")
    for name, fn in paths.items():
        p50, p99 = await latency(fn)
        ms = await cpu_per_request(fn)
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {ms:.3f} |", flush=True)
    raw.close()
    await plain.aclose()
    await lean.aclose()
    await coach.aclose()


if __name__ == "__main__":
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench/fake_upstream.py"), "--port", str(upstream_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{upstream_port}/healthz", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(main(upstream_port))
    finally:
        upstream.terminate()
        upstream.wait(5)
