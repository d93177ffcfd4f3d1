"""Shared pieces of the drills: processes (each in its own process group, always stopped),
a fault-injecting fake upstream that records what it was asked, and the result record."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
LOGS = RESULTS / "drills-logs"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
if not Path(PYTHON).exists():
    PYTHON = sys.executable
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- results
@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class DrillResult:
    name: str
    sent: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicates: int = 0
    max_latency: float = 0.0
    checks: list[Check] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "max_latency_s": round(self.max_latency, 3),
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "checks": [c.__dict__ for c in self.checks],
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- processes
def stop_group(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, wait: float = 10) -> None:
    """Signal the process group of ``proc`` (started with start_new_session) and reap it."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class Redis:
    """redis-server on a loopback port in its own process group."""

    def __init__(self, *, appendonly: bool = False, fsync: str = "always") -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="coach-drill-redis-")
        self.appendonly = appendonly
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> Redis:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--dir",
                self.dir,
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                self.fsync,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill9(self) -> None:
        stop_group(self.proc, signal.SIGKILL)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server stops answering but keeps its sockets (a hung Redis, or a
        partition that drops packets); the kernel still accepts new connections."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()  # a stopped server would hold SIGTERM until continued
        stop_group(self.proc)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Coach:
    """``coach serve`` as a real process in its own process group."""

    def __init__(self, redis_url: str, upstream: str, name: str, **env: str) -> None:
        self.port = free_port()
        self.name = name
        self.env = {
            "COACH_REDIS_URL": redis_url,
            "COACH_MODEL_BASE_URL": upstream,
            "OPENAI_API_KEY": "x",
            "COACH_MODEL": "fake",
            "COACH_ALLOW_DRAFT_TEMPLATES": "true",
            "COACH_RATE_LIMIT_PER_MINUTE": "0",
            "COACH_IP_RATE_LIMIT_PER_MINUTE": "0",
            "COACH_TURN_DEADLINE": "5",
            "COACH_PORT": str(self.port),
            "COACH_LOG_LEVEL": "WARNING",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = LOGS / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, attempts: int = 6) -> Coach:
        """Start and wait for /readyz. Others edit the tree concurrently, so a start that
        dies at import time (a half-written data file) is retried, bounded."""
        for attempt in range(attempts):
            try:
                return self._start_once()
            except RuntimeError:
                self.stop()
                if attempt == attempts - 1:
                    raise
                time.sleep(5)
        raise RuntimeError("unreachable")

    def _start_once(self) -> Coach:
        LOGS.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
        env.update(self.env)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "coach.cli", "serve"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"coach exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError("coach did not become ready")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        """VmRSS of the coach process (kB)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return -1

    def stop(self) -> None:
        stop_group(self.proc)
        self.proc = None


def counselor_token(redis_url: str, name: str, role: str = "admin") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    env["COACH_REDIS_URL"] = redis_url
    out = subprocess.run(
        [PYTHON, "-m", "coach.cli", "counselor", "add", name, "--role", role],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1].strip()


# --------------------------------------------------------------------------- upstream
REPLY = "That sounds like it matters to you both. What would one small step look like this week?"


@dataclass
class Faults:
    """Fractions of upstream requests that fail, each way."""

    error5xx: float = 0.0
    rate_limited: float = 0.0
    hang: float = 0.0
    die_midway: float = 0.0
    hang_seconds: float = 8.0
    latency: float = 0.01
    #: the pause after each streamed word (the reply has 17): how long a stream stays open
    token_pause: float = 0.002


