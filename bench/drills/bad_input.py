"""Drill 3: hostile and broken input over raw sockets: oversized bodies (with and without
Content-Length), malformed JSON, invalid UTF-8, lone surrogates, NUL bytes, 64 KB
headers, bodies sent one byte at a time, random bytes, deeply nested JSON.

Invariants: no 5xx; the process stays up and /healthz answers; the coach's RSS
(VmRSS from /proc/PID/status) stays bounded across two identical rounds."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.drills.common import HOST, Coach, DrillResult, FaultUpstream, Redis, new_couple, new_session

RSS_GROWTH_LIMIT_KB = 64 * 1024  # over the whole drill
RSS_ROUND_DRIFT_KB = 16 * 1024  # round 2 over round 1 (a leak grows every round)
READ_TIMEOUT = 8.0
SLOW_BODY_SECONDS = 4.0


async def raw(
    port: int, head: bytes, body: bytes = b"", *, drip: float = 0.0, chunks: list[bytes] | None = None
) -> tuple[Any, float]:
    """Send one request; the status code, or 'closed'/'timeout'/'reset', and latency."""
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port, limit=1 << 20), 5)
    except (OSError, TimeoutError):
        return "connect-failed", 0.0
    try:
        writer.write(head)
        if drip:
            for i in range(len(body)):
                writer.write(body[i : i + 1])
                await writer.drain()
                await asyncio.sleep(drip)
        elif chunks is not None:
            for chunk in chunks:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        took = time.monotonic() - start
        if not line:
            return "closed", took
        parts = line.split()
        return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else f"garbled:{line[:40]!r}"), took
    except TimeoutError:
        return "timeout", time.monotonic() - start
    except (ConnectionError, OSError):
        return "reset", time.monotonic() - start
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 2)


def request_head(
    method: str,
    path: str,
    length: int | None,
    extra: list[tuple[str, str]] | None = None,
    ctype: str = "application/json",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Content-Type: {ctype}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    for k, v in extra or []:
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


Case = tuple[str, Callable[[], Any]]


def cases(port: int, token: str, sid: str) -> list[Case]:
    auth = [("Authorization", f"Bearer {token}")]
    msg = f"/v1/sessions/{sid}/messages"
    rng = random.Random(1234)
    out: list[Case] = []

    def post(
        name: str,
        path: str,
        body: bytes,
        extra: list[tuple[str, str]] | None = None,
        ctype: str = "application/json",
    ) -> None:
        out.append((name, lambda: raw(port, request_head("POST", path, len(body), extra, ctype), body)))

    for path, extra in (
        ("/v1/couples", None),
        (msg, auth),
        ("/v1/rewrite", auth),
        ("/v1/couples/join", None),
    ):
        tag = path.split("/")[-1]
        post(f"oversized-1MB {tag}", path, b'{"text":"' + b"a" * (1 << 20) + b'"}', extra)
        out.append(
            (
                f"oversized-chunked-2MB {tag}",
                lambda p=path, e=extra: raw(  # type: ignore[misc]
                    port,
                    request_head("POST", p, None, [*(e or []), ("Transfer-Encoding", "chunked")]),
                    b"",
                    chunks=[b'{"text":"'] + [b"b" * 65536] * 32 + [b'"}'],
                ),
            )
        )
        for i, bad in enumerate(
            [
                b"{",
                b'{"text":',
                b"null",
                b"[]",
                b'{"text": 1}',
                b'"str"',
                b"NaN",
                b'{"text":"a"}}}',
                b'{"text":"a"} trailing',
                b"",
                b'{"text":"a","text":"b"}',
                b'{"display_name": {"$gt": ""}}',
                b'{"exercise_id": null}',
            ]
        ):
            post(f"malformed-json-{i} {tag}", path, bad, extra)
        for i, bad in enumerate(
            [
                b'{"text":"\xff\xfe\xfd"}',
                b'{"text":"\xc0\xaf overlong"}',
                b'{"text":"\xed\xa0\x80 surrogate bytes"}',
                b'\xef\xbb\xbf{"text":"bom"}',
                b'{"text":"\\ud800 lone surrogate escape"}',
                b'{"text":"nul \\u0000 byte"}',
                b'{"text":"\\udfff\\ud800 reversed pair"}',
            ]
        ):
            post(f"bad-unicode-{i} {tag}", path, bad, extra)
        post(f"nested-array-30k {tag}", path, b"[" * 30000 + b"]" * 30000, extra)
        post(
            f"nested-object-8k {tag}", path, b'{"text":' + b'{"a":' * 8000 + b"1" + b"}" * 8000 + b"}", extra
        )
        post(f"wrong-content-type {tag}", path, b'{"text":"hi"}', extra, ctype="text/plain")
        post(
            f"xml-bomb-ish {tag}",
            path,
            b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY a 'aaaa'>]><a>&a;</a>",
            extra,
            ctype="application/xml",
        )
    for i in range(40):
        body = rng.randbytes(rng.randint(1, 4096))
        post(f"random-body-{i}", msg if i % 2 else "/v1/couples", body, auth if i % 2 else None)
    for i in range(15):
        garbage = rng.randbytes(rng.randint(1, 2048))
        out.append((f"random-request-{i}", lambda g=garbage: raw(port, g)))  # type: ignore[misc]
    huge = "x" * (64 * 1024)
    out.append(
        ("header-64KB-one", lambda: raw(port, request_head("GET", "/v1/exercises", None, [("X-Big", huge)])))
    )
    out.append(
        (
            "header-64KB-auth",
            lambda: raw(
                port, request_head("GET", "/v1/sessions", None, [("Authorization", "Bearer " + huge)])
            ),
        )
    )
    out.append(
        (
            "header-64KB-many",
            lambda: raw(
                port, request_head("GET", "/v1/exercises", None, [(f"X-H{i}", "y" * 60) for i in range(1000)])
            ),
        )
    )
    out.append(
        (
            "header-64KB-idempotency-key",
            lambda: raw(
                port, request_head("POST", msg, 13, [*auth, ("Idempotency-Key", huge)]), b'{"text":"hi"}'
            ),
        )
    )
    out.append(
        (
            "header-idempotency-key-300",
            lambda: raw(
                port, request_head("POST", msg, 13, [*auth, ("Idempotency-Key", "k" * 300)]), b'{"text":"hi"}'
            ),
        )
    )
    out.append(
        (
            "header-bad-latin1-auth",
            lambda: raw(
                port,
                request_head("GET", "/v1/sessions", None)[:-2]
                + b"Authorization: Bearer \xff\xfe\x00\r\n\r\n",
            ),
        )
    )
    out.append(
        ("url-64KB", lambda: raw(port, f"GET /v1/sessions/{huge} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
    )
    out.append(
        ("path-traversal", lambda: raw(port, b"GET /static/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"))
    )
    out.append(
        ("content-length-lies-high", lambda: raw(port, request_head("POST", "/v1/couples", 5000), b"{}"))
    )
    out.append(("content-length-negative", lambda: raw(port, request_head("POST", "/v1/couples", -5), b"{}")))
    long_body = b'{"text":"' + b"z" * 8000 + b'"}'
    out.append(
        ("too-long-message", lambda: raw(port, request_head("POST", msg, len(long_body), auth), long_body))
    )
    out.append(
        (
            "message-4000-emoji",
            lambda: raw(
                port,
                request_head("POST", msg, len(('{"text":"' + "\U0001f49e" * 4000 + '"}').encode()), auth),
                ('{"text":"' + "\U0001f49e" * 4000 + '"}').encode(),
            ),
        )
    )
    return out


def slow_cases(port: int, token: str, sid: str) -> list[Case]:
    """Bodies sent one byte at a time over ~SLOW_BODY_SECONDS (run concurrently)."""
    auth = [("Authorization", f"Bearer {token}")]
    body = b'{"text":"slowly, one byte at a time"}'
    drip = SLOW_BODY_SECONDS / len(body)
    out: list[Case] = []
    for i in range(4):
        out.append(
            (
                f"slow-body-{i}",
                lambda: raw(
                    port,
                    request_head("POST", f"/v1/sessions/{sid}/messages", len(body), auth),
                    body,
                    drip=drip,
                ),
            )
        )
    cbody = b'{"display_name":"slow"}'
    out.append(
        (
            "slow-body-public",
            lambda: raw(
                port,
                request_head("POST", "/v1/couples", len(cbody)),
                cbody,
                drip=SLOW_BODY_SECONDS / len(cbody),
            ),
        )
    )
    return out


async def round_(coach: Coach, token: str, sid: str, outcomes: dict[str, Any]) -> float:
    """One pass over every case (sequential, then the slow ones concurrently): max latency."""
    worst = 0.0
    for name, make in cases(coach.port, token, sid):
        status, took = await make()
        outcomes[name] = status
        worst = max(worst, took)
    slow = slow_cases(coach.port, token, sid)
    got = await asyncio.gather(*(make() for _, make in slow))
    for (name, _), (status, took) in zip(slow, got, strict=True):
        outcomes[name] = status
        worst = max(worst, took)
    return worst


async def drive(coach: Coach, result: DrillResult) -> None:
    async with httpx.AsyncClient(base_url=coach.url, timeout=10) as c:
        couple = await new_couple(c, "Bad")
        sid = await new_session(c, couple["a"])
        token = couple["a"]["Authorization"].split()[1]
        # warm up the normal path so the baseline RSS includes a real turn
        r = await c.post(f"/v1/sessions/{sid}/messages", json={"text": "hello there"}, headers=couple["a"])
        result.check("a normal turn works before the drill", r.status_code == 201, str(r.status_code))
        rss0 = coach.rss_kb()
        rounds: list[dict[str, Any]] = []
        rss: list[int] = [rss0]
        worst = 0.0
        for _ in range(2):
            outcomes: dict[str, Any] = {}
            worst = max(worst, await round_(coach, token, sid, outcomes))
            rounds.append(outcomes)
            rss.append(coach.rss_kb() if coach.alive() else -1)
        health: int | str | None = None
        if coach.alive():
            try:
                health = (await c.get("/healthz")).status_code
            except httpx.HTTPError as exc:
                health = type(exc).__name__
            r2 = await c.post(
                f"/v1/sessions/{sid}/messages", json={"text": "still here?"}, headers=couple["a"]
            )
            after_turn = r2.status_code
        else:
            after_turn = None

    statuses = [s for o in rounds for s in o.values()]
    five = sorted({f"{n}: {s}" for o in rounds for n, s in o.items() if isinstance(s, int) and s >= 500})
    no_answer = sorted({f"{n}: {s}" for o in rounds for n, s in o.items() if not isinstance(s, int)})
    result.sent = len(statuses)
    result.acknowledged = sum(isinstance(s, int) for s in statuses)
    result.max_latency = worst
    result.notes.update(
        {
            "rss_kb": {"baseline": rss0, "after_round_1": rss[1], "after_round_2": rss[2]},
            "status_histogram": dict(collections.Counter(str(s) for s in statuses)),
            "no_http_answer": no_answer,
            "per_case_round_1": rounds[0],
        }
    )
    result.check("no 5xx", not five, "; ".join(five[:8]))
    result.check("process stays up", coach.alive())
    result.check("/healthz answers 200 afterwards", health == 200, str(health))
    result.check("a normal turn works afterwards", after_turn == 201, str(after_turn))
    result.check(
        f"RSS growth <= {RSS_GROWTH_LIMIT_KB // 1024} MB over the drill",
        rss[2] >= 0 and rss[2] - rss0 <= RSS_GROWTH_LIMIT_KB,
        f"{rss0} -> {rss[2]} kB",
    )
    result.check(
        f"RSS drift round 2 vs round 1 <= {RSS_ROUND_DRIFT_KB // 1024} MB",
        rss[2] >= 0 and rss[2] - rss[1] <= RSS_ROUND_DRIFT_KB,
        f"{rss[1]} -> {rss[2]} kB",
    )


def run() -> DrillResult:
    result = DrillResult("bad_input")
    started = time.monotonic()
    redis = Redis()
    upstream = FaultUpstream()
    coach: Coach | None = None
    try:
        redis.start()
        upstream.start()
        coach = Coach(redis.url, upstream.base_url, "bad_input").start()
        asyncio.run(drive(coach, result))
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if coach is not None:
            coach.stop()
        upstream.stop()
        redis.cleanup()
        result.seconds = time.monotonic() - started
    return result


if __name__ == "__main__":
    print(json.dumps(run().as_dict(), indent=2))
