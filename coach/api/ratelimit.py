"""Per-token and per-address rate limits, counted in Redis so every worker shares them.

Fixed one-minute windows. Every /v1 response carries ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset``; a refused request gets 429 problem+json
with ``Retry-After``.
"""

from __future__ import annotations

import hashlib

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.types.asgi_types import HTTPResponseBodyEvent, HTTPResponseStartEvent

from coach.api.problems import PROBLEM_JSON, PROBLEMS
from coach.store import Store

WINDOW = 60


def _problem(status: int, slug: str, detail: str, path: str) -> bytes:
    return msgspec.json.encode(
        {
            "type": f"/problems/{slug}",
            "title": PROBLEMS[slug][1],
            "status": status,
            "detail": detail,
            "instance": path,
        }
    )


class RateLimiter:
    def __init__(self, app: ASGIApp, *, store: Store, per_token: int, per_ip: int) -> None:
        self.app = app
        self.store = store
        self.per_token = per_token
        self.per_ip = per_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != ScopeType.HTTP or not path.startswith("/v1/") or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        buckets: list[tuple[str, int]] = []
        if self.per_ip > 0:
            client = scope.get("client")
            buckets.append((f"ip:{client[0] if client else 'unknown'}", self.per_ip))
        token = _bearer(scope)
        if token and self.per_token > 0:
            buckets.append((f"tok:{hashlib.sha256(token.encode()).hexdigest()[:32]}", self.per_token))
        if not buckets:
            await self.app(scope, receive, send)
            return
        try:
            hits, reset = await self.store.hit([name for name, _ in buckets], WINDOW)
        except Exception:
            await _send(
                send,
                503,
                _problem(503, "store-unavailable", "The store did not answer; try again shortly.", path),
                [(b"retry-after", b"2")],
            )
            return
        counts = [(count, limit) for count, (_, limit) in zip(hits, buckets, strict=True)]
        # The tightest bucket is the one reported.
        count, limit = min(counts, key=lambda c: c[1] - c[0])
        remaining = max(0, limit - count)
        headers = [
            (b"ratelimit-limit", str(limit).encode()),
            (b"ratelimit-remaining", str(remaining).encode()),
            (b"ratelimit-reset", str(reset).encode()),
        ]
        if any(c > lim for c, lim in counts):
            await _send(
                send,
                429,
                _problem(429, "rate-limited", f"Too many requests; try again in {reset} s.", path),
                [*headers, (b"retry-after", str(reset).encode())],
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
