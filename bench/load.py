"""Load generator: one process, asyncio, bounded in count and time.

``python bench/load.py SPEC_JSON`` runs one measurement described by a :class:`Spec`.
Protocol with the orchestrator (``bench/run.py``), one JSON object per stdout line:

1. setup (couples, sessions, listeners) and warm-up run, then ``{"phase": "ready"}``;
2. it waits for one line on stdin (the orchestrator samples the server's CPU time);
3. the measured phase runs, then ``{"phase": "result", ...}`` and the process exits.

Targets:

* ``raw``   a minimal keep-alive HTTP/1.1 client posting to ``{base_url}/chat/completions``
  (JSON or SSE): direct to the fake upstream, or through LiteLLM;
* ``sdk``   the openai SDK (``AsyncOpenAI``) against ``base_url``;
* ``coach`` a real coach turn, ``POST /v1/sessions/{id}/messages`` (JSON or SSE), sent with
  the same raw client so every path pays the same client cost;
* ``listeners`` idle SSE listeners on ``/v1/sessions/{id}/events`` (+ delivery probes).

Closed loop (``concurrency`` workers) unless ``rate`` is set (open loop, Poisson arrivals).
"""

from __future__ import annotations

import asyncio
import random
import re
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx
import msgspec

Target = Literal["raw", "sdk", "coach", "listeners"]
TEXT = "I would love for us to spend more unhurried time together on the weekends."
SENTENCE_END = re.compile(r"""[.!?…]+["')\]]*\s+|\n+""")


class Spec(msgspec.Struct, kw_only=True):
    target: Target
    base_url: str  # sdk/raw: the OpenAI base (…/v1); coach: http://host:port[,…]
    stream: bool = False
    concurrency: int = 1
    requests: int = 100
    warmup: int = 0
    rate: float | None = None  # open loop: arrivals per second
    time_limit: float = 60.0  # seconds for the measured phase, whatever the count
    api_key: str = "x"
    model: str = "fake"
    stamps_url: str | None = None  # the fake upstream, for token send stamps
    stamp_every: int = 0  # tag every n-th streamed coach turn (0: none)
    headers: dict[str, str] = msgspec.field(default_factory=dict)  # raw target: extra headers
    listeners: int = 0
    listen_url: str | None = None  # listeners connect here (default: base_url)
    probes: int = 0
    exercise: str = "deeper-questions"
    turns_per_session: int = 8  # coach: a partner starts a new session after this many


class Sample(msgspec.Struct):
    latency: float  # seconds, request sent -> response complete
    first_token: float | None = None  # stream: first content token (coach: first event)
    first_sentence: float | None = None  # stream: first complete sentence
    tag: str | None = None
    deltas: list[tuple[int, str]] | None = None  # (monotonic_ns received, text)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")
    sys.stdout.flush()


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    v = sorted(values)

    def pct(p: float) -> float:
        k = min(len(v) - 1, max(0, round(p / 100 * (len(v) - 1))))
        return v[k] * 1000

    return {
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "mean": sum(v) / len(v) * 1000,
        "max": v[-1] * 1000,
        "n": float(len(v)),
    }


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pool(n: int) -> httpx.Limits:
    return httpx.Limits(max_connections=n, max_keepalive_connections=n)


def chat_body(spec: Spec, stream: bool) -> dict[str, Any]:
    return {
        "model": spec.model,
        "stream": stream,
        "max_tokens": 400,
        "messages": [
            {"role": "system", "content": "You are a warm coach."},
            {"role": "user", "content": TEXT},
        ],
    }


# -- request kinds ----------------------------------------------------------------------
Op = Callable[[int], Awaitable[Sample]]


