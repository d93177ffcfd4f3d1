"""Held messages through the HTTP API (``COACH_SAFETY_LEARNED_LOWERS``, on by default since
round thirty-eight; these tests build the app with the default): a lexicon
alarm the learned stage is sure about is kept private to its author, answered with a
private check that carries the resources (no model call, no pause), and shown to the
session only when its author shares it. Needs `make model`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import httpx
import respx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import UPSTREAM, AppFactory, Script, new_couple, sse_chunks, upstream_client
from tests.integration.test_http_contract import assert_problem
from tests.integration.test_safety_classifier import coach_logs, logged_text
from tests.integration.test_safety_learned import CUPBOARD, NECK
from tests.integration.test_safety_policy import parse_sse

COMPLETIONS = f"{UPSTREAM}/chat/completions"
Client = AsyncTestClient[Litestar]


def held_app(make_app: AppFactory) -> Litestar:
    return make_app(model=upstream_client(), safety_learned=True)  # lowering: the default


async def start(client: Client, country: str = "GB") -> tuple[dict[str, Any], str]:
    c = await new_couple(client, country=country)
    r = await client.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}, headers=c["a"])
    return c, f"/v1/sessions/{r.json()['session_id']}"


async def texts(client: Client, url: str, headers: dict[str, str]) -> list[str]:
    return [m["text"] for m in (await client.get(f"{url}/messages", headers=headers)).json()["messages"]]


class Held(NamedTuple):
    client: Client
    couple: dict[str, Any]
    url: str  # the session's
    share: str  # the held message's share URL
    coach: Script


@asynccontextmanager
async def held_figure(make_app: AppFactory, *replies: Any) -> AsyncIterator[Held]:
    """A session in which A's figure of speech was just held; the model answers ``replies``."""
    coach = Script(*replies)
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        async with AsyncTestClient(app=held_app(make_app)) as client:
            c, url = await start(client)
            r = await client.post(f"{url}/messages", json={"text": CUPBOARD}, headers=c["a"])
            assert r.status_code == 201 and r.json()["message"]["held"] is True, r.text
            yield Held(client, c, url, f"{url}/messages/{r.json()['message']['id']}/share", coach)


async def test_a_held_figure_of_speech_stays_private_until_its_author_shares_it(
    make_app: AppFactory, redis_client: Any
) -> None:
    coach = Script("That sounds like a sore spot, in more ways than one.")
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        async with AsyncTestClient(app=held_app(make_app)) as client:
            c, url = await start(client)
            with coach_logs() as records:
                r = await client.post(f"{url}/messages", json={"text": CUPBOARD}, headers=c["a"])
            assert r.status_code == 201, r.text
            held = r.json()
            assert coach.requests == []  # no coaching until it is shared
            # the partner sees nothing at all: not the text, not a notice
            assert await texts(client, url, c["b"]) == []
            ready = (await client.get("/readyz")).json()

            shared = await client.post(f"{url}/messages/{held['message']['id']}/share", headers=c["a"])
            assert shared.status_code == 201, shared.text
            after_a = (await client.get(f"{url}/messages", headers=c["a"])).json()["messages"]
            after_b = await texts(client, url, c["b"])
            again = await client.post(f"{url}/messages/{held['message']['id']}/share", headers=c["a"])
    assert ready["safety_learned_lowers"] is True
    message, reply = held["message"], held["reply"]
    assert message["held"] is True and message["private"] is True
    assert message["safety"]["severity"] == "concern"
    assert reply["private"] is True and reply["template"]["id"] == "help.held"
    assert "Share it" in reply["text"] and "kept it just for you" in reply["text"]
    # the lexicon said risk: the check carries a risk's resources, the abuse helpline first
    resources = reply["safety"]["resources"]
    assert resources[0]["kind"] == "domestic_abuse" and resources[0]["phone"] == "0808 2000 247"
    assert "0808 2000 247" in reply["text"] and "999" in reply["text"]
    assert held["session"]["status"] == "active"  # no pause for a held message
    lowered = [rec for rec in records if getattr(rec, "event", None) == "safety_lowered"]
    assert [(rec.lexicon_severity, rec.severity) for rec in lowered] == [("risk", "concern")]
    assert "cupboard" not in logged_text(records)

    body = shared.json()
    assert body["message"]["shares"] == message["id"] and body["message"]["private"] is False
    assert body["message"]["text"] == CUPBOARD and body["message"]["safety"]["severity"] == "concern"
    assert body["reply"]["text"] == "That sounds like a sore spot, in more ways than one."
    assert len(coach.requests) == 1
    assert CUPBOARD in json.loads(coach.requests[0].content)["messages"][-1]["content"]
    assert after_b == [CUPBOARD, "That sounds like a sore spot, in more ways than one."]
    # the author keeps the held message and its check, then the shared copy and the reply
    assert [(m["kind"], m["held"], m["private"]) for m in after_a] == [
        ("message", True, True),
        ("reply", False, True),
        ("message", False, False),
        ("reply", False, False),
    ]
    assert_problem(again, 409, "not-held")  # once only
    assert len(coach.requests) == 1


