"""Redis fails in the middle of a turn: a retry with the same Idempotency-Key completes
that turn (never a second message), and no key or turn claim stays stuck once the store
answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import redis.exceptions
import respx
from litestar.testing import AsyncTestClient
from redis.asyncio.client import Pipeline

from coach.store import Store
from tests.conftest import UPSTREAM, AppFactory, Script, new_couple, sse_chunks, upstream_client

COMPLETIONS = f"{UPSTREAM}/chat/completions"
TEXT = {"text": "Something small I appreciated today."}


def fail_cleanups_while(monkeypatch: pytest.MonkeyPatch, down: Callable[[], bool]) -> None:
    """While ``down()``: freeing a key, releasing a turn claim and every transaction fail
    as they would with Redis gone."""

    def failing(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any) -> Any:
            if down():
                raise redis.exceptions.ConnectionError("Connection refused")
            return await original(*args)

        return call

    monkeypatch.setattr(Store, "idempotency_abandon", failing(Store.idempotency_abandon))
    monkeypatch.setattr(Store, "release_claim", failing(Store.release_claim))
    monkeypatch.setattr(Pipeline, "watch", failing(Pipeline.watch))


class Outage:
    """Redis 'dies' on the chosen ``commit_turns`` calls: with ``lands=True`` the write is
    made and the connection drops before the answer (so the caller cannot know); with
    ``lands=False`` nothing is written. While ``down``, clean-ups fail too."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_call: int, *, lands: bool) -> None:
        self.calls = 0
        self.down = False
        commit, delete = Store.commit_turns, aioredis.Redis.delete

        async def failing_commit(store: Store, *args: Any, **kw: Any) -> Any:
            self.calls += 1
            if self.calls != fail_call:
                return await commit(store, *args, **kw)
            if lands:
                await commit(store, *args, **kw)
            self.down = True
            raise redis.exceptions.ConnectionError("Connection reset by peer")

        def failing_delete(client: aioredis.Redis, *keys: Any) -> Any:
            if self.down and not isinstance(client, Pipeline):
                raise redis.exceptions.ConnectionError("Connection refused")
            return delete(client, *keys)

        monkeypatch.setattr(Store, "commit_turns", failing_commit)
        monkeypatch.setattr(aioredis.Redis, "delete", failing_delete)
        fail_cleanups_while(monkeypatch, lambda: self.down)