class RawConn:
    """Minimal keep-alive HTTP/1.1 client connection: content-length or chunked bodies,
    SSE events handed to a callback as they arrive. Far cheaper per request than httpx
    or the openai SDK, so the load generator stays out of the way."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        on_event: Callable[[str, str], None] | None = None,
    ) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        head = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        try:
            return await self._response(reader, on_event)
        except BaseException:
            writer.close()
            self.writer = None
            raise

    async def _response(
        self, reader: asyncio.StreamReader, on_event: Callable[[str, str], None] | None
    ) -> tuple[int, bytes]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length: int | None = None
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
        body = bytearray()
        sse = ""
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = await reader.readexactly(size + 2)
                if on_event is None:
                    body += data[:-2]
                    continue
                sse += data[:-2].decode()
                if "\r" in sse:
                    sse = sse.replace("\r\n", "\n")
                while "\n\n" in sse:
                    block, sse = sse.split("\n\n", 1)
                    event, datas = "message", []
                    for ln in block.split("\n"):
                        if ln.startswith("event:"):
                            event = ln[6:].strip()
                        elif ln.startswith("data:"):
                            datas.append(ln[5:].removeprefix(" "))
                    if datas:
                        on_event(event, "\n".join(datas))
        elif length:
            body += await reader.readexactly(length)
        if close and self.writer is not None:
            self.writer.close()
            self.writer = None
        return status, bytes(body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class RawPool:
    """One :class:`RawConn` per worker (workers never share a connection)."""

    def __init__(self, base_url: str) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, url.port or 80
        self.prefix = url.raw_path.decode().rstrip("/")
        self.conns: dict[int, RawConn] = {}

    def conn(self, worker: int) -> RawConn:
        c = self.conns.get(worker)
        if c is None:
            c = self.conns[worker] = RawConn(self.host, self.port)
        return c

    def close(self) -> None:
        for c in self.conns.values():
            c.close()


class RawChat:
    """POST /chat/completions with the raw client, JSON or streamed."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.pool = RawPool(spec.base_url)
        self.path = self.pool.prefix + "/chat/completions"
        self.body = msgspec.json.encode(chat_body(spec, spec.stream))
        self.headers = {
            "content-type": "application/json",
            "authorization": f"Bearer {spec.api_key}",
            **spec.headers,
        }
        self.dec = msgspec.json.Decoder()

    async def op(self, worker: int) -> Sample:
        conn = self.pool.conn(worker)
        t0 = time.perf_counter()
        if not self.spec.stream:
            status, _body = await conn.request("POST", self.path, self.body, self.headers)
            if status != 200:
                raise RuntimeError(f"http {status}")
            return Sample(time.perf_counter() - t0)
        first: float | None = None
        sentence: float | None = None
        text = ""

        def on_event(_event: str, data: str) -> None:
            nonlocal first, sentence, text
            if data == "[DONE]":
                return
            for choice in self.dec.decode(data).get("choices", []):
                delta = (choice.get("delta") or {}).get("content")
                if not delta:
                    continue
                now = time.perf_counter()
                if first is None:
                    first = now - t0
                text += delta
                if sentence is None and first_sentence_at(text):
                    sentence = now - t0

        status, _ = await conn.request("POST", self.path, self.body, self.headers, on_event)
        if status != 200 or first is None:
            raise RuntimeError(f"http {status}" if status != 200 else "empty stream")
        end = time.perf_counter() - t0
        return Sample(end, first, sentence if sentence is not None else end)

    async def aclose(self) -> None:
        self.pool.close()


def first_sentence_at(text: str) -> bool:
    return SENTENCE_END.search(text) is not None


class SdkClient:
    def __init__(self, spec: Spec) -> None:
        import openai

        self.spec = spec
        self.http = httpx.AsyncClient(limits=pool(spec.concurrency + 8), timeout=60.0)
        self.sdk = openai.AsyncOpenAI(
            base_url=spec.base_url, api_key=spec.api_key, max_retries=0, http_client=self.http
        )  # type: ignore[arg-type]
        self.messages: list[Any] = chat_body(spec, False)["messages"]

    async def op(self, worker: int) -> Sample:
        t0 = time.perf_counter()
        if not self.spec.stream:
            r = await self.sdk.chat.completions.create(
                model=self.spec.model, messages=self.messages, max_tokens=400
            )
            if not r.choices or not r.choices[0].message.content:
                raise RuntimeError("empty reply")
            return Sample(time.perf_counter() - t0)
        first: float | None = None
        sentence: float | None = None
        text = ""
        stream = await self.sdk.chat.completions.create(
            model=self.spec.model, messages=self.messages, max_tokens=400, stream=True
        )
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices:
                    delta = choice.delta.content if choice.delta else None
                    if not delta:
                        continue
                    now = time.perf_counter()
                    if first is None:
                        first = now - t0
                    text += delta
                    if sentence is None and first_sentence_at(text):
                        sentence = now - t0
        if first is None:
            raise RuntimeError("empty stream")
        end = time.perf_counter() - t0
        return Sample(end, first, sentence if sentence is not None else end)

    async def aclose(self) -> None:
        await self.http.aclose()


