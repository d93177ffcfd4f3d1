"""Shared fixtures: a real redis-server for the session, the app, a scripted model upstream."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from coach.app import create_app
from coach.model import CircuitBreaker, OpenAIClient
from coach.settings import Settings
from tests import model_mock  # noqa: F401  (registers respx's "coach" mocker)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
UPSTREAM = "http://upstream.test/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A real redis-server on a free loopback port, in a temporary directory."""

    def __init__(
        self, *, appendonly: bool = False, port: int | None = None, workdir: str | None = None
    ) -> None:
        self.port = port or free_port()
        self.dir = workdir or tempfile.mkdtemp(prefix="coach-redis-")
        #: the folder is removed by :meth:`close` only when this server made it
        self.owns_dir = workdir is None
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is missing: `make test` installs it with apt-get")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir,
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def close(self) -> None:
        """Stop the server and remove the folder it made (a restart on the same folder
        passes ``workdir`` and so leaves the folder to the first server's ``close``)."""
        self.stop()
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = aioredis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "allow_draft_templates": True,
        "turn_deadline": 5.0,
        "rate_limit_per_minute": 0,
        "ip_rate_limit_per_minute": 0,
        # The learned safety stage (on in production) raises 1 of 52 bland messages with
        # round fourteen's heads ("Here is my answer for How is it going?.", to danger; 0
        # to 5 with earlier heads); tests of other things must not depend on a model's
        # borderline scores.
        # Its own tests turn it on.
        "safety_learned": False,
    }
    base.update(overrides)
    return Settings.from_env({}, **base)


def upstream_client(**kw: Any) -> OpenAIClient:
    return OpenAIClient(
        base_url=UPSTREAM,
        api_key="test-key",
        model="test-model",
        request_timeout=kw.pop("request_timeout", 2.0),
        breaker=kw.pop("breaker", CircuitBreaker(50, 30.0)),
    )


AppFactory = Callable[..., Litestar]


@pytest.fixture
def make_app(redis_server: RedisServer) -> AppFactory:
    """Build an app on a fresh redis client (created inside the app's loop use)."""

    def factory(
        *, model: Any = None, today: Callable[[], dt.date] | None = None, **overrides: Any
    ) -> Litestar:
        client: aioredis.Redis = aioredis.from_url(redis_server.url, decode_responses=True)
        return create_app(settings(**overrides), redis=client, model=model, today=today)

    return factory


@pytest.fixture
async def client(
    make_app: AppFactory, redis_client: aioredis.Redis
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=make_app()) as c:
        yield c


def chat_completion(text: str, model: str = "test-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
    }


def sse_chunks(pieces: list[str], model: str = "test-model") -> bytes:
    import json

    out = []
    for piece in pieces:
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        out.append(f"data: {json.dumps(chunk)}\n\n")
    out.append("data: [DONE]\n\n")
    return "".join(out).encode()


class Script:
    """Queued upstream responses. Raises when a request arrives and none is left."""

    def __init__(self, *responses: Any) -> None:
        self.queue = list(responses)
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> Any:
        import httpx

        self.requests.append(request)
        if not self.queue:
            raise AssertionError(f"unexpected model request #{len(self.requests)}: script is empty")
        item = self.queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            return item(request)
        if isinstance(item, httpx.Response):
            return item
        return httpx.Response(200, json=chat_completion(str(item)))


async def new_couple(c: AsyncTestClient[Litestar], country: str = "US") -> dict[str, Any]:
    """Two partners, joined. Returns tokens and headers for both."""
    first = (await c.post("/v1/couples", json={"display_name": "Alex", "country": country})).json()
    second = (
        await c.post("/v1/couples/join", json={"invite_code": first["invite_code"], "display_name": "Sam"})
    ).json()
    return {
        "a": {"Authorization": f"Bearer {first['token']}"},
        "b": {"Authorization": f"Bearer {second['token']}"},
        "a_id": first["partner_id"],
        "b_id": second["partner_id"],
        "couple_id": first["couple_id"],
    }


class LiveServer:
    """``coach serve`` as a real process on a loopback port, sharing the test redis-server."""

    def __init__(self, redis_url: str, **env: str) -> None:
        self.port = free_port()
        self.env = {
            "COACH_REDIS_URL": redis_url,
            "COACH_PORT": str(self.port),
            "COACH_ALLOW_DRAFT_TEMPLATES": "true",
            "COACH_HEARTBEAT_SECONDS": "1",
            "COACH_RATE_LIMIT_PER_MINUTE": "0",
            "COACH_IP_RATE_LIMIT_PER_MINUTE": "0",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        import os
        import sys

        env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
        env.update(self.env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coach.cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        import httpx

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"coach serve exited: {err[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("coach serve did not become ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


@pytest.fixture
def live_server(redis_server: RedisServer) -> Iterator[LiveServer]:
    server = LiveServer(redis_server.url).start()
    yield server
    server.stop()
