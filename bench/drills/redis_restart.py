"""Drill 2: Redis dies. redis-server runs with ``appendonly yes`` and ``appendfsync
always`` (every write is fsync'ed before Redis answers). 10 partners send turns for
~20 s; at ~6 s Redis is killed with SIGKILL and restarted ~3 s later on the same port and
directory. The coach is never restarted.

Invariants: every acknowledged turn (201 received) is in the transcript afterwards; while
Redis is down every request gets a quick 503 problem+json (no response slower than 3 s);
afterwards every partner can take a turn again. Each partner also listens to its session's
live events (``GET /v1/sessions/{id}/events``) for the whole run; at the kill each
listener hangs up and reconnects with ``Last-Event-ID`` (503 until Redis is back): every
acknowledged message must reach it, and no event twice.

Every second turn is streamed (``Accept: text/event-stream``), and the fake upstream
streams each reply over about half a second, so streams are open when Redis dies. A
stream whose reply cannot be saved must end at once with an ``error`` event (no hang); a
retry with its ``Idempotency-Key`` must finish the turn with ``done``; and every
acknowledged message must have exactly one coach reply in the transcript, the one its
``done`` carried (the ``delta`` and ``replace`` events add up to it)."""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from dataclasses import dataclass, field
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

COUPLES = 5
RUN_SECONDS = 20.0
KILL_AT = 6.0
DOWN_FOR = 3.0
#: ``redis_stall``: how long Redis is stopped (SIGSTOP) instead of killed
STALL_FOR = 4.0
MAX_TURNS_PER_PARTNER = 300
HANG_LIMIT = 3.0
RECOVERY_BUDGET = 30.0
DELIVERY_BUDGET = 10.0
#: every STREAM_EVERY-th turn of a partner is streamed
STREAM_EVERY = 2
#: the fake upstream's pause after each of its reply's 17 words: a stream is open ~0.5 s
TOKEN_PAUSE = 0.03
#: no streamed attempt may stay open longer than its reply's pacing and HANG_LIMIT
STREAM_LIMIT = HANG_LIMIT + 17 * TOKEN_PAUSE


@dataclass
class Heard:
    """What one live listener received: texts, event ids, and each connection's status."""

    texts: set[str] = field(default_factory=set)
    ids: list[str] = field(default_factory=list)
    connects: list[Any] = field(default_factory=list)
    last: str | None = None


async def listen(base_url: str, headers: dict[str, str], sid: str, heard: Heard) -> None:
    """Follow the session's events until cancelled; resume with Last-Event-ID."""
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(5.0, read=None)) as lc:
        while True:
            hdrs = {**headers, "Accept": "text/event-stream"}
            if heard.last is not None:
                hdrs["Last-Event-ID"] = heard.last
            try:
                async with lc.stream("GET", f"/v1/sessions/{sid}/events", headers=hdrs) as r:
                    heard.connects.append(r.status_code)
                    if r.status_code == 200:
                        event_id, data = None, None
                        async for line in r.aiter_lines():
                            if line.startswith("id:"):
                                event_id = line[3:].strip()
                            elif line.startswith("data:"):
                                data = line[5:].strip()
                            elif not line and event_id is not None and data is not None:
                                heard.ids.append(event_id)
                                heard.texts.add(str(json.loads(data).get("text", "")))
                                heard.last, event_id, data = event_id, None, None
            except httpx.HTTPError as exc:
                heard.connects.append(type(exc).__name__)
            await asyncio.sleep(0.5)


@dataclass
class Attempt:
    started: float
    latency: float
    status: Any
    ctype: str
    problem: str | None
    path: str
    stream: bool = False


@dataclass
class StreamTurn:
    """One streamed turn, over all its attempts (one Idempotency-Key)."""

    who: str
    text: str
    #: per attempt: "done", "error:<type>", "cut" (ended without either), "<status> <problem>", "net:<error>"
    outcomes: list[str] = field(default_factory=list)
    acked: bool = False  # a `message` event arrived: the message is stored
    reply: str | None = None  # the text the `done` event carried
    shown: str | None = None  # what the `delta` / `replace` events added up to by then
    longest: float = 0.0


@dataclass
class State:
    t0: float = 0.0
    killed_at: float | None = None
    restarting_at: float | None = None  # the new redis-server was spawned (may answer from here)
    restarted_at: float | None = None  # it answered PING
    attempts: list[Attempt] = field(default_factory=list)
    acked: dict[str, list[str]] = field(default_factory=dict)  # who -> acked texts
    unacked: dict[str, list[tuple[str, list[Any]]]] = field(default_factory=dict)  # who -> (text, statuses)
    sent: int = 0
    streams: list[StreamTurn] = field(default_factory=list)
    killed: asyncio.Event = field(default_factory=asyncio.Event)


