"""Client CPU per model request: the openai SDK's ``chat.completions.create`` (what the
coach used before) against the coach's ``OpenAIClient`` (one msgspec-encoded body sent
through the SDK's client, SSE parsed directly), JSON and streamed, against
``bench/fake_upstream.py`` with no latency. Prints the best of 3 rounds per path.

Run: ``.venv/bin/python bench/model_client.py`` (about 30 s; starts its own upstream).
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
import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.drills.common import free_port  # noqa: E402
from coach.model import ChatMessage, CircuitBreaker, ModelRequest, OpenAIClient  # noqa: E402

ROUNDS, N = 3, 300
HISTORY: tuple[ChatMessage, ...] = (
    {"role": "system", "content": "You are a warm, brief coach for couples. " * 20},
    {"role": "system", "content": "This step: invite each partner to name one small thing. " * 8},
    *(
        ChatMessage(
            role="user" if i % 2 == 0 else "assistant",
            content="An earlier message in this session, a sentence or two long. " * 2,
        )
        for i in range(12)
    ),
)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(fn: Callable[[], Awaitable[str]]) -> float:
    for _ in range(30):
        await fn()
    best = float("inf")
    for _ in range(ROUNDS):
        start = cpu()
        for _ in range(N):
            await fn()
        best = min(best, (cpu() - start) / N * 1000)
    return best


async def main(base_url: str) -> None:
    http = httpx.AsyncClient()
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0, http_client=http)
    coach = OpenAIClient(
        base_url=base_url, api_key="k", model="m", request_timeout=10, breaker=CircuitBreaker(5, 5)
    )
    request = ModelRequest(messages=HISTORY, scripted="-")

    async def sdk_json() -> str:
        r = await sdk.chat.completions.create(model="m", messages=list(HISTORY), max_tokens=400)
        return r.choices[0].message.content or ""

    async def sdk_stream() -> str:
        out = []
        stream = await sdk.chat.completions.create(
            model="m", messages=list(HISTORY), max_tokens=400, stream=True
        )
        async for chunk in stream:
            out += [c.delta.content for c in chunk.choices if c.delta and c.delta.content]
        return "".join(out)

    async def coach_json() -> str:
        return (await coach.complete(request, deadline=time.monotonic() + 10)).text

    async def coach_stream() -> str:
        return "".join([d async for d in coach.stream(request, deadline=time.monotonic() + 10)])

    results = {}
    for name, fn in (
        ("sdk create, json", sdk_json),
        ("coach client, json", coach_json),
        ("sdk create, stream", sdk_stream),
        ("coach client, stream", coach_stream),
    ):
        results[name] = await measure(fn)
    print("| path | client CPU ms/request (best of 3 x 300) |\n|---|---|")
    for name, ms in results.items():
        print(f"| {name} | {ms:.2f} |")
    print(
        f"ratio json {results['sdk create, json'] / results['coach client, json']:.1f}x, "
        f"stream {results['sdk create, stream'] / results['coach client, stream']:.1f}x"
    )
    await http.aclose()
    await coach.aclose()


if __name__ == "__main__":
    port = free_port()
    upstream = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench/fake_upstream.py"),
            "--port",
            str(port),
            "--latency-ms",
            "0",
            "--token-ms",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(main(f"http://127.0.0.1:{port}/v1"))
    finally:
        upstream.terminate()
        upstream.wait(5)
