"""Streaming replies: order, holdback, midway failure, and client disconnects."""

from __future__ import annotations

import time
from typing import Any

import httpx
import respx
from litestar.testing import AsyncTestClient

from tests.conftest import UPSTREAM, AppFactory, LiveServer, RedisServer, Script, new_couple, sse_chunks
from tests.integration.test_safety_policy import parse_sse
from tests.upstream import SlowStreamUpstream

COMPLETIONS = f"{UPSTREAM}/chat/completions"


def stream_response(pieces: list[str]) -> httpx.Response:
    return httpx.Response(200, content=sse_chunks(pieces), headers={"content-type": "text/event-stream"})


async def post_streamed(
    client: AsyncTestClient[Any], c: dict[str, Any], exercise: str, text: str
) -> list[dict[str, Any]]:
    sid = (await client.post("/v1/sessions", json={"exercise_id": exercise}, headers=c["a"])).json()[
        "session_id"
    ]
    r = await client.post(
        f"/v1/sessions/{sid}/messages", json={"text": text}, headers={**c["a"], "accept": "text/event-stream"}
    )
    assert r.status_code == 201
    assert r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.text)


async def test_sentences_stream_in_order_then_done(make_app: AppFactory, redis_client: Any) -> None:
    from tests.conftest import upstream_client

    pieces = ["It sounds ", "like a heavy day. ", "What part of it ", "is still with you?"]
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Script(stream_response(pieces)))
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c = await new_couple(client)
            events = await post_streamed(client, c, "evening-check-in", "The meeting ran late.")
            sid = events[-1]["data"]["session"]["session_id"]
            stored = (await client.get(f"/v1/sessions/{sid}/messages", headers=c["b"])).json()["messages"]
    kinds = [e["event"] for e in events]
    assert kinds == ["message", "safety", "delta", "delta", "done"]
    assert [e["data"]["text"] for e in events if e["event"] == "delta"] == [
        "It sounds like a heavy day. ",
        "What part of it is still with you?",
    ]
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    done = events[-1]["data"]["reply"]
    assert done["text"] == "It sounds like a heavy day. What part of it is still with you?"
    assert done["model"] == "test-model" and not done["fallback"]
    assert stored[-1]["text"] == done["text"]  # what was streamed is what was stored


async def test_a_stream_that_breaks_midway_ends_with_error_and_the_fallback(
    make_app: AppFactory, redis_client: Any
) -> None:
    from tests.conftest import upstream_client

    def broken(request: httpx.Request) -> httpx.Response:
        async def body() -> Any:
            yield sse_chunks(["That sounds hard. "])[: -len(b"data: [DONE]\n\n")]
            raise httpx.ReadError("connection reset")

        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Script(broken))
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c = await new_couple(client)
            events = await post_streamed(client, c, "evening-check-in", "Rough day.")
    kinds = [e["event"] for e in events]
    assert kinds[-3:] == ["error", "delta", "done"]
    assert events[2] == {"event": "delta", "id": "3", "data": {"text": "That sounds hard. "}}
    done = events[-1]["data"]["reply"]
    assert done["fallback"] is True
    assert done["text"].startswith("That sounds hard. ") and len(done["text"]) > len("That sounds hard. ")


async def test_the_model_down_before_any_token_streams_the_offline_line(
    make_app: AppFactory, redis_client: Any
) -> None:
    from tests.conftest import upstream_client

    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).respond(503, json={})
        async with AsyncTestClient(app=make_app(model=upstream_client(), turn_deadline=0.6)) as client:
            c = await new_couple(client)
            events = await post_streamed(client, c, "evening-check-in", "Rough day.")
    assert [e["event"] for e in events] == ["message", "safety", "delta", "done"]
    assert events[-1]["data"]["reply"]["model"] == "offline"


def test_a_client_that_disconnects_cancels_the_upstream_request(redis_server: RedisServer) -> None:
    upstream = SlowStreamUpstream([f"Sentence number {i}. " for i in range(40)], pace=0.15).start()
    server = LiveServer(
        redis_server.url, COACH_MODEL_BASE_URL=upstream.base_url, OPENAI_API_KEY="k", COACH_MODEL="slow"
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            token = client.post("/v1/couples", json={}).json()["token"]
            h = {"Authorization": f"Bearer {token}"}
            sid = client.post("/v1/sessions", json={"exercise_id": "evening-check-in"}, headers=h).json()[
                "session_id"
            ]
            with client.stream(
                "POST",
                f"/v1/sessions/{sid}/messages",
                json={"text": "Long day."},
                headers={**h, "accept": "text/event-stream"},
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("event: delta"):
                        break  # the first sentence arrived: now hang up
            closed_at = time.monotonic()
        assert upstream.abandoned.wait(timeout=5), "the upstream stream was not cancelled"
        assert upstream.abandoned_at is not None
        # Not a timing assertion: the upstream would have streamed for ~6 s more.
        assert upstream.abandoned_at - closed_at < 5
        assert upstream.requests == 1
    finally:
        server.stop()
        upstream.stop()


async def test_a_slow_model_gets_heartbeat_comments_while_the_client_waits(
    make_app: AppFactory, redis_client: Any
) -> None:
    import asyncio

    from tests.conftest import upstream_client

    async def slow_first_token(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.5)  # the model thinks for several heartbeat intervals
        return stream_response(["Take your time. "])

    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Script(slow_first_token))
        app = make_app(model=upstream_client(), heartbeat_seconds=0.1)
        async with AsyncTestClient(app=app) as client:
            c = await new_couple(client)
            sid = (
                await client.post("/v1/sessions", json={"exercise_id": "evening-check-in"}, headers=c["a"])
            ).json()["session_id"]
            r = await client.post(
                f"/v1/sessions/{sid}/messages",
                json={"text": "Hard day."},
                headers={**c["a"], "accept": "text/event-stream"},
            )
    before_reply = r.text.split("event: delta")[0]
    assert ": heartbeat" in before_reply
    events = parse_sse(r.text)
    assert [e["event"] for e in events] == ["message", "safety", "delta", "done"]
    assert events[-1]["data"]["reply"]["text"] == "Take your time."
