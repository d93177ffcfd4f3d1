"""The safety policy, through the HTTP API: privacy, pause, no coaching, fail closed."""

from __future__ import annotations

import json
from typing import Any

import pytest
import respx
from litestar.testing import AsyncTestClient

from tests.conftest import UPSTREAM, AppFactory, Script, new_couple, sse_chunks, upstream_client

COMPLETIONS = f"{UPSTREAM}/chat/completions"
DISCLOSURE = "Last night he put his hands around my throat and squeezed until I couldn't breathe."


async def start(client: AsyncTestClient[Any], c: dict[str, Any], exercise: str = "rose-bud-thorn") -> str:
    r = await client.post("/v1/sessions", json={"exercise_id": exercise}, headers=c["a"])
    return str(r.json()["session_id"])


async def test_a_disclosure_is_private_and_pauses_without_saying_why(
    make_app: AppFactory, redis_client: Any
) -> None:
    script = Script("Thanks for sharing your rose.")  # only the first, safe message reaches it
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c = await new_couple(client, country="GB")
            sid = await start(client, c)
            url = f"/v1/sessions/{sid}/messages"
            ok = await client.post(url, json={"text": "Rose: we cooked together"}, headers=c["b"])
            assert ok.status_code == 201
            r = await client.post(url, json={"text": DISCLOSURE}, headers=c["a"])
            assert r.status_code == 201
            body = r.json()
            reply = body["reply"]
            # The author gets help, privately, with the emergency number first.
            assert reply["private"] is True and body["message"]["private"] is True
            assert reply["safety"]["severity"] == "danger"
            assert reply["model"] is None or reply["model"] != "test-model"
            first = reply["safety"]["resources"][0]
            assert first["kind"] == "emergency" and first["phone"] == "999"
            assert reply["template"]["id"].startswith("help.")
            assert "999" in reply["text"]
            assert body["session"]["status"] == "paused"

            # The other partner sees nothing of it: not in the transcript...
            theirs = (await client.get(url, headers=c["b"])).json()["messages"]
            texts = " ".join(m["text"] for m in theirs)
            assert "throat" not in texts and reply["text"] not in texts
            assert all(
                m.get("safety") is None or m["safety"]["severity"] == "none"
                for m in theirs
                if m["kind"] != "notice"
            )
            # ...only a neutral notice that the exercise is paused.
            notices = [m for m in theirs if m["kind"] == "notice"]
            assert len(notices) == 1
            for word in ("safe", "abuse", "danger", "help", "999", "throat"):
                assert word not in notices[0]["text"].lower()
            session_b = (await client.get(f"/v1/sessions/{sid}", headers=c["b"])).json()
            assert session_b["status"] == "paused"
            # The other partner cannot carry on the joint exercise.
            r = await client.post(url, json={"text": "Bud: the weekend"}, headers=c["b"])
            assert r.status_code == 409 and r.json()["type"] == "/problems/session-paused"
            assert "throat" not in r.text

            # The author still sees their own message and the help.
            mine = (await client.get(url, headers=c["a"])).json()["messages"]
            assert DISCLOSURE in [m["text"] for m in mine]
    assert len(script.requests) == 1  # the model never saw the disclosure


async def test_danger_and_self_harm_get_the_crisis_line(client: AsyncTestClient[Any]) -> None:
    c = await new_couple(client, country="US")
    sid = await start(client, c, "attunement-check")
    r = await client.post(
        f"/v1/sessions/{sid}/messages",
        json={"text": "I've decided to end my life on Sunday, I have the pills."},
        headers=c["a"],
    )
    reply = r.json()["reply"]
    assert reply["safety"]["severity"] == "danger" and "self_harm" in reply["safety"]["categories"]
    kinds = [res["kind"] for res in reply["safety"]["resources"]]
    assert kinds[0] == "emergency"
    assert (
        "crisis" in kinds and kinds.index("crisis") < kinds.index("domestic_abuse")
        if "domestic_abuse" in kinds
        else "crisis" in kinds
    )
    assert any(res.get("phone") == "988" or res.get("sms") == "988" for res in reply["safety"]["resources"])


async def test_figures_of_speech_are_coached_normally(client: AsyncTestClient[Any]) -> None:
    c = await new_couple(client)
    sid = await start(client, c)
    r = await client.post(
        f"/v1/sessions/{sid}/messages",
        json={"text": "Thorn: this commute is killing me, and she beat me at chess"},
        headers=c["a"],
    )
    assert r.json()["reply"]["safety"]["severity"] == "none"
    assert r.json()["reply"]["private"] is False
    assert r.json()["session"]["status"] == "active"


REPORT = (
    "A man from Lowbridge was jailed for four years on Friday after he strangled his partner "
    "in their kitchen and held a knife to her throat. The court heard that she passed out and "
    "was found on the floor by a neighbour. Domestic abuse charities say strangulation is one "
    "of the strongest warning signs that an abuser may one day kill."
)


