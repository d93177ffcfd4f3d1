"""Two ``coach serve`` processes share one redis-server: live events cross workers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, RedisServer
from tests.integration.test_live_events import read_events


@pytest.fixture
def two_workers(redis_server: RedisServer) -> Iterator[tuple[LiveServer, LiveServer]]:
    one = LiveServer(redis_server.url).start()
    try:
        two = LiveServer(redis_server.url).start()
    except BaseException:
        one.stop()
        raise
    yield one, two
    two.stop()
    one.stop()


async def test_a_message_posted_to_one_worker_reaches_a_listener_on_the_other(
    two_workers: tuple[LiveServer, LiveServer],
) -> None:
    one, two = two_workers
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=15) as c1,
        httpx.AsyncClient(base_url=two.url, timeout=15) as c2,
    ):
        first = (await c1.post("/v1/couples", json={"display_name": "Alex"})).json()
        second = (await c2.post("/v1/couples/join", json={"invite_code": first["invite_code"]})).json()
        a = {"Authorization": f"Bearer {first['token']}"}
        b = {"Authorization": f"Bearer {second['token']}"}
        sid = (await c1.post("/v1/sessions", json={"exercise_id": "rose-bud-thorn"}, headers=a)).json()[
            "session_id"
        ]
        start = (await c2.get(f"/v1/sessions/{sid}/messages", headers=b)).json()["last_event_id"]

        # Alex posts to worker one; Sam listens on worker two from where they were.
        posted = await c1.post(
            f"/v1/sessions/{sid}/messages",
            json={"text": "Rose: pancakes\nBud: Friday\nThorn: traffic"},
            headers=a,
        )
        assert posted.status_code == 201
        events = await read_events(c2, f"/v1/sessions/{sid}/events", b, until=2, last_event_id=start)

    assert [e["event"] for e in events] == ["message", "reply"]
    assert events[0]["data"]["id"] == posted.json()["message"]["id"]
    assert events[0]["data"]["text"] == "Rose: pancakes\nBud: Friday\nThorn: traffic"
    assert events[0]["data"]["mine"] is False
    assert events[1]["data"]["id"] == posted.json()["reply"]["id"]
    assert events[1]["data"]["in_reply_to"] == events[0]["data"]["id"]