async def test_only_the_author_can_share_and_only_a_held_message(
    make_app: AppFactory, redis_client: Any
) -> None:
    async with held_figure(make_app, "Lovely.") as (client, c, url, share, coach):
        by_partner = await client.post(share, headers=c["b"])
        unknown = await client.post(f"{url}/messages/msg_nope/share", headers=c["a"])
        plain = await client.post(
            f"{url}/messages", json={"text": "We walked by the river and it was lovely."}, headers=c["a"]
        )
        not_held = await client.post(f"{url}/messages/{plain.json()['message']['id']}/share", headers=c["a"])
        partner_view = await texts(client, url, c["b"])
    assert_problem(by_partner, 404, "not-found")  # the partner cannot even tell it exists
    assert_problem(unknown, 404, "not-found")
    assert plain.json()["message"]["held"] is False
    assert_problem(not_held, 409, "not-held")
    assert CUPBOARD not in partner_view and len(coach.requests) == 1


async def test_a_retried_share_with_the_same_key_is_answered_once(
    make_app: AppFactory, redis_client: Any
) -> None:
    async with held_figure(make_app, "Thanks for sharing that.") as (client, c, url, share, coach):
        headers = {**c["a"], "Idempotency-Key": "share-1"}
        first = await client.post(share, headers=headers)
        second = await client.post(share, headers=headers)
        partner_view = await texts(client, url, c["b"])
    assert first.status_code == second.status_code == 201
    assert second.headers.get("idempotent-replayed") == "true"
    assert first.json() == second.json()
    assert partner_view.count(CUPBOARD) == 1 and len(coach.requests) == 1


async def test_a_share_can_stream_its_reply(make_app: AppFactory, redis_client: Any) -> None:
    stream = httpx.Response(200, content=sse_chunks(["Burnt toast ", "again? ", "Oh no."]))
    async with held_figure(make_app, stream) as (client, c, _url, share, _coach):
        r = await client.post(share, headers={**c["a"], "Accept": "text/event-stream"})
    assert r.status_code == 201 and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert events[0]["event"] == "message" and share.endswith(f"/{events[0]['data']['shares']}/share")
    assert "".join(e["data"]["text"] for e in events if e["event"] == "delta") == "Burnt toast again? Oh no."
    assert events[-1]["event"] == "done" and events[-1]["data"]["reply"]["private"] is False


async def test_a_disclosure_is_never_held_and_a_paused_exercise_refuses_a_share(
    make_app: AppFactory, redis_client: Any
) -> None:
    """The stage is not sure about a strangulation account: it is a private danger as with
    lowering off, and the exercise pauses. A's held figure of speech from before it cannot
    then be shared into the paused exercise."""
    coach = Script()  # raises if the model is asked anything
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        async with AsyncTestClient(app=held_app(make_app)) as client:
            c, url = await start(client)
            held = await client.post(f"{url}/messages", json={"text": CUPBOARD}, headers=c["a"])
            neck = (await client.post(f"{url}/messages", json={"text": NECK}, headers=c["b"])).json()
            share = await client.post(f"{url}/messages/{held.json()['message']['id']}/share", headers=c["a"])
            a_view = await texts(client, url, c["a"])
    assert held.status_code == 201 and held.json()["message"]["held"] is True
    assert neck["message"]["held"] is False and neck["reply"]["safety"]["severity"] == "danger"
    assert neck["session"]["status"] == "paused"
    assert_problem(share, 409, "session-paused")
    assert NECK not in a_view and a_view.count(CUPBOARD) == 1 and coach.requests == []


async def test_held_alarms_from_one_partner_add_up_to_a_private_disclosure(
    make_app: AppFactory, redis_client: Any
) -> None:
    """Each held message adds a concern's point to the session, so repeated alarming
    wording comes back as risk: then the help message and the pause, as for any disclosure."""
    coach = Script()
    with respx.mock(using="coach", assert_all_called=False) as mock:
        mock.post(COMPLETIONS).mock(side_effect=coach)
        async with AsyncTestClient(app=held_app(make_app)) as client:
            c, url = await start(client)
            bodies = []
            for _ in range(3):
                r = await client.post(f"{url}/messages", json={"text": CUPBOARD}, headers=c["a"])
                assert r.status_code == 201, r.text
                bodies.append(r.json())
            partner_view = (await client.get(f"{url}/messages", headers=c["b"])).json()["messages"]
    assert [b["message"]["held"] for b in bodies[:2]] == [True, True]
    last = bodies[-1]
    assert last["message"]["held"] is False and last["reply"]["safety"]["severity"] in ("risk", "danger")
    assert last["session"]["status"] == "paused"
    assert [m["kind"] for m in partner_view] == ["notice"]  # told it paused, never why
    assert coach.requests == []