async def request(c: httpx.AsyncClient, st: State, method: str, url: str, **kw: Any) -> httpx.Response | None:
    start = time.monotonic()
    try:
        r = await c.request(method, url, **kw)
    except httpx.HTTPError as exc:
        st.attempts.append(
            Attempt(start - st.t0, time.monotonic() - start, f"net:{type(exc).__name__}", "", None, url)
        )
        return None
    problem = None
    ctype = r.headers.get("content-type", "")
    if "problem+json" in ctype:
        try:
            problem = r.json().get("type")
        except ValueError:
            problem = "unparseable"
    st.attempts.append(Attempt(start - st.t0, time.monotonic() - start, r.status_code, ctype, problem, url))
    return r


async def post_stream(
    c: httpx.AsyncClient, st: State, url: str, turn: StreamTurn, key: str, headers: dict[str, str]
) -> httpx.Response | None:
    """One streamed attempt, read to its end; the response when it ended with ``done``."""
    start = time.monotonic()
    hdrs = {**headers, "Idempotency-Key": key, "Accept": "text/event-stream"}
    status: Any = None
    ctype, problem, outcome, done = "", None, "cut", None
    try:
        async with c.stream("POST", url, json={"text": turn.text}, headers=hdrs) as r:
            status, ctype = r.status_code, r.headers.get("content-type", "")
            if r.status_code != 201:
                await r.aread()
                if "problem+json" in ctype:
                    try:
                        problem = r.json().get("type")
                    except ValueError:
                        problem = "unparseable"
                outcome = f"{r.status_code} {problem}"
            else:
                event, shown = "", ""
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event:
                        data = json.loads(line[5:])
                        if event == "message":
                            turn.acked = True
                        elif event == "delta":
                            shown += data.get("text", "")
                        elif event == "replace":
                            shown = data.get("text", "")
                        elif event == "done":
                            turn.reply, turn.shown = (data.get("reply") or {}).get("text"), shown
                            outcome, done = "done", r
                        elif event == "error":
                            outcome = f"error:{data.get('type')}"
                        event = ""
    except httpx.HTTPError as exc:
        status = outcome = f"net:{type(exc).__name__}"
    took = time.monotonic() - start
    st.attempts.append(Attempt(start - st.t0, took, status, ctype, problem, url, stream=True))
    turn.outcomes.append(outcome)
    turn.longest = max(turn.longest, took)
    return done


async def partner_loop(c: httpx.AsyncClient, st: State, who: str, headers: dict[str, str], sid: str) -> None:
    st.acked[who] = []
    st.unacked[who] = []
    for j in range(MAX_TURNS_PER_PARTNER):
        if time.monotonic() - st.t0 > RUN_SECONDS:
            return
        text = f"{who} message {j} ({uuid.uuid4().hex[:6]})"
        key = str(uuid.uuid4())
        st.sent += 1
        seen: list[Any] = []
        streamed = StreamTurn(who, text) if j % STREAM_EVERY == STREAM_EVERY - 1 else None
        if streamed is not None:
            st.streams.append(streamed)
        url = f"/v1/sessions/{sid}/messages"
        for _ in range(40):  # retries with the same key, bounded in count and time
            if streamed is not None:
                r = await post_stream(c, st, url, streamed, key, headers)
            else:
                r = await request(
                    c, st, "POST", url, json={"text": text}, headers={**headers, "Idempotency-Key": key}
                )
            seen.append(st.attempts[-1].problem or st.attempts[-1].status)
            if r is not None and r.status_code == 201:
                st.acked[who].append(text)
                break
            if time.monotonic() - st.t0 > RUN_SECONDS + 10:
                st.unacked[who].append((text, seen))
                break
            wait = 0.2
            if r is not None and r.headers.get("retry-after"):
                try:
                    wait = min(1.0, float(r.headers["retry-after"]))
                except ValueError:
                    wait = 1.0
            await asyncio.sleep(wait)


async def prober(c: httpx.AsyncClient, st: State) -> None:
    """Health and read probes every 0.2 s for the whole run."""
    for _ in range(int(RUN_SECONDS / 0.2) + 10):
        if time.monotonic() - st.t0 > RUN_SECONDS:
            return
        await request(c, st, "GET", "/readyz")
        await request(c, st, "GET", "/healthz")
        await asyncio.sleep(0.2)


