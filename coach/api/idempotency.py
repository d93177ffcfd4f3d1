"""``Idempotency-Key`` for POSTs that create something: a retry returns the first response."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response

from coach.api.problems import Problem, is_store_error
from coach.store import IdempotencyConflict, IdempotencyInProgress, Receipt, Store, new_id

HEADER = "idempotency-key"


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """This request holds its key: finish (or abandon) it when done.

    ``resumed``: an earlier attempt stored its message (``message_id``) but never
    answered, so this request completes that turn instead of starting another."""

    store: Store
    scope: str
    key: str
    fingerprint: str
    nonce: str
    message_id: str
    resumed: bool = False

    def receipt(self) -> Receipt:
        return Receipt(
            scope=self.scope, key=self.key, fingerprint=self.fingerprint, message_id=self.message_id
        )

    async def finish(self, status: int, body: bytes) -> None:
        await self.store.idempotency_finish(self.scope, self.key, self.fingerprint, status, body)

    async def abandon(self, *, wait: bool = True) -> None:
        """Free the key for a retry (in the background if the store is failing, or at once
        with ``wait=False``: see :meth:`Store.eventually`). A key whose message is stored
        stays: the retry resumes the turn."""
        if self.resumed:
            return
        store, scope, key, nonce = self.store, self.scope, self.key, self.nonce
        await store.eventually(lambda: store.idempotency_abandon(scope, key, nonce), "free a key", wait=wait)


class Replay(msgspec.Struct, frozen=True):
    """A retry: the first request's status and body."""

    status: int
    body: bytes


async def claim(request: Request[Any, Any, Any], store: Store, scope: str) -> Claim | Replay | None:
    """None when the request carries no key; else a Claim to proceed or the Replay to send."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise Problem("bad-request", "Idempotency-Key must be 1 to 255 characters.")
    fp = fingerprint(request.method, request.url.path, await request.body())
    try:
        claimed, record = await store.idempotency_begin(scope, key, fp)
    except IdempotencyConflict:
        raise Problem("idempotency-key-reused") from None
    except IdempotencyInProgress:
        raise Problem("idempotency-in-progress", headers={"Retry-After": "1"}) from None
    if record.state == "done":
        return Replay(status=record.status, body=record.body.encode())
    return Claim(
        store=store,
        scope=scope,
        key=key,
        fingerprint=fp,
        nonce=record.nonce,
        message_id=record.message_id or new_id("msg"),
        resumed=not claimed,
    )


def replay_response(replay: Replay) -> Response[bytes]:
    return Response(
        content=replay.body,
        status_code=replay.status,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


async def idempotent(
    request: Request[Any, Any, Any],
    store: Store,
    scope: str,
    run: Callable[[Claim | None], Awaitable[tuple[int, Any]]],
) -> Response[bytes]:
    """Run ``run`` once per (scope, Idempotency-Key); replay its response on retries."""
    found = await claim(request, store, scope)
    if isinstance(found, Replay):
        return replay_response(found)
    try:
        status, body = await run(found)
    except BaseException as exc:
        if found is not None:
            await found.abandon(wait=not is_store_error(exc))
        raise
    encoded = msgspec.json.encode(body)
    if found is not None:
        await found.finish(status, encoded)
    return Response(content=encoded, status_code=status, media_type="application/json")