class Partner(msgspec.Struct):
    base: str
    token: str
    session_id: str
    couple_id: str = ""
    invite_code: str = ""
    turns: int = 0


async def check(r: httpx.Response, expect: int = 201) -> dict[str, Any]:
    if r.status_code != expect:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")
    data: dict[str, Any] = r.json()
    return data


async def new_partner(http: httpx.AsyncClient, base: str, exercise: str, join: bool = False) -> Partner:
    """A couple and a session started by its first partner. With ``join`` the second
    partner joins first: a together-exercise step that waits for *each* partner then
    never advances, so one partner can post any number of turns (no session ends)."""
    couple = await check(await http.post(f"{base}/v1/couples", json={"country": "US"}))
    token = couple["token"]
    if join:
        await check(await http.post(f"{base}/v1/couples/join", json={"invite_code": couple["invite_code"]}))
    session = await check(
        await http.post(
            f"{base}/v1/sessions",
            json={"exercise_id": exercise},
            headers={"authorization": f"Bearer {token}"},
        )
    )
    return Partner(base, token, session["session_id"], couple["couple_id"], couple.get("invite_code", ""))


async def gather_bounded(n: int, make: Callable[[int], Awaitable[Any]], width: int = 32) -> list[Any]:
    sem = asyncio.Semaphore(width)

    async def one(i: int) -> Any:
        async with sem:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


