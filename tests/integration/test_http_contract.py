"""The HTTP contract of design.md: status codes, bodies, and problem+json errors."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import new_couple

Client = AsyncTestClient[Litestar]


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return dict(body)


async def test_create_and_join_a_couple(client: Client) -> None:
    created = await client.post("/v1/couples", json={"display_name": "Alex", "country": "GB"})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"couple_id", "partner_id", "token", "invite_code"}
    joined = await client.post("/v1/couples/join", json={"invite_code": body["invite_code"]})
    assert joined.status_code == 201
    assert joined.json()["couple_id"] == body["couple_id"]
    assert joined.json()["token"] != body["token"]
    # An invite code works once.
    again = await client.post("/v1/couples/join", json={"invite_code": body["invite_code"]})
    assert_problem(again, 404, "not-found")


async def test_bad_bodies_get_problem_json(client: Client) -> None:
    assert_problem(
        await client.post("/v1/couples", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "bad-request",
    )
    assert_problem(await client.post("/v1/couples", json={"country": "Narnia"}), 422, "validation")
    assert_problem(await client.post("/v1/couples/join", json={}), 422, "validation")


async def test_catalog_lists_every_exercise_with_steps(client: Client) -> None:
    response = await client.get("/v1/exercises")
    assert response.status_code == 200
    exercises = {e["id"]: e for e in response.json()["exercises"]}
    assert {
        "rose-bud-thorn",
        "honesty-hour",
        "thirty-day-challenge",
        "i-statement",
        "attunement-check",
    } <= set(exercises)
    assert len(exercises["honesty-hour"]["steps"]) == 9
    assert all(s["invite"] for e in exercises.values() for s in e["steps"])


async def test_partner_endpoints_need_a_valid_token(client: Client) -> None:
    assert_problem(
        await client.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}),
        401,
        "unauthorized",
    )
    bad = {"Authorization": "Bearer ct_nope"}
    assert_problem(await client.get("/v1/sessions", headers=bad), 401, "unauthorized")


async def test_unknown_exercise_is_404(client: Client) -> None:
    c = await new_couple(client)
    r = await client.post("/v1/sessions", json={"exercise_id": "no-such"}, headers=c["a"])
    assert_problem(r, 404, "not-found")


async def test_another_couples_session_is_not_found(client: Client) -> None:
    ours = await new_couple(client)
    theirs = await new_couple(client)
    session = (
        await client.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}, headers=ours["a"])
    ).json()
    sid = session["session_id"]
    for method, path, body in [
        ("GET", f"/v1/sessions/{sid}", None),
        ("GET", f"/v1/sessions/{sid}/messages", None),
        ("POST", f"/v1/sessions/{sid}/messages", {"text": "hi"}),
    ]:
        r = await client.request(method, path, json=body, headers=theirs["a"])
        assert_problem(r, 404, "not-found")
    # A session that does not exist looks the same as another couple's.
    r = await client.get("/v1/sessions/ses_doesnotexist", headers=ours["a"])
    assert_problem(r, 404, "not-found")


async def test_a_solo_session_is_private_to_its_author(client: Client) -> None:
    c = await new_couple(client)
    session = (
        await client.post("/v1/sessions", json={"exercise_id": "attunement-check"}, headers=c["a"])
    ).json()
    assert session["mode"] == "solo"
    r = await client.get(f"/v1/sessions/{session['session_id']}/messages", headers=c["b"])
    assert_problem(r, 404, "not-found")


async def test_message_limits(client: Client) -> None:
    c = await new_couple(client)
    sid = (await client.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}, headers=c["a"])).json()[
        "session_id"
    ]
    url = f"/v1/sessions/{sid}/messages"
    for blank in ("", "   ", "\u00a0\n"):
        assert_problem(await client.post(url, json={"text": blank}, headers=c["a"]), 422, "message-empty")
    blank = await client.post("/v1/rewrite", json={"text": "  "}, headers=c["a"])
    assert_problem(blank, 422, "message-empty")
    long = await client.post(url, json={"text": "a" * 4001}, headers=c["a"])
    assert assert_problem(long, 422, "message-too-long")["limit"] == 4000
    huge = await client.post(
        url,
        content=b'{"text": "' + b"a" * 70000 + b'"}',
        headers={**c["a"], "content-type": "application/json"},
    )
    assert_problem(huge, 413, "payload-too-large")
    bad_utf8 = await client.post(
        url, content=b'{"text": "\xff\xfe"}', headers={**c["a"], "content-type": "application/json"}
    )
    assert bad_utf8.status_code == 400
    assert bad_utf8.headers["content-type"].startswith("application/problem+json")
    # Nothing was lost or half-written: the transcript is still empty and usable.
    transcript = (await client.get(url, headers=c["a"])).json()["messages"]
    assert transcript == []
    ok = await client.post(url, json={"text": "Rose: a walk\nBud: Friday\nThorn: traffic"}, headers=c["a"])
    assert ok.status_code == 201


async def test_a_turn_offline(client: Client) -> None:
    c = await new_couple(client)
    session = (
        await client.post("/v1/sessions", json={"exercise_id": "evening-check-in"}, headers=c["a"])
    ).json()
    assert session["status"] == "active" and session["step"]["number"] == 1
    r = await client.post(
        f"/v1/sessions/{session['session_id']}/messages",
        json={"text": "The hardest part was the long meeting."},
        headers=c["a"],
    )
    assert r.status_code == 201
    body = r.json()
    reply = body["reply"]
    assert reply["model"] == "offline"
    assert reply["text"]
    assert reply["template"]["id"].startswith("evening-check-in.")
    assert len(reply["template"]["version"]) == 12
    assert reply["safety"]["severity"] == "none"
    assert reply["private"] is False
    assert body["message"]["text"] == "The hardest part was the long meeting."
    # The other partner sees both, live transcript in order.
    seen = (await client.get(f"/v1/sessions/{session['session_id']}/messages", headers=c["b"])).json()[
        "messages"
    ]
    assert [m["kind"] for m in seen] == ["message", "reply"]
    assert [m["seq"] for m in seen] == [1, 2]


async def test_health_and_schema(client: Client) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["store"] == "ok"
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["openapi"].startswith("3.1")
    assert "/v1/sessions/{session_id}/messages" in schema["paths"]
    ui = await client.get("/schema")
    assert ui.status_code == 200 and "<html" in ui.text.lower()


async def test_non_json_and_deeply_nested_bodies_are_refused_cleanly(client: Client) -> None:
    plain = await client.post("/v1/couples", content=b"hello", headers={"content-type": "text/plain"})
    assert_problem(plain, 415, "unsupported-media-type")
    nested = await client.post(
        "/v1/couples", content=b"[" * 30000, headers={"content-type": "application/json"}
    )
    assert nested.status_code == 400
    assert nested.headers["content-type"].startswith("application/problem+json")
    # Still serving.
    assert (await client.post("/v1/couples", json={})).status_code == 201


async def test_a_malformed_header_or_query_parameter_is_a_bad_request(client: Client) -> None:
    """The request is malformed, not its body: 400 naming the parameter (docs/errors.md)."""
    c = await new_couple(client)
    sid = (await client.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}, headers=c["a"])).json()[
        "session_id"
    ]
    url = f"/v1/sessions/{sid}/messages"
    header = await client.get(
        url.replace("/messages", "/events"), headers={**c["a"], "Last-Event-ID": "garbage"}
    )
    body = assert_problem(header, 400, "bad-request")
    assert body["errors"][0]["source"] == "header" and "header last-event-id" in body["detail"]
    query = assert_problem(await client.get(url + "?limit=abc", headers=c["a"]), 400, "bad-request")
    assert query["errors"][0]["key"] == "limit" and "query limit" in query["detail"]
    # a body that does not match its schema is still a validation problem
    assert_problem(await client.post(url, json={"text": 5}, headers=c["a"]), 422, "validation")