async def test_a_pasted_news_report_is_coached_and_the_same_about_family_pauses(
    client: AsyncTestClient[Any],
) -> None:
    """General talk about abuse is not a disclosure (lexicon ``general_talk``): a pasted
    court report is coached as ``concern``; the same words about the writer's sister pause."""
    c = await new_couple(client)
    sid = await start(client, c, "state-of-the-union")
    url = f"/v1/sessions/{sid}/messages"
    r = await client.post(url, json={"text": f"Saw this today. {REPORT}"}, headers=c["a"])
    assert r.status_code == 201
    body = r.json()
    assert body["reply"]["safety"]["severity"] == "concern"
    assert body["reply"]["private"] is False and body["message"]["private"] is False
    assert body["session"]["status"] == "active"

    mine = REPORT.replace("A man from Lowbridge", "My sister's husband")
    r = await client.post(url, json={"text": mine}, headers=c["a"])
    body = r.json()
    assert body["reply"]["safety"]["severity"] == "danger"
    assert body["reply"]["private"] is True
    assert body["session"]["status"] == "paused"


async def test_an_unsafe_model_reply_is_replaced(make_app: AppFactory, redis_client: Any) -> None:
    unsafe = "Maybe you provoked him. Try to forgive him and stay, he hits you because he is stressed."
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=Script(unsafe))
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c = await new_couple(client)
            sid = await start(client, c, "evening-check-in")
            r = await client.post(
                f"/v1/sessions/{sid}/messages",
                json={"text": "The hardest part was feeling unheard."},
                headers=c["a"],
            )
            seen_by_b = (await client.get(f"/v1/sessions/{sid}/messages", headers=c["b"])).json()
    reply = r.json()["reply"]
    assert reply["replaced"] is True
    assert "provoked" not in reply["text"]
    assert all("provoked" not in m["text"] for m in seen_by_b["messages"])


async def test_a_streamed_reply_never_shows_an_unsafe_sentence(
    make_app: AppFactory, redis_client: Any
) -> None:
    pieces = [
        "That sounds ",
        "really hard. ",
        "He hits you because ",
        "you provoke him. ",
        "Take a breath.",
    ]
    import httpx

    script = Script(
        httpx.Response(200, content=sse_chunks(pieces), headers={"content-type": "text/event-stream"})
    )
    with respx.mock(using="coach") as mock:
        mock.post(COMPLETIONS).mock(side_effect=script)
        async with AsyncTestClient(app=make_app(model=upstream_client())) as client:
            c = await new_couple(client)
            sid = await start(client, c, "evening-check-in")
            r = await client.post(
                f"/v1/sessions/{sid}/messages",
                json={"text": "Work was brutal today."},
                headers={**c["a"], "accept": "text/event-stream"},
            )
    assert r.status_code == 201
    events = parse_sse(r.text)
    shown = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
    assert shown == "That sounds really hard. "
    assert "provoke" not in r.text.split("event: done")[0]
    assert [e["event"] for e in events][-2:] == ["replace", "done"]
    done = events[-1]["data"]
    assert done["reply"]["replaced"] is True and "provoke" not in done["reply"]["text"]


async def test_fail_closed_when_the_safety_check_breaks(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import coach.conversation as conversation

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("lexicon failed to load")

    c = await new_couple(client)
    sid = await start(client, c)
    monkeypatch.setattr(conversation, "scan", broken)
    r = await client.post(f"/v1/sessions/{sid}/messages", json={"text": "Rose: a hug"}, headers=c["a"])
    assert r.status_code == 503 and r.json()["type"] == "/problems/safety-unavailable"
    monkeypatch.undo()
    seen = (await client.get(f"/v1/sessions/{sid}/messages", headers=c["b"])).json()["messages"]
    assert seen == []


async def test_mild_signals_add_up_across_turns(client: AsyncTestClient[Any]) -> None:
    c = await new_couple(client)
    sid = await start(client, c, "deeper-questions")
    url = f"/v1/sessions/{sid}/messages"
    mild = [
        "I feel like I'm walking on eggshells around him all the time.",
        "He checks who I'm texting whenever I pick up my phone.",
        "He gets angry if I see my friends without him, so mostly I just don't go.",
    ]
    severities = []
    for text in mild:
        r = await client.post(url, json={"text": text}, headers=c["a"])
        if r.status_code != 201:
            break
        severities.append(r.json()["reply"]["safety"]["severity"])
    assert severities[-1] in ("risk", "danger")
    assert (await client.get(f"/v1/sessions/{sid}", headers=c["b"])).json()["status"] == "paused"


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = fields.get(key, "") + value.removeprefix(" ")
        if "event" in fields:
            events.append(
                {
                    "event": fields["event"],
                    "id": fields.get("id"),
                    "data": json.loads(fields.get("data") or "null"),
                }
            )
    return events
