"""What the mobile team relies on: idempotent retries, limits, one turn at a time, data rights."""

from __future__ import annotations

from typing import Any

import respx
from litestar.testing import AsyncTestClient

from tests.conftest import UPSTREAM, AppFactory, Script, new_couple, upstream_client

COMPLETIONS = f"{UPSTREAM}/chat/completions"


async def test_an_idempotent_retry_returns_the_first_response(
    make_app: AppFactory, redis_client: Any
) -> None:
    script = Script("The only reply.")  # a second model call would raise
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c = await new_couple(client)
            sid = (
                await client.post("/v1/sessions", json={"exercise_id": "deeper-questions"}, headers=c["a"])
            ).json()["session_id"]
            url = f"/v1/sessions/{sid}/messages"
            headers = {**c["a"], "Idempotency-Key": "k-123"}
            first = await client.post(url, json={"text": "A small fear: money."}, headers=headers)
            retry = await client.post(url, json={"text": "A small fear: money."}, headers=headers)
            assert retry.status_code == first.status_code == 201
            assert retry.json() == first.json()
            assert retry.headers.get("idempotent-replayed") == "true"
            # The same key with another body is refused, not treated as new.
            other = await client.post(url, json={"text": "Something else."}, headers=headers)
            assert other.status_code == 422
            assert other.json()["type"] == "/problems/idempotency-key-reused"
            transcript = (await client.get(url, headers=c["a"])).json()["messages"]
    assert [m["kind"] for m in transcript] == ["message", "reply"]
    assert len(script.requests) == 1


async def test_idempotent_couple_creation(client: AsyncTestClient[Any]) -> None:
    h = {"Idempotency-Key": "create-1"}
    a = await client.post("/v1/couples", json={"display_name": "Kim"}, headers=h)
    b = await client.post("/v1/couples", json={"display_name": "Kim"}, headers=h)
    assert a.status_code == b.status_code == 201 and a.json() == b.json()


async def test_one_turn_in_flight_per_partner(client: AsyncTestClient[Any], redis_client: Any) -> None:
    c = await new_couple(client)
    sid = (
        await client.post("/v1/sessions", json={"exercise_id": "deeper-questions"}, headers=c["a"])
    ).json()["session_id"]
    url = f"/v1/sessions/{sid}/messages"
    # While partner A's turn is being answered (its in-flight claim is held)...
    await redis_client.set(f"coach:inflight:{c['a_id']}", "1", ex=30)
    second = await client.post(url, json={"text": "two"}, headers=c["a"])
    assert second.status_code == 409
    assert second.json()["type"] == "/problems/turn-in-progress"
    assert "retry-after" in second.headers
    # ...partner B is not held up, and nothing of A's refused message was stored.
    assert (await client.post(url, json={"text": "from B"}, headers=c["b"])).status_code == 201
    await redis_client.delete(f"coach:inflight:{c['a_id']}")
    assert (await client.post(url, json={"text": "three"}, headers=c["a"])).status_code == 201
    texts = [
        m["text"]
        for m in (await client.get(url, headers=c["a"])).json()["messages"]
        if m["kind"] == "message"
    ]
    assert texts == ["from B", "three"]
    # A finished turn releases its claim.
    assert await redis_client.exists(f"coach:inflight:{c['a_id']}") == 0


async def test_rate_limits_answer_429_with_headers(make_app: AppFactory, redis_client: Any) -> None:
    async with AsyncTestClient(app=make_app(rate_limit_per_minute=3)) as client:
        c = await new_couple(client)
        statuses = []
        for _ in range(4):
            r = await client.get("/v1/sessions", headers=c["a"])
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 429]
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == "/problems/rate-limited"
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-remaining"] == "0"
        # Another partner has their own budget.
        ok = await client.get("/v1/sessions", headers=c["b"])
        assert ok.status_code == 200 and ok.headers["ratelimit-limit"] == "3"