class LostClaimAnswer:
    """Redis makes the first claim whose key holds ``part`` (an ``idem`` key, or the
    partner's ``inflight`` turn claim) and dies before answering; it is back after
    ``down_for`` seconds (clean-ups fail until then)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, part: str, down_for: float = 0.5) -> None:
        self.part, self.done, self.down_until = part, False, 0.0
        set_ = aioredis.Redis.set
        loop = asyncio.get_running_loop

        async def lossy_set(client: aioredis.Redis, name: str, *args: Any, **kw: Any) -> Any:
            if self.down:
                raise redis.exceptions.ConnectionError("Connection refused")
            result = await set_(client, name, *args, **kw)
            if kw.get("nx") and f":{part}:" in name and not self.done:
                self.done, self.down_until = True, loop().time() + down_for
                raise redis.exceptions.ConnectionError("Connection reset by peer")
            return result

        monkeypatch.setattr(aioredis.Redis, "set", lossy_set)
        fail_cleanups_while(monkeypatch, lambda: self.down)

    @property
    def down(self) -> bool:
        return asyncio.get_running_loop().time() < self.down_until


async def _session(client: AsyncTestClient[Any]) -> tuple[dict[str, Any], str]:
    c = await new_couple(client)
    sid = (
        await client.post("/v1/sessions", json={"exercise_id": "deeper-questions"}, headers=c["a"])
    ).json()["session_id"]
    return c, f"/v1/sessions/{sid}/messages"


async def _retry_until_201(client: AsyncTestClient[Any], url: str, headers: dict[str, str]) -> Any:
    """Retry like a client honouring Retry-After (bounded: ~5 s)."""
    seen = []
    for _ in range(25):
        r = await client.post(url, json=TEXT, headers=headers)
        seen.append(r.status_code)
        if r.status_code == 201:
            return r, seen
        assert r.status_code in (409, 503), r.text
        seen[-1] = f"{r.status_code} {r.json().get('type')}"
        await asyncio.sleep(0.2)
    raise AssertionError(f"never acknowledged: {seen}")


async def test_a_retry_completes_the_turn_whose_reply_was_lost(
    make_app: AppFactory, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script("First try.", "Second try.")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c, url = await _session(client)
            outage = Outage(monkeypatch, fail_call=2, lands=False)  # the reply's commit
            headers = {**c["a"], "Idempotency-Key": "lost-reply"}
            first = await client.post(url, json=TEXT, headers=headers)
            assert first.status_code == 503
            assert first.headers["content-type"].startswith("application/problem+json")
            outage.down = False
            retry, _ = await _retry_until_201(client, url, headers)
            again = await client.post(url, json=TEXT, headers=headers)
            transcript = (await client.get(url, headers=c["a"])).json()["messages"]
    assert [(m["kind"], m["text"]) for m in transcript] == [
        ("message", TEXT["text"]),
        ("reply", "Second try."),
    ]
    assert retry.json()["message"]["id"] == transcript[0]["id"]
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == retry.json()


async def test_a_retry_returns_the_reply_that_was_stored_before_the_connection_died(
    make_app: AppFactory, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script("The one reply.")  # a second model call would fail the test
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c, url = await _session(client)
            outage = Outage(monkeypatch, fail_call=2, lands=True)
            headers = {**c["a"], "Idempotency-Key": "lost-answer"}
            assert (await client.post(url, json=TEXT, headers=headers)).status_code == 503
            outage.down = False
            retry, _ = await _retry_until_201(client, url, headers)
            transcript = (await client.get(url, headers=c["a"])).json()["messages"]
    assert [m["kind"] for m in transcript] == ["message", "reply"]
    assert retry.json()["reply"]["text"] == "The one reply."
    assert len(script.requests) == 1


async def test_a_streamed_retry_streams_the_reply_for_the_stored_message(
    make_app: AppFactory, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(
        httpx.Response(200, content=sse_chunks(["Lost ", "reply."])),
        httpx.Response(200, content=sse_chunks(["Kept ", "reply."])),
    )
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c, url = await _session(client)
            outage = Outage(monkeypatch, fail_call=2, lands=False)
            headers = {**c["a"], "Idempotency-Key": "lost-stream", "accept": "text/event-stream"}
            first = await client.post(url, json=TEXT, headers=headers)
            # The stream had begun (201); the store failure ends it with an error, no "done".
            assert "event: error" in first.text and "store-unavailable" in first.text
            assert "event: done" not in first.text
            outage.down = False
            retry, _ = await _retry_until_201(client, url, headers)
            transcript = (await client.get(url, headers=c["a"])).json()["messages"]
    assert "event: done" in retry.text and "Kept reply." in retry.text
    assert [(m["kind"], m["text"]) for m in transcript] == [
        ("message", TEXT["text"]),
        ("reply", "Kept reply."),
    ]


async def test_keys_and_turn_claims_are_freed_once_the_store_is_back(
    make_app: AppFactory, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AsyncTestClient(app=make_app()) as client:
        c, url = await _session(client)
        outage = Outage(monkeypatch, fail_call=1, lands=False)  # the message's own commit
        headers = {**c["a"], "Idempotency-Key": "never-stored"}
        assert (await client.post(url, json=TEXT, headers=headers)).status_code == 503
        # Freeing the key and the partner's turn claim failed; the store is back now.
        outage.down = False
        retry, seen = await _retry_until_201(client, url, headers)
        transcript = (await client.get(url, headers=c["a"])).json()["messages"]
    assert len(seen) <= 10, seen  # within ~2 s, not the claim's 60 s
    assert [m["kind"] for m in transcript] == ["message", "reply"]
    assert retry.json()["message"]["text"] == TEXT["text"]


@pytest.mark.parametrize("part", ["idem", "inflight"])
async def test_a_claim_redis_made_without_answering_is_freed_once_it_is_back(
    make_app: AppFactory, redis_client: Any, monkeypatch: pytest.MonkeyPatch, part: str
) -> None:
    """Found by the redis_restart drill on a busy machine: Redis was killed after making a
    claim and before answering it, so the claim outlived the crash and every retry with
    that key was "in progress" until it expired (60 s for a key; the turn deadline + 15 s
    for the partner's turn claim). Now the claim is freed as soon as Redis is back."""
    async with AsyncTestClient(app=make_app()) as client:
        c, url = await _session(client)
        lost = LostClaimAnswer(monkeypatch, part)
        headers = {**c["a"], "Idempotency-Key": f"unanswered-{part}"}
        assert (await client.post(url, json=TEXT, headers=headers)).status_code == 503
        assert lost.done
        retry, seen = await _retry_until_201(client, url, headers)
        transcript = (await client.get(url, headers=c["a"])).json()["messages"]
    assert len(seen) <= 10, seen  # within ~2 s
    assert [m["kind"] for m in transcript] == ["message", "reply"]
    assert retry.json()["message"]["text"] == TEXT["text"]


async def test_a_turn_claim_is_released_only_by_the_request_that_holds_it(redis_client: Any) -> None:
    """A request whose claim expired (a turn past its deadline) must not release the claim
    a later request of the same partner holds."""
    store = Store(redis_client, retention_seconds=3600)
    first = await store.claim_turn("partner-1", 30)
    assert first is not None and await store.claim_turn("partner-1", 30) is None
    await redis_client.delete(store.k("inflight", "partner-1"))  # the first claim expired
    second = await store.claim_turn("partner-1", 30)
    assert second is not None
    await store.release_turn("partner-1", first)
    assert await store.claim_turn("partner-1", 30) is None  # still held by the second
    await store.release_turn("partner-1", second)
    assert await store.claim_turn("partner-1", 30) is not None
