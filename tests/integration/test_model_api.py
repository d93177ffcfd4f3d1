"""The coach against a respx-mocked OpenAI-compatible API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx
from litestar.testing import AsyncTestClient

from coach.catalog import load_catalog
from coach.model import CircuitBreaker, ModelRequest, OpenAIClient
from tests.conftest import (
    ROOT,
    UPSTREAM,
    AppFactory,
    Script,
    chat_completion,
    new_couple,
    upstream_client,
)

CATALOG = load_catalog(ROOT / "prompts")
COMPLETIONS = f"{UPSTREAM}/chat/completions"


async def test_respx_sees_the_sdk_requests() -> None:
    """openai 3.x sends through httpx2 unless given an httpx client, and respx cannot see
    httpx2: if an upgrade breaks our explicit client, this fails loudly."""
    client = upstream_client()
    with respx.mock(using="coach", assert_all_called=True) as mock:
        route = mock.post(COMPLETIONS).respond(200, json=chat_completion("hello"))
        reply = await client.complete(
            ModelRequest(messages=({"role": "user", "content": "hi"},), scripted="x"),
            deadline=_deadline(5),
        )
    assert route.call_count == 1
    assert reply.text == "hello" and reply.model == "test-model"
    sent = json.loads(route.calls[0].request.content)
    assert sent["model"] == "test-model"
    assert route.calls[0].request.headers["authorization"] == "Bearer test-key"
    await client.aclose()


def _deadline(seconds: float) -> float:
    import time

    return time.monotonic() + seconds


async def test_a_full_honesty_hour_with_the_model(make_app: AppFactory, redis_client: Any) -> None:
    exercise = CATALOG.exercises["honesty-hour"]
    turns = [
        (step, who) for step in exercise.steps for who in (("a", "b") if step.advance == "each" else ("a",))
    ]
    replies = [f"Coach reply {i}." for i in range(len(turns))]
    script = Script(*replies)
    with respx.mock(using="coach", assert_all_called=True) as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c = await new_couple(client)
            sid = (
                await client.post("/v1/sessions", json={"exercise_id": "honesty-hour"}, headers=c["a"])
            ).json()["session_id"]
            got = []
            for step, who in turns:
                r = await client.post(
                    f"/v1/sessions/{sid}/messages",
                    json={"text": f"My part for {step.title}."},
                    headers=c[who],
                )
                assert r.status_code == 201, r.text
                got.append(r.json()["reply"]["text"])
                assert r.json()["reply"]["model"] == "test-model"
                assert r.json()["reply"]["template"]["id"] == step.template.id
            assert r.json()["session"]["status"] == "completed"
    assert got == replies
    # Each request carries the system prompt, the step's instruction, then user text only
    # in user messages, labelled by speaker.
    last = json.loads(script.requests[-1].content)["messages"]
    assert [m["role"] for m in last[:2]] == ["system", "system"]
    name = {"a": "Alex", "b": "Sam"}[turns[-1][1]]
    assert last[-1] == {"role": "user", "content": f"{name}: My part for {exercise.steps[-1].title}."}
    assert all("My part" not in m["content"] for m in last if m["role"] == "system")
    assert any(m["role"] == "assistant" for m in last)


async def test_429_then_200_honours_retry_after() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    client = OpenAIClient(
        base_url=UPSTREAM,
        api_key="k",
        model="m",
        request_timeout=2,
        breaker=CircuitBreaker(5, 30),
        sleep=record,
    )
    script = Script(httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {}}), "after the wait")
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        reply = await client.complete(
            ModelRequest(messages=({"role": "user", "content": "hi"},), scripted="offline"),
            deadline=_deadline(10),
        )
    assert reply.text == "after the wait"
    assert waits == [2.0]
    assert len(script.requests) == 2


async def test_retry_after_beyond_the_deadline_falls_back_at_once(
    make_app: AppFactory, redis_client: Any
) -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "120"}, json={}))
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client(), turn_deadline=5)) as client:
            c = await new_couple(client)
            sid = (
                await client.post("/v1/sessions", json={"exercise_id": "evening-check-in"}, headers=c["a"])
            ).json()["session_id"]
            r = await client.post(f"/v1/sessions/{sid}/messages", json={"text": "Long day."}, headers=c["a"])
    reply = r.json()["reply"]
    assert reply["model"] == "offline" and reply["fallback"] is True
    assert len(script.requests) == 1


async def test_500s_until_the_deadline_fall_back_to_offline(make_app: AppFactory, redis_client: Any) -> None:
    with respx.mock(using="coach") as mock:
        route = mock.post(COMPLETIONS).respond(500, json={"error": {"message": "boom"}})
        async with AsyncTestClient(app=make_app(model=upstream_client(), turn_deadline=1.5)) as client:
            c = await new_couple(client)
            sid = (
                await client.post("/v1/sessions", json={"exercise_id": "evening-check-in"}, headers=c["a"])
            ).json()["session_id"]
            r = await client.post(f"/v1/sessions/{sid}/messages", json={"text": "Long day."}, headers=c["a"])
    assert r.status_code == 201
    reply = r.json()["reply"]
    assert reply["model"] == "offline" and reply["fallback"] is True
    step = CATALOG.exercises["evening-check-in"].steps[0]
    assert reply["template"]["id"] == step.template.id
    assert route.call_count >= 2  # it retried before giving up


async def test_open_breaker_skips_a_dead_provider(make_app: AppFactory, redis_client: Any) -> None:
    script = Script(httpx.Response(503, json={}), httpx.Response(503, json={}))
    breaker = CircuitBreaker(failures=1, reset=300)
    model = OpenAIClient(base_url=UPSTREAM, api_key="k", model="m", request_timeout=1, breaker=breaker)
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=model, turn_deadline=0.5)) as client:
            c = await new_couple(client)
            sid = (
                await client.post("/v1/sessions", json={"exercise_id": "deeper-questions"}, headers=c["a"])
            ).json()["session_id"]
            first = await client.post(f"/v1/sessions/{sid}/messages", json={"text": "Hi."}, headers=c["a"])
            calls_after_first = len(script.requests)
            second = await client.post(
                f"/v1/sessions/{sid}/messages", json={"text": "Again."}, headers=c["b"]
            )
            ready = (await client.get("/readyz")).json()
    assert first.json()["reply"]["fallback"] is True
    assert second.json()["reply"]["fallback"] is True
    assert len(script.requests) == calls_after_first  # the open breaker sent nothing
    assert ready["breaker"] == "open"


async def test_rewrite_with_a_corrective_retry(make_app: AppFactory, redis_client: Any) -> None:
    good = {
        "rewrite": "I feel alone when the kids' bedtime falls to me, because I need "
        "partnership. Would you be willing to take Tuesdays and Thursdays?",
        "feeling": "alone",
        "situation": "the kids' bedtime falls to me",
        "need": "partnership",
        "request": "take Tuesdays and Thursdays",
    }
    kept_blame = dict(good, rewrite="I feel alone because you never help with bedtime.")
    script = Script("this is not json", json.dumps(kept_blame), json.dumps(good))
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c = await new_couple(client)
            first = await client.post(
                "/v1/rewrite", json={"text": "You never help with the kids"}, headers=c["a"]
            )
            second = await client.post(
                "/v1/rewrite", json={"text": "You never help with bedtime"}, headers=c["a"]
            )
    # First call: malformed JSON, then a corrected answer that still says "you never":
    # two attempts at most, then the scaffold.
    assert first.status_code == 200
    assert first.json()["offline"] is True and first.json()["parts"] is None
    corrective = json.loads(script.requests[1].content)["messages"]
    assert corrective[-2]["role"] == "assistant" and corrective[-1]["role"] == "user"
    # Second call: the model gets it right the first time.
    body = second.json()
    assert body["rewrite"] == good["rewrite"] and body["parts"]["feeling"] == "alone"
    assert body["model"] == "test-model"
    sent = json.loads(script.requests[2].content)
    assert sent["response_format"]["type"] == "json_schema"


async def test_rewrite_offline_gives_the_scaffold(client: AsyncTestClient[Any]) -> None:
    c = await new_couple(client)
    r = await client.post("/v1/rewrite", json={"text": "You always leave dishes"}, headers=c["a"])
    assert r.status_code == 200
    body = r.json()
    assert body["offline"] is True and body["model"] == "offline"
    assert body["rewrite"] == CATALOG.render(CATALOG.rewrite, {}, "scaffold")
