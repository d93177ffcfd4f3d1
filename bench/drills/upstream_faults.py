"""Drill 1: a misbehaving model API. 30% 5xx, 10% 429 (Retry-After: 1), 5% hangs past
the model timeout, 5% responses/streams that die midway. 20 partners (10 couples) send
10 turns each, concurrently, a quarter of them streamed; the client retries with the same
Idempotency-Key on network errors, 409, 429 and 5xx.

Invariants: every turn is acknowledged and gets a reply (model or fallback) within the
turn deadline + margin; no message appears twice in a transcript; every acknowledged
message is in the transcript."""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from typing import Any

import httpx

from bench.drills.common import (
    Coach,
    DrillResult,
    Faults,
    FaultUpstream,
    Redis,
    new_couple,
    new_session,
    transcript,
)

DEADLINE = 5.0
MARGIN = 2.0
COUPLES = 10
TURNS = 10
MAX_ATTEMPTS = 8
TURN_BUDGET = 40.0
RETRY_STATUSES = {409, 429, 500, 502, 503, 504}


class Turn:
    def __init__(self, text: str, stream: bool, drop_first: bool = False) -> None:
        self.text = text
        self.stream = stream
        self.drop_first = drop_first
        self.key = str(uuid.uuid4())
        self.attempts = 0
        self.acked = False
        self.replied = False
        self.reply_model: str | None = None
        self.fallback = False
        self.statuses: list[Any] = []
        self.max_attempt_latency = 0.0
        self.total_latency = 0.0


async def post_json(c: httpx.AsyncClient, url: str, turn: Turn, headers: dict[str, str]) -> tuple[Any, float]:
    start = time.monotonic()
    # Every 7th JSON turn's first attempt gives up after 0.3 s: a dropped connection
    # mid-turn, so the retry meets a turn in progress or a replayed response.
    timeout = 0.3 if turn.drop_first and turn.attempts == 1 else 20.0
    r = await c.post(
        url, json={"text": turn.text}, headers={**headers, "Idempotency-Key": turn.key}, timeout=timeout
    )
    took = time.monotonic() - start
    if r.status_code == 201:
        body = r.json()
        turn.acked = True
        reply = body.get("reply") or {}
        if reply.get("text"):
            turn.replied = True
            turn.reply_model = reply.get("model")
            turn.fallback = bool(reply.get("fallback"))
        return 201, took
    return (r.status_code, r.headers.get("retry-after")), took


async def post_stream(
    c: httpx.AsyncClient, url: str, turn: Turn, headers: dict[str, str]
) -> tuple[Any, float]:
    start = time.monotonic()
    hdrs = {**headers, "Idempotency-Key": turn.key, "Accept": "text/event-stream"}
    async with c.stream("POST", url, json={"text": turn.text}, headers=hdrs) as r:
        if r.status_code != 201:
            await r.aread()
            return (r.status_code, r.headers.get("retry-after")), time.monotonic() - start
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event:
                if event == "message":
                    turn.acked = True
                elif event == "done":
                    reply = json.loads(line[5:]).get("reply") or {}
                    if reply.get("text"):
                        turn.replied = True
                        turn.reply_model = reply.get("model")
                        turn.fallback = bool(reply.get("fallback"))
                event = ""
    took = time.monotonic() - start
    return (201 if turn.replied else "stream-ended-without-done"), took


async def run_turn(c: httpx.AsyncClient, session_id: str, headers: dict[str, str], turn: Turn) -> None:
    url = f"/v1/sessions/{session_id}/messages"
    begin = time.monotonic()
    while turn.attempts < MAX_ATTEMPTS and time.monotonic() - begin < TURN_BUDGET:
        turn.attempts += 1
        wait = 0.3
        try:
            status, took = await (post_stream if turn.stream else post_json)(c, url, turn, headers)
        except httpx.HTTPError as exc:
            status, took = f"net:{type(exc).__name__}", 0.0
        turn.statuses.append(status)
        turn.max_attempt_latency = max(turn.max_attempt_latency, took)
        if status == 201:
            break
        if turn.stream and turn.acked:
            break  # the message is stored; a streamed turn is never replayed
        if isinstance(status, tuple):
            code, retry_after = status
            if code not in RETRY_STATUSES:
                break
            if retry_after:
                try:
                    wait = min(2.0, float(retry_after))
                except ValueError:
                    wait = 1.0
        await asyncio.sleep(wait)
    turn.total_latency = time.monotonic() - begin


async def partner_loop(
    c: httpx.AsyncClient, who: str, headers: dict[str, str], session_id: str, turns: list[Turn]
) -> None:
    for turn in turns:
        await run_turn(c, session_id, headers, turn)


