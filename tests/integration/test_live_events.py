"""Live events over a real HTTP server: each partner sees only what they may."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import LiveServer

DISCLOSURE = "He grabbed me by the throat again last night, I'm scared."


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    *,
    until: int,
    last_event_id: str | None = None,
) -> list[dict[str, Any]]:
    """Read SSE events until ``until`` events arrived (heartbeats are comments, skipped)."""
    events: list[dict[str, Any]] = []
    h = dict(headers)
    if last_event_id:
        h["Last-Event-ID"] = last_event_id
    async with client.stream("GET", url, headers=h, timeout=15) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        block: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "event" in block:
                    events.append(
                        {
                            "event": block["event"],
                            "id": block.get("id"),
                            "data": json.loads(block["data"]),
                        }
                    )
                    if len(events) >= until:
                        return events
                block = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                block[key] = value.removeprefix(" ")
    return events


async def setup(client: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    first = (await client.post("/v1/couples", json={"display_name": "Alex"})).json()
    second = (await client.post("/v1/couples/join", json={"invite_code": first["invite_code"]})).json()
    c = {
        "a": {"Authorization": f"Bearer {first['token']}"},
        "b": {"Authorization": f"Bearer {second['token']}"},
    }
    sid = (await client.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}, headers=c["a"])).json()[
        "session_id"
    ]
    return c, sid


async def test_partner_b_never_receives_a_disclosure_live(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=15) as client:
        c, sid = await setup(client)
        start = (await client.get(f"/v1/sessions/{sid}/messages", headers=c["b"])).json()
        url = f"/v1/sessions/{sid}/messages"
        await client.post(url, json={"text": "Rose: pancakes on Sunday"}, headers=c["b"])
        await client.post(url, json={"text": DISCLOSURE}, headers=c["a"])
        await client.post(f"/v1/sessions/{sid}/messages", json={"text": "Bud: x"}, headers=c["b"])
        events_b = await read_events(
            client,
            f"/v1/sessions/{sid}/events",
            c["b"],
            until=3,
            last_event_id=start["last_event_id"],
        )
        events_a = await read_events(
            client,
            f"/v1/sessions/{sid}/events",
            c["a"],
            until=4,
            last_event_id=start["last_event_id"],
        )
    assert [e["event"] for e in events_b] == ["message", "reply", "notice"]
    assert all("throat" not in json.dumps(e) for e in events_b)
    assert [e["event"] for e in events_a] == ["message", "reply", "message", "reply"]
    assert events_a[2]["data"]["text"] == DISCLOSURE and events_a[3]["data"]["private"] is True


async def test_reconnect_with_last_event_id_loses_and_repeats_nothing(
    live_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=15) as client:
        c, sid = await setup(client)
        start = (await client.get(f"/v1/sessions/{sid}/messages", headers=c["a"])).json()
        url = f"/v1/sessions/{sid}/messages"
        await client.post(url, json={"text": "Rose: a long walk"}, headers=c["a"])
        first = await read_events(
            client,
            f"/v1/sessions/{sid}/events",
            c["b"],
            until=1,
            last_event_id=start["last_event_id"],
        )
        await client.post(url, json={"text": "Rose: the sunset"}, headers=c["b"])
        rest = await read_events(
            client, f"/v1/sessions/{sid}/events", c["b"], until=3, last_event_id=first[-1]["id"]
        )
    texts = [e["data"]["text"] for e in first + rest if e["event"] == "message"]
    assert texts == ["Rose: a long walk", "Rose: the sunset"]
    seqs = [e["data"]["seq"] for e in first + rest]
    assert seqs == sorted(set(seqs)) == [1, 2, 3, 4]