async def killer(st: State, redis: Redis) -> None:
    await asyncio.sleep(KILL_AT)
    redis.kill9()
    st.killed_at = time.monotonic() - st.t0
    st.killed.set()
    await asyncio.sleep(DOWN_FOR)
    st.restarting_at = time.monotonic() - st.t0
    await asyncio.to_thread(redis.start)
    st.restarted_at = time.monotonic() - st.t0


async def staller(st: State, redis: Redis) -> None:
    """``redis_stall``: Redis stops answering (its sockets stay open) and then goes on."""
    await asyncio.sleep(KILL_AT)
    redis.pause()
    st.killed_at = time.monotonic() - st.t0
    await asyncio.sleep(STALL_FOR)
    redis.resume()
    st.restarting_at = st.restarted_at = time.monotonic() - st.t0


async def drive(coach: Coach, redis: Redis, result: DrillResult, *, stall: bool = False) -> None:
    st = State()
    async with httpx.AsyncClient(base_url=coach.url, timeout=httpx.Timeout(15.0)) as c:
        partners: list[tuple[str, dict[str, str], str]] = []
        for i in range(COUPLES):
            couple = await new_couple(c, f"R{i}")
            for side in ("a", "b"):
                partners.append((f"r{i}{side}", couple[side], await new_session(c, couple[side])))
        heard = {who: Heard() for who, _h, _sid in partners}
        listeners = [asyncio.create_task(listen(coach.url, h, sid, heard[who])) for who, h, sid in partners]

        async def hang_up_at_the_kill() -> None:
            if stall:
                return  # through a stall the listeners stay connected
            await st.killed.wait()
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
            listeners[:] = [
                asyncio.create_task(listen(coach.url, h, sid, heard[who])) for who, h, sid in partners
            ]

        st.t0 = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(
                (staller if stall else killer)(st, redis),
                hang_up_at_the_kill(),
                prober(c, st),
                *(partner_loop(c, st, who, h, sid) for who, h, sid in partners),
            ),
            RUN_SECONDS + 60,
        )

        # Recovery: every partner takes one more turn (retrying 409/503), bounded.
        recovery: dict[str, float | None] = {}
        recovery_status: dict[str, list[Any]] = {}
        begin = time.monotonic()

        async def recover(who: str, headers: dict[str, str], sid: str) -> None:
            text, key = f"{who} after recovery", str(uuid.uuid4())
            recovery_status[who] = []
            while time.monotonic() - begin < RECOVERY_BUDGET:
                try:
                    r = await c.post(
                        f"/v1/sessions/{sid}/messages",
                        json={"text": text},
                        headers={**headers, "Idempotency-Key": key},
                    )
                    recovery_status[who].append(
                        r.status_code if r.status_code != 409 else f"409 {r.json().get('type')}"
                    )
                    if r.status_code == 201:
                        st.acked[who].append(text)
                        recovery[who] = round(time.monotonic() - begin, 2)
                        return
                except httpx.HTTPError as exc:
                    recovery_status[who].append(type(exc).__name__)
                await asyncio.sleep(0.5)
            recovery[who] = None

        await asyncio.gather(*(recover(who, h, sid) for who, h, sid in partners))

        # Live delivery: every acknowledged message reaches its partner's listener, bounded.
        waited = time.monotonic()
        for _ in range(int(DELIVERY_BUDGET / 0.2)):
            if not any(set(st.acked[who]) - heard[who].texts for who, _h, _sid in partners):
                break
            await asyncio.sleep(0.2)
        delivery_seconds = round(time.monotonic() - waited, 2)
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        unheard = {who: sorted(set(st.acked[who]) - heard[who].texts)[:3] for who, _h, _sid in partners}
        unheard = {who: texts for who, texts in unheard.items() if texts}
        heard_twice = {
            who: len(h.ids) - len(set(h.ids)) for who, h in heard.items() if len(h.ids) != len(set(h.ids))
        }

        lost: list[str] = []
        stuck: list[dict[str, Any]] = []
        dupes = 0
        #: acknowledged message -> the texts of the coach's replies to it in the transcript
        replies: dict[str, list[str]] = {}
        for who, h, sid in partners:
            msgs = await transcript(c, sid, h)
            counts = collections.Counter(m["text"] for m in msgs if m["author"] == "partner")
            # a stream's `message` event acknowledges its message, even if no `done` followed
            acked = set(st.acked[who]) | {t.text for t in st.streams if t.who == who and t.acked}
            lost.extend(t for t in acked if counts.get(t, 0) == 0)
            ids = {m["id"]: m["text"] for m in msgs if m["author"] == "partner" and m["text"] in acked}
            replies.update({text: [] for text in ids.values()})
            for m in msgs:
                if m["kind"] == "reply" and m.get("in_reply_to") in ids:
                    replies[ids[m["in_reply_to"]]].append(m["text"])
            for text, seen in st.unacked[who]:
                stuck.append(
                    {
                        "text": text,
                        "stored": counts.get(text, 0),
                        "first": seen[:3],
                        "last": seen[-1],
                        "attempts": len(seen),
                    }
                )
            dupes += sum(n - 1 for n in counts.values() if n > 1)

    assert st.killed_at is not None and st.restarted_at is not None and st.restarting_at is not None
    down_word = "stalled" if stall else "down"
    fault = f"SIGSTOP for {STALL_FOR:.0f} s" if stall else f"SIGKILL, restarted {DOWN_FOR:.0f} s later"
    when = "stopped answering" if stall else "died"
    fault_name = "stall" if stall else "restart"
    late_answer = "; or the answer once Redis goes on" if stall else ""
    # "Down" ends when the new process is spawned: from then on a request may see it up.
    down = [a for a in st.attempts if st.killed_at <= a.started < st.restarting_at]
    up = [a for a in st.attempts if a.started < st.killed_at or a.started >= st.restarted_at + 1.0]
    # Every request open at any time during the fault, including those sent before it
    # (streams are held to their own limit below).
    in_flight = [
        a
        for a in st.attempts
        if not a.stream and a.started < st.restarting_at and a.started + a.latency > st.killed_at
    ]
    down_max = max((a.latency for a in in_flight), default=0.0)
    # A stalled Redis answers a command sent during the stall once it goes on again: the
    # request then gets its ordinary answer (a 201, or 409 while the turn claim of an
    # attempt that failed is still to be released).
    down_bad = [
        a
        for a in down
        if a.path != "/healthz"
        and not (a.status == 503 and "problem+json" in a.ctype)
        and not (
            stall
            and isinstance(a.status, int)
            and a.status < 500
            and a.started + a.latency >= st.restarting_at
        )
    ]
    post_restart_5xx = [
        a
        for a in st.attempts
        if a.started >= st.restarted_at + 1.0 and isinstance(a.status, int) and a.status >= 500
    ]
    not_one_reply = {text: len(r) for text, r in replies.items() if len(r) != 1}
    cut = [t for t in st.streams if any(o.startswith(("error", "cut")) for o in t.outcomes)]
    just_stopped = [t for t in st.streams if "cut" in t.outcomes]
    unfinished = [t for t in st.streams if t.acked and t.reply is None]
    slow_streams = [t for t in st.streams if t.longest > STREAM_LIMIT]
    done_not_stored = [t.text for t in st.streams if t.reply is not None and replies.get(t.text) != [t.reply]]
    shown_differs = [t.text for t in st.streams if t.reply is not None and t.shown != t.reply]
    result.sent = st.sent + len(partners)
    result.acknowledged = sum(len(v) for v in st.acked.values())
    result.lost = len(lost)
    result.duplicates = dupes
    result.max_latency = max((a.latency for a in st.attempts), default=0.0)
    slow_recovery = {w: v for w, v in recovery.items() if v is None or v > 5}
    result.notes.update(
        {
            "redis": "appendonly yes, appendfsync always",
            "fault": fault,
            "killed_at_s": round(st.killed_at, 2),
            "restarted_at_s": round(st.restarted_at, 2),
            "requests_while_down": len(down),
            "max_latency_while_down_s": round(down_max, 3),
            "statuses_while_down": dict(
                collections.Counter(f"{a.path.split('/')[-1]} {a.status} {a.problem}" for a in down)
            ),
            "max_latency_while_up_s": round(max((a.latency for a in up), default=0.0), 3),
            "statuses_after_restart": dict(
                collections.Counter(
                    f"{a.status} {a.problem}" for a in st.attempts if a.started >= st.restarted_at
                )
            ),
            "recovery_turn_seconds": recovery,
            "recovery_statuses": {w: s[:6] for w, s in recovery_status.items() if len(s) > 1},
            "coach_pid_unchanged": coach.alive(),
            "never_acknowledged_turns": stuck,
            "live_listener_connections": {who: h.connects for who, h in heard.items()},
            "live_events_heard": sum(len(h.ids) for h in heard.values()),
            "live_delivery_wait_after_recovery_s": delivery_seconds,
            "streamed_turns": len(st.streams),
            "stream_attempt_outcomes": dict(collections.Counter(o for t in st.streams for o in t.outcomes)),
            "streams_cut_by_the_restart": [
                {"text": t.text, "outcomes": t.outcomes, "longest_s": round(t.longest, 2)} for t in cut[:6]
            ],
            "longest_stream_attempt_s": round(max((t.longest for t in st.streams), default=0.0), 2),
        }
    )
    result.check(f"requests were made while Redis was {down_word}", len(down) > 0)
    result.check(
        f"no request open while Redis is {down_word} takes > {HANG_LIMIT}s",
        down_max <= HANG_LIMIT,
        f"max {down_max:.2f}s",
    )
    result.check(
        f"while {down_word}: 503 problem+json (healthz excepted{late_answer})",
        not down_bad,
        "; ".join(f"{a.path} {a.status} {a.ctype} {a.latency:.2f}s" for a in down_bad[:4]),
    )
    result.check(f"every acknowledged turn survives the {fault_name}", not lost, "; ".join(lost[:4]))
    result.check("no duplicate messages", dupes == 0)
    result.check(
        f"every turn in flight at the {fault_name} is acknowledged on retry with its key (within ~10 s)",
        not stuck,
        f"{len(stuck)} turns stuck; {sum(1 for x in stuck if x['stored'])} of them stored "
        f"but never acknowledged; e.g. {json.dumps(stuck[:1])}",
    )
    result.check(
        f"streams were open when Redis {when} (some ended with an error or were cut)",
        bool(cut),
        f"{len(cut)} of {len(st.streams)} streamed turns",
    )
    result.check(
        "every stream ends with `done` or an `error` event (none just stops)",
        not just_stopped,
        "; ".join(f"{t.text} {t.outcomes[:4]}" for t in just_stopped[:3]),
    )
    result.check(
        f"no streamed attempt stays open past its reply's pacing + {HANG_LIMIT:.0f} s",
        not slow_streams,
        "; ".join(f"{t.text} {t.longest:.2f}s {t.outcomes}" for t in slow_streams[:3]),
    )
    result.check(
        "every stream that acknowledged its message ends with `done` on retry with its key",
        not unfinished,
        "; ".join(f"{t.text} {t.outcomes[-4:]}" for t in unfinished[:3]),
    )
    result.check(
        "every acknowledged message has exactly one coach reply in the transcript",
        not not_one_reply,
        json.dumps(dict(list(not_one_reply.items())[:4])),
    )
    result.check(
        "the reply each `done` carried is the one stored, and what the stream showed",
        not done_not_stored and not shown_differs,
        f"not stored: {done_not_stored[:3]}; shown otherwise: {shown_differs[:3]}",
    )
    result.check(
        "every acknowledged message reaches the partner's live listener (Last-Event-ID on reconnect)",
        not unheard,
        json.dumps(unheard),
    )
    result.check("no live event delivered twice to a listener", not heard_twice, json.dumps(heard_twice))
    result.check(
        "every partner takes a turn within 5 s after recovery (no coach restart)",
        not slow_recovery,
        json.dumps(slow_recovery),
    )
    result.check(
        "no 5xx from 1 s after Redis is back",
        not post_restart_5xx,
        f"{len(post_restart_5xx)}: "
        + "; ".join(f"{a.path} {a.status} {a.problem} at {a.started:.1f}s" for a in post_restart_5xx[:4]),
    )
    result.check("coach process still up (never restarted)", coach.alive())


def run(*, stall: bool = False) -> DrillResult:
    """``redis_restart`` (Redis killed and started again), or with ``stall`` ``redis_stall``
    (Redis stopped with SIGSTOP and continued: a hung server or a partition)."""
    name = "redis_stall" if stall else "redis_restart"
    result = DrillResult(name)
    started = time.monotonic()
    redis = Redis(appendonly=True, fsync="always")
    upstream = FaultUpstream(Faults(token_pause=TOKEN_PAUSE))
    coach: Coach | None = None
    try:
        redis.start()
        upstream.start()
        coach = Coach(redis.url, upstream.base_url, name).start()
        asyncio.run(drive(coach, redis, result, stall=stall))
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
