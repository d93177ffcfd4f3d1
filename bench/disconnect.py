"""How promptly does a client that hangs up cancel the coach's upstream model request?

Starts redis-server, a slow streaming fake upstream and `coach serve` on loopback; for N
rounds, opens a streamed turn, hangs up after the first sentence, and times how long
until the upstream sees its request abandoned. Prints percentiles; writes JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import LiveServer, RedisServer  # noqa: E402
from tests.upstream import SlowStreamUpstream  # noqa: E402


def main(rounds: int = 20) -> int:
    redis = RedisServer().start()
    upstream = SlowStreamUpstream([f"Sentence number {i}. " for i in range(200)], pace=0.05).start()
    server = LiveServer(
        redis.url, COACH_MODEL_BASE_URL=upstream.base_url, OPENAI_API_KEY="k", COACH_MODEL="slow"
    ).start()
    delays: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(rounds):
                upstream.abandoned.clear()
                token = client.post("/v1/couples", json={}).json()["token"]
                h = {"Authorization": f"Bearer {token}"}
                sid = client.post("/v1/sessions", json={"exercise_id": "evening-check-in"}, headers=h).json()[
                    "session_id"
                ]
                with client.stream(
                    "POST",
                    f"/v1/sessions/{sid}/messages",
                    json={"text": "Long day."},
                    headers={**h, "accept": "text/event-stream"},
                ) as response:
                    for line in response.iter_lines():
                        if line.startswith("event: delta"):
                            break
                closed = time.monotonic()
                if not upstream.abandoned.wait(5) or upstream.abandoned_at is None:
                    print("upstream not cancelled within 5 s")
                    return 1
                delays.append((upstream.abandoned_at - closed) * 1000)
    finally:
        server.stop()
        upstream.stop()
        redis.close()
    delays.sort()
    result = {
        "rounds": rounds,
        "p50_ms": statistics.median(delays),
        "p95_ms": delays[int(0.95 * (len(delays) - 1))],
        "max_ms": delays[-1],
    }
    print(
        f"client hang-up -> upstream cancelled: p50 {result['p50_ms']:.1f} ms, "
        f"p95 {result['p95_ms']:.1f} ms, max {result['max_ms']:.1f} ms over {rounds} rounds"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "disconnect.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