class CoachClient:
    """Real turns. Setup (couples, sessions) goes through httpx; the measured turns go
    through :class:`RawConn`, one connection and one partner per worker (a partner has
    at most one turn in flight)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.bases = [b.rstrip("/") for b in spec.base_url.split(",") if b]
        self.http = httpx.AsyncClient(limits=pool(64), timeout=60.0)
        self.partners: list[Partner] = []
        self.pools = {b: RawPool(b) for b in self.bases}
        self.count = 0
        self.sessions = 0  # sessions started by rotation
        self.dec = msgspec.json.Decoder()

    async def setup(self, n: int) -> None:
        self.partners = await gather_bounded(
            n,
            lambda i: new_partner(self.http, self.bases[i % len(self.bases)], self.spec.exercise, join=True),
        )

    async def rotate(self, p: Partner, conn: RawConn) -> None:
        """A new session, as a couple starting the next exercise (not timed; the server's
        CPU for it is counted). Keeps sessions as long as a real exercise (history)."""
        status, raw = await conn.request(
            "POST",
            "/v1/sessions",
            msgspec.json.encode({"exercise_id": self.spec.exercise}),
            {"authorization": f"Bearer {p.token}", "content-type": "application/json"},
        )
        if status != 201:
            raise RuntimeError(f"new session: http {status} {raw[:120]!r}")
        p.session_id = self.dec.decode(raw)["session_id"]
        p.turns = 0
        self.sessions += 1

    async def op(self, worker: int) -> Sample:
        p = self.partners[worker]
        conn = self.pools[p.base].conn(worker)
        if self.spec.turns_per_session and p.turns >= self.spec.turns_per_session:
            await self.rotate(p, conn)
        p.turns += 1
        self.count += 1
        tag: str | None = None
        text = TEXT
        if self.spec.stream and self.spec.stamp_every and self.count % self.spec.stamp_every == 0:
            tag = uuid.uuid4().hex[:16]
            text = f"{TEXT} [bench:{tag}]"
        path = f"/v1/sessions/{p.session_id}/messages"
        headers = {"authorization": f"Bearer {p.token}", "content-type": "application/json"}
        body = msgspec.json.encode({"text": text})
        t0 = time.perf_counter()
        if not self.spec.stream:
            status, raw = await conn.request("POST", path, body, headers)
            if status != 201:
                raise RuntimeError(f"http {status} {raw[:120]!r}")
            reply = self.dec.decode(raw).get("reply") or {}
            if not reply.get("text"):
                raise RuntimeError("no reply")
            if reply.get("model") == "offline":
                raise RuntimeError("offline fallback")
            return Sample(time.perf_counter() - t0)
        headers["accept"] = "text/event-stream"
        first: float | None = None
        sentence: float | None = None
        deltas: list[tuple[int, str]] = []
        state = {"done": False, "bad": ""}

        def on_event(event: str, data: str) -> None:
            nonlocal first, sentence
            now = time.perf_counter()
            if first is None:
                first = now - t0
            if event == "delta":
                if sentence is None:
                    sentence = now - t0
                if tag is not None:
                    deltas.append((time.monotonic_ns(), self.dec.decode(data)["text"]))
            elif event == "done":
                state["done"] = True
                if '"model":"offline"' in data:
                    state["bad"] = "offline fallback"
            elif event in ("error", "replace"):
                state["bad"] = f"event {event}"

        status, raw = await conn.request("POST", path, body, headers, on_event)
        if status != 201:
            raise RuntimeError(f"stream {status} {raw[:120]!r}")
        if state["bad"]:
            raise RuntimeError(str(state["bad"]))
        if not state["done"] or sentence is None:
            raise RuntimeError("stream ended without done")
        return Sample(time.perf_counter() - t0, first, sentence, tag, deltas if tag else None)

    async def aclose(self) -> None:
        for p in self.pools.values():
            p.close()
        await self.http.aclose()


async def release_lags(spec: Spec, samples: list[Sample]) -> dict[str, Any] | None:
    """Per released sentence: client receive time minus the upstream send time of the
    sentence's last token, and of the token after it (whose leading space ends it)."""
    tagged = [s for s in samples if s.tag and s.deltas]
    if not tagged or not spec.stamps_url:
        return None
    after_last: list[float] = []
    after_boundary: list[float] = []
    async with httpx.AsyncClient(timeout=10.0) as http:
        for s in tagged:
            r = await http.get(f"{spec.stamps_url.rstrip('/')}/_stamps", params={"tag": s.tag})
            data = r.json()
            sent: list[int] = data["sent_ns"]
            tokens: list[str] = data["tokens"]
            if len(sent) != len(tokens) or not s.deltas:
                continue
            ends: list[int] = []  # char offset where each token ends
            pos = 0
            for tok in tokens:
                pos += len(tok)
                ends.append(pos)
            released = 0
            for recv_ns, text in s.deltas:
                released += len(text)
                # the sentence's last visible character, ignoring trailing whitespace
                last_char = released - (len(text) - len(text.rstrip()))
                idx = next((i for i, e in enumerate(ends) if e >= last_char), len(tokens) - 1)
                after_last.append((recv_ns - sent[idx]) / 1e9)
                nxt = min(idx + 1, len(tokens) - 1)
                after_boundary.append((recv_ns - sent[nxt]) / 1e9)
    return {
        "turns": len(tagged),
        "after_last_token": summary(after_last),
        "after_boundary_token": summary(after_boundary),
    }