class FaultUpstream:
    """An OpenAI-compatible ``/v1/chat/completions`` on a loopback port (own thread and
    event loop) that injects faults and records every request's messages (bounded)."""

    MAX_RECORDS = 5000

    def __init__(self, faults: Faults | None = None, seed: int = 7) -> None:
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.port = free_port()
        self.records: list[dict[str, Any]] = []
        self.outcomes: dict[str, int] = {}
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.AbstractServer | None = None
        self.thread: threading.Thread | None = None
        self.ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def _pick(self) -> str:
        f = self.faults
        r = self.rng.random()
        for name, p in (
            ("5xx", f.error5xx),
            ("429", f.rate_limited),
            ("hang", f.hang),
            ("die", f.die_midway),
        ):
            if r < p:
                return name
            r -= p
        return "ok"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v.strip())
                body = await reader.readexactly(length) if length else b""
                if not await self._respond(method, path, body, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # a hang-up, or shutdown
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(self, method: str, path: str, body: bytes, w: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must be closed."""
        if not (method == "POST" and path.endswith("/chat/completions")):
            data = b'{"object":"list","data":[{"id":"fake","object":"model"}]}'
            w.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(data)).encode()
                + b"\r\n\r\n"
                + data
            )
            await w.drain()
            return True
        req = json.loads(body or b"{}")
        outcome = self._pick()
        with self.lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if len(self.records) < self.MAX_RECORDS:
                self.records.append(
                    {
                        "messages": req.get("messages", []),
                        "stream": bool(req.get("stream")),
                        "outcome": outcome,
                    }
                )
        await asyncio.sleep(self.faults.latency)
        if outcome == "5xx":
            data = b'{"error":{"message":"upstream exploded","type":"server_error"}}'
            status = self.rng.choice(
                [b"500 Internal Server Error", b"502 Bad Gateway", b"503 Service Unavailable"]
            )
            w.write(
                b"HTTP/1.1 "
                + status
                + b"\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(data)).encode()
                + b"\r\n\r\n"
                + data
            )
            await w.drain()
            return True
        if outcome == "429":
            data = b'{"error":{"message":"slow down","type":"rate_limit"}}'
            w.write(
                b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-type: application/json"
                b"\r\ncontent-length: " + str(len(data)).encode() + b"\r\n\r\n" + data
            )
            await w.drain()
            return True
        if outcome == "hang":
            await asyncio.sleep(self.faults.hang_seconds)
            return False
        model = req.get("model", "fake")
        if not req.get("stream"):
            data = json.dumps(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": REPLY},
                        }
                    ],
                }
            ).encode()
            if outcome == "die":  # promise the whole body, send half, hang up
                w.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(data)).encode()
                    + b"\r\n\r\n"
                    + data[: len(data) // 2]
                )
                await w.drain()
                return False
            w.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(data)).encode()
                + b"\r\n\r\n"
                + data
            )
            await w.drain()
            return True
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        words = REPLY.split(" ")
        for i, word in enumerate(words):
            if outcome == "die" and i == len(words) // 2:
                await w.drain()
                return False  # the stream dies midway: no terminating chunk
            piece = word if i == 0 else " " + word
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await w.drain()
            await asyncio.sleep(self.faults.token_pause)
        done = b"data: [DONE]\n\n"
        w.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
        await w.drain()
        return True

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop

        async def main() -> None:
            self.server = await asyncio.start_server(self._handle, HOST, self.port, limit=1 << 20)
            self.ready.set()
            async with self.server:
                with contextlib.suppress(asyncio.CancelledError):
                    await self.server.serve_forever()

        with contextlib.suppress(Exception):
            loop.run_until_complete(main())
        with contextlib.suppress(Exception):
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    def start(self) -> FaultUpstream:
        self.thread = threading.Thread(target=self._run, daemon=True, name="fault-upstream")
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("fault upstream did not start")
        return self

    def stop(self) -> None:
        if self.loop is not None and self.server is not None:
            server = self.server
            loop = self.loop

            def shut() -> None:
                server.close()
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(shut)
        if self.thread is not None:
            self.thread.join(timeout=10)


# --------------------------------------------------------------------------- API helpers
async def new_couple(c: httpx.AsyncClient, name: str = "Alex") -> dict[str, Any]:
    first = (await c.post("/v1/couples", json={"display_name": name, "country": "US"})).json()
    second = (
        await c.post(
            "/v1/couples/join", json={"invite_code": first["invite_code"], "display_name": name + "-2"}
        )
    ).json()
    return {
        "a": {"Authorization": f"Bearer {first['token']}"},
        "b": {"Authorization": f"Bearer {second['token']}"},
        "a_id": first["partner_id"],
        "b_id": second["partner_id"],
        "couple_id": first["couple_id"],
    }


async def new_session(
    c: httpx.AsyncClient, headers: dict[str, str], exercise: str = "deeper-questions"
) -> str:
    r = await c.post("/v1/sessions", json={"exercise_id": exercise}, headers=headers)
    r.raise_for_status()
    return str(r.json()["session_id"])


async def transcript(c: httpx.AsyncClient, session_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every message this partner may see, following ``next_cursor`` (bounded)."""
    out: list[dict[str, Any]] = []
    after: Any = None
    for _ in range(200):
        params: dict[str, Any] = {"limit": 100}
        if after is not None:
            params["after"] = after
        r = await c.get(f"/v1/sessions/{session_id}/messages", params=params, headers=headers)
        r.raise_for_status()
        body = r.json()
        out.extend(body["messages"])
        after = body.get("next_cursor")
        if after is None:
            break
    return out


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    start = time.monotonic()
    yield lambda: time.monotonic() - start