async def test_the_address_and_the_token_limits_both_count_and_the_tightest_is_reported(
    make_app: AppFactory, redis_client: Any
) -> None:
    async with AsyncTestClient(app=make_app(rate_limit_per_minute=3, ip_rate_limit_per_minute=10)) as client:
        c = await new_couple(client)  # two requests from the address, none with a token
        first = await client.get("/v1/sessions", headers=c["a"])
        # the token's bucket (3) is tighter than the address's (10 - 3 used)
        assert first.headers["ratelimit-limit"] == "3" and first.headers["ratelimit-remaining"] == "2"
        for _ in range(6):  # b's token runs out after 3; the address still counts them
            await client.get("/v1/sessions", headers=c["b"])
        # the address's tenth request: its bucket is now the tighter one for a's token
        r = await client.get("/v1/sessions", headers=c["a"])
        assert r.status_code == 200
        assert r.headers["ratelimit-limit"] == "10" and r.headers["ratelimit-remaining"] == "0"
        refused = await client.get("/v1/sessions", headers=c["a"])
        assert refused.status_code == 429 and refused.json()["type"] == "/problems/rate-limited"


async def test_catalog_etag(client: AsyncTestClient[Any]) -> None:
    first = await client.get("/v1/exercises")
    etag = first.headers["etag"]
    again = await client.get("/v1/exercises", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


async def test_transcript_cursor_pagination(client: AsyncTestClient[Any]) -> None:
    c = await new_couple(client)
    sid = (
        await client.post("/v1/sessions", json={"exercise_id": "deeper-questions"}, headers=c["a"])
    ).json()["session_id"]
    for i in range(3):
        await client.post(
            f"/v1/sessions/{sid}/messages",
            json={"text": f"answer {i}"},
            headers=c["a" if i % 2 == 0 else "b"],
        )
    seen: list[int] = []
    cursor = 0
    while True:
        page = (
            await client.get(
                f"/v1/sessions/{sid}/messages", params={"after": cursor, "limit": 2}, headers=c["a"]
            )
        ).json()
        seen += [m["seq"] for m in page["messages"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == [1, 2, 3, 4, 5, 6]


async def test_export_and_delete(client: AsyncTestClient[Any], redis_client: Any) -> None:
    c = await new_couple(client)
    sid = (
        await client.post("/v1/sessions", json={"exercise_id": "deeper-questions"}, headers=c["a"])
    ).json()["session_id"]
    await client.post(f"/v1/sessions/{sid}/messages", json={"text": "my words"}, headers=c["a"])
    export = (await client.get("/v1/me/export", headers=c["a"])).json()
    assert export["partner"]["id"] == c["a_id"]
    assert "my words" in [t["text"] for s in export["sessions"] for t in s["turns"]]
    assert "token" not in str(export["partner"])

    assert (await client.delete("/v1/me", headers=c["a"])).status_code == 204
    assert (await client.get("/v1/me/export", headers=c["a"])).status_code == 401
    # The couple's shared data stays while partner B remains...
    assert (await client.get(f"/v1/sessions/{sid}", headers=c["b"])).status_code == 200
    assert (await client.delete("/v1/me", headers=c["b"])).status_code == 204
    # ...and is gone once both have left.
    assert await redis_client.keys(f"coach:session:{sid}*") == []
    assert await redis_client.keys(f"coach:couple:{c['couple_id']}*") == []
    assert await redis_client.keys("coach:partner:*") == []
    assert await redis_client.keys("coach:token:*") == []


async def test_a_retried_streamed_turn_is_not_stored_twice(client: AsyncTestClient[Any]) -> None:
    c = await new_couple(client)
    sid = (
        await client.post("/v1/sessions", json={"exercise_id": "deeper-questions"}, headers=c["a"])
    ).json()["session_id"]
    url = f"/v1/sessions/{sid}/messages"
    headers = {**c["a"], "Idempotency-Key": "stream-1", "accept": "text/event-stream"}
    first = await client.post(url, json={"text": "Something I am proud of."}, headers=headers)
    retry = await client.post(url, json={"text": "Something I am proud of."}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.headers.get("idempotent-replayed") == "true"
    done_first = first.text.split("event: done")[1]
    done_retry = retry.text.split("event: done")[1]
    assert done_first.split("data: ")[1].split("\n")[0] == done_retry.split("data: ")[1].split("\n")[0]
    transcript = (await client.get(url, headers=c["a"])).json()["messages"]
    assert [m["kind"] for m in transcript] == ["message", "reply"]