# -- drivers ----------------------------------------------------------------------------
async def closed_loop(
    op: Op, workers: int, count: int, limit: float
) -> tuple[list[Sample], dict[str, int], float]:
    samples: list[Sample] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + limit

    async def worker(w: int) -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            issued += 1
            try:
                samples.append(await op(w))
            except Exception as exc:
                key = f"{type(exc).__name__}: {str(exc)[:80]}"
                errors[key] = errors.get(key, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return samples, errors, time.perf_counter() - t0


async def open_loop(
    op: Op, slots: int, rate: float, count: int, limit: float
) -> tuple[list[Sample], dict[str, int], float]:
    """Poisson arrivals at ``rate``/s; each takes a free slot (a partner): none free
    counts as ``no-free-slot`` (the arrival is dropped, not queued)."""
    samples: list[Sample] = []
    errors: dict[str, int] = {}
    free = list(range(slots))
    tasks: set[asyncio.Task[None]] = set()
    rng = random.Random(42)

    async def one(slot: int) -> None:
        try:
            samples.append(await op(slot))
        except Exception as exc:
            key = f"{type(exc).__name__}: {str(exc)[:80]}"
            errors[key] = errors.get(key, 0) + 1
        finally:
            free.append(slot)

    t0 = time.perf_counter()
    next_at = t0
    for _ in range(count):
        next_at += rng.expovariate(rate)
        delay = next_at - time.perf_counter()
        if next_at - t0 > limit:
            break
        if delay > 0:
            await asyncio.sleep(delay)
        if not free:
            errors["no-free-slot"] = errors.get("no-free-slot", 0) + 1
            continue
        task = asyncio.create_task(one(free.pop()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=max(1.0, limit))
    return samples, errors, time.perf_counter() - t0


async def wait_for_go() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)


async def run_requests(spec: Spec) -> dict[str, Any]:
    client: RawChat | SdkClient | CoachClient
    slots = spec.concurrency
    if spec.rate is not None:
        slots = max(spec.concurrency, 1)
    if spec.target == "raw":
        client = RawChat(spec)
    elif spec.target == "sdk":
        client = SdkClient(spec)
    else:
        client = CoachClient(spec)
        await client.setup(slots)
    try:
        if spec.warmup:
            await closed_loop(client.op, min(slots, spec.warmup), spec.warmup, 60.0)
        emit({"phase": "ready"})
        await wait_for_go()
        cpu0 = time.process_time()
        if spec.rate is not None:
            samples, errors, elapsed = await open_loop(
                client.op, slots, spec.rate, spec.requests, spec.time_limit
            )
        else:
            samples, errors, elapsed = await closed_loop(
                client.op, spec.concurrency, spec.requests, spec.time_limit
            )
        cpu = time.process_time() - cpu0
        lags = await release_lags(spec, samples) if spec.target == "coach" else None
        rotated = client.sessions if isinstance(client, CoachClient) else 0
    finally:
        await client.aclose()
    return {
        "phase": "result",
        "n": len(samples),
        "errors": errors,
        "elapsed": elapsed,
        "throughput": len(samples) / elapsed if elapsed > 0 else 0.0,
        "latency": summary([s.latency for s in samples]),
        "first_token": summary([s.first_token for s in samples if s.first_token is not None]),
        "first_sentence": summary([s.first_sentence for s in samples if s.first_sentence is not None]),
        "release_lag": lags,
        "sessions_started": rotated,
        "client_cpu_s": cpu,
        "client_core_fraction": cpu / elapsed if elapsed > 0 else 0.0,
    }


# -- idle listeners and cross-process delivery ------------------------------------------
class Listener:
    def __init__(self, partner: Partner, base: str) -> None:
        self.partner = partner
        self.base = base
        self.connected = asyncio.Event()
        self.seen: dict[str, int] = {}  # probe marker -> monotonic_ns first seen
        self.error: str | None = None

    async def run(self, http: httpx.AsyncClient) -> None:
        url = f"{self.base}/v1/sessions/{self.partner.session_id}/events"
        headers = {"authorization": f"Bearer {self.partner.token}", "accept": "text/event-stream"}
        try:
            async with http.stream("GET", url, headers=headers) as r:
                if r.status_code != 200:
                    self.error = f"http {r.status_code}"
                    self.connected.set()
                    return
                async for line in r.aiter_lines():
                    if not self.connected.is_set() and line.startswith(":"):
                        self.connected.set()
                    if line.startswith("data:") and "probe-" in line:
                        m = re.search(r"probe-[0-9a-f]{12}", line)
                        if m and m.group(0) not in self.seen:
                            self.seen[m.group(0)] = time.monotonic_ns()
        except (httpx.HTTPError, asyncio.CancelledError) as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.error = type(exc).__name__
            self.connected.set()
            if isinstance(exc, asyncio.CancelledError):
                raise


async def run_listeners(spec: Spec) -> dict[str, Any]:
    """``listeners`` SSE listeners: both partners of ``listeners // 2`` couples, all on
    ``listen_url``; probes are posted by partner A on ``base_url`` and must reach
    partner B's listener."""
    post_base = spec.base_url.rstrip("/")
    listen_base = (spec.listen_url or spec.base_url).rstrip("/")
    couples = max(1, spec.listeners // 2)
    setup = httpx.AsyncClient(limits=pool(64), timeout=60.0)
    listen_http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=spec.listeners + 16, max_keepalive_connections=0),
        timeout=httpx.Timeout(60.0, read=None),
    )
    tasks: list[asyncio.Task[None]] = []
    try:

        async def make_pair(i: int) -> tuple[Partner, Partner]:
            a = await new_partner(setup, post_base, spec.exercise)
            joined = await check(
                await setup.post(f"{post_base}/v1/couples/join", json={"invite_code": a.invite_code})
            )
            b = Partner(post_base, joined["token"], a.session_id, a.couple_id)
            return a, b

        t_setup = time.perf_counter()
        pairs: list[tuple[Partner, Partner]] = await gather_bounded(couples, make_pair)
        setup_s = time.perf_counter() - t_setup
        listeners: list[Listener] = []
        for a, b in pairs:
            listeners.append(Listener(a, listen_base))
            listeners.append(Listener(b, listen_base))
        t_conn = time.perf_counter()
        for i in range(0, len(listeners), 100):  # connect in waves of 100
            wave = listeners[i : i + 100]
            tasks.extend(asyncio.create_task(li.run(listen_http)) for li in wave)
            try:
                await asyncio.wait_for(asyncio.gather(*(li.connected.wait() for li in wave)), 60)
            except TimeoutError:
                for li in wave:
                    if not li.connected.is_set():
                        li.error = li.error or "no connected comment within 60 s"
        connect_s = time.perf_counter() - t_conn
        failed = sum(1 for li in listeners if li.error)
        emit(
            {
                "phase": "ready",
                "listeners": len(listeners) - failed,
                "failed": failed,
                "setup_s": setup_s,
                "connect_s": connect_s,
            }
        )
        await wait_for_go()
        # probes: partner A posts (on post_base); partner B's listener must see it
        delivery: list[float] = []
        missing = 0
        post_errors: dict[str, int] = {}
        for k in range(min(spec.probes, couples)):
            a, _b = pairs[k * (couples // max(1, spec.probes)) % couples]
            listener_b = listeners[2 * pairs.index((a, _b)) + 1]
            marker = f"probe-{uuid.uuid4().hex[:12]}"
            t0 = time.monotonic_ns()
            r = await setup.post(
                f"{post_base}/v1/sessions/{a.session_id}/messages",
                json={"text": f"{TEXT} {marker}"},
                headers={"authorization": f"Bearer {a.token}"},
            )
            if r.status_code != 201:
                post_errors[f"http {r.status_code}"] = post_errors.get(f"http {r.status_code}", 0) + 1
                missing += 1
                continue
            for _ in range(200):  # up to 2 s
                if marker in listener_b.seen:
                    break
                await asyncio.sleep(0.01)
            if marker in listener_b.seen:
                delivery.append((listener_b.seen[marker] - t0) / 1e9)
            else:
                missing += 1
        still = sum(1 for t in tasks if not t.done())
        errors: dict[str, int] = dict(post_errors)
        for li in listeners:
            if li.error:
                errors[li.error] = errors.get(li.error, 0) + 1
        return {
            "phase": "result",
            "listeners": len(listeners),
            "errors": errors,
            "failed": sum(1 for li in listeners if li.error),
            "still_connected": still,
            "probes": spec.probes,
            "delivered": len(delivery),
            "missing": missing,
            "delivery_ms": summary(delivery),
            "setup_s": setup_s,
            "connect_s": connect_s,
        }
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await listen_http.aclose()
        await setup.aclose()


async def main_async(spec: Spec) -> None:
    if spec.target == "listeners":
        result = await run_listeners(spec)
    else:
        result = await run_requests(spec)
    emit(result)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: load.py SPEC_JSON\n")
        return 2
    spec = msgspec.json.decode(args[0], type=Spec)
    raise_nofile()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(spec))
    else:
        uvloop.run(main_async(spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
