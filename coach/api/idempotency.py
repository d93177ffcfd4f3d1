"""``Idempotency-Key`` for POSTs that create something: a retry returns the first response."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response

from coach.api.problems import Problem
from coach.store import IdempotencyConflict, IdempotencyInProgress, Store

HEADER = "idempotency-key"


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


async def idempotent(
    request: Request[Any, Any, Any],
    store: Store,
    scope: str,
    run: Callable[[], Awaitable[tuple[int, Any]]],
) -> Response[bytes]:
    """Run ``run`` once per (scope, Idempotency-Key); replay its response on retries."""
    key = request.headers.get(HEADER)
    if key is not None and not 1 <= len(key) <= 255:
        raise Problem("bad-request", "Idempotency-Key must be 1 to 255 characters.")
    if key is None:
        status, body = await run()
        return Response(content=msgspec.json.encode(body), status_code=status, media_type="application/json")
    body_bytes = await request.body()
    fp = fingerprint(request.method, request.url.path, body_bytes)
    try:
        stored = await store.idempotency_begin(scope, key, fp)
    except IdempotencyConflict:
        raise Problem("idempotency-key-reused") from None
    except IdempotencyInProgress:
        raise Problem("idempotency-in-progress", headers={"Retry-After": "1"}) from None
    if stored is not None:
        status, content = stored
        return Response(
            content=content,
            status_code=status,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        status, body = await run()
    except BaseException:
        await store.idempotency_abandon(scope, key)
        raise
    encoded = msgspec.json.encode(body)
    await store.idempotency_finish(scope, key, fp, status, encoded)
    return Response(content=encoded, status_code=status, media_type="application/json")