async def stream_replay_probe(c: httpx.AsyncClient) -> dict[str, Any]:
    """Two streamed POSTs with one Idempotency-Key: how many messages get stored?"""
    couple = await new_couple(c, "Probe")
    sid = await new_session(c, couple["a"])
    turn = Turn(f"probe stream replay {uuid.uuid4().hex[:8]}", stream=True)
    first = await post_stream(c, f"/v1/sessions/{sid}/messages", turn, couple["a"])
    turn2 = Turn(turn.text, stream=True)
    turn2.key = turn.key
    second = await post_stream(c, f"/v1/sessions/{sid}/messages", turn2, couple["a"])
    msgs = await transcript(c, sid, couple["a"])
    count = sum(1 for m in msgs if m["author"] == "partner" and m["text"] == turn.text)
    return {"first": first[0], "second": second[0], "stored": count}


async def drive(coach: Coach, result: DrillResult, upstream: FaultUpstream) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=40)
    async with httpx.AsyncClient(base_url=coach.url, timeout=httpx.Timeout(20.0), limits=limits) as c:
        partners: list[tuple[str, dict[str, str], str]] = []
        for i in range(COUPLES):
            couple = await new_couple(c, f"C{i}")
            for side in ("a", "b"):
                sid = await new_session(c, couple[side])
                partners.append((f"c{i}{side}", couple[side], sid))
        plan: dict[str, list[Turn]] = {
            who: [
                Turn(
                    f"{who} turn {j}: I worry about work lately ({uuid.uuid4().hex[:6]})",
                    stream=(j % 4 == 3),
                    drop_first=(k * TURNS + j) % 7 == 0,
                )
                for j in range(TURNS)
            ]
            for k, (who, _, _) in enumerate(partners)
        }
        await asyncio.wait_for(
            asyncio.gather(*(partner_loop(c, who, h, sid, plan[who]) for who, h, sid in partners)), 240
        )
        all_turns = [t for ts in plan.values() for t in ts]
        result.sent = len(all_turns)
        result.acknowledged = sum(t.acked for t in all_turns)
        replied = sum(t.replied for t in all_turns)
        result.max_latency = max(t.max_attempt_latency for t in all_turns)
        lost = dupes = 0
        dupe_examples: list[str] = []
        lost_examples: list[str] = []
        for who, h, sid in partners:
            msgs = await transcript(c, sid, h)
            counts = collections.Counter(m["text"] for m in msgs if m["author"] == "partner")
            for t in plan[who]:
                n = counts.get(t.text, 0)
                if t.acked and n == 0:
                    lost += 1
                    lost_examples.append(t.text)
                if n > 1:
                    dupes += n - 1
                    dupe_examples.append(f"{t.text!r} x{n} statuses={t.statuses}")
        result.lost = lost
        result.duplicates = dupes
        probe = await stream_replay_probe(c)

    never = [f"{t.text!r} statuses={t.statuses}" for t in all_turns if not t.replied]
    slow = [
        f"{t.text!r} {t.max_attempt_latency:.2f}s"
        for t in all_turns
        if t.max_attempt_latency > DEADLINE + MARGIN
    ]
    result.notes.update(
        {
            "upstream_outcomes": dict(upstream.outcomes),
            "replied": replied,
            "fallback_replies": sum(t.fallback for t in all_turns if t.replied),
            "model_replies": sum(not t.fallback for t in all_turns if t.replied),
            "attempts": sum(t.attempts for t in all_turns),
            "streamed_turns": sum(t.stream for t in all_turns),
            "turns_with_dropped_first_attempt": sum(t.drop_first for t in all_turns),
            "max_turn_latency_incl_retries_s": round(max(t.total_latency for t in all_turns), 3),
            "status_histogram": dict(collections.Counter(str(s) for t in all_turns for s in t.statuses)),
            "stream_replay_probe": probe,
        }
    )
    result.check(
        "every turn acknowledged",
        result.acknowledged == result.sent,
        f"{result.sent - result.acknowledged} not acknowledged: {never[:3]}",
    )
    result.check("every turn got a reply (model or fallback)", replied == result.sent, "; ".join(never[:3]))
    result.check(
        f"every attempt answered within deadline {DEADLINE}s + {MARGIN}s", not slow, "; ".join(slow[:3])
    )
    result.check("no duplicate turns in transcripts", dupes == 0, "; ".join(dupe_examples[:3]))
    result.check("no acknowledged message lost", lost == 0, "; ".join(lost_examples[:3]))
    result.check(
        "streamed retry with the same Idempotency-Key stores one message",
        probe["stored"] == 1,
        json.dumps(probe),
    )
    result.check("coach process still up", coach.alive())


def run() -> DrillResult:
    result = DrillResult("upstream_faults")
    started = time.monotonic()
    redis = Redis()
    upstream = FaultUpstream(
        Faults(error5xx=0.30, rate_limited=0.10, hang=0.05, die_midway=0.05, hang_seconds=8)
    )
    coach: Coach | None = None
    try:
        redis.start()
        upstream.start()
        coach = Coach(redis.url, upstream.base_url, "upstream_faults", COACH_MODEL_TIMEOUT="2").start()
        asyncio.run(drive(coach, result, upstream))
    except Exception as exc:  # the drill itself failed: report it, never hide it
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
