"""The 30-day challenge through the API: day, choices and streak per couple."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.testing import AsyncTestClient

from tests.conftest import AppFactory, new_couple


async def test_challenge_tracks_day_choice_and_streak(make_app: AppFactory, redis_client: Any) -> None:
    clock = {"today": dt.date(2026, 11, 1)}
    app = make_app(today=lambda: clock["today"])
    async with AsyncTestClient(app=app) as client:
        c = await new_couple(client)
        other = await new_couple(client)
        missing = await client.get("/v1/challenge", headers=c["a"])
        assert missing.status_code == 404
        started = await client.post("/v1/challenge", headers=c["a"])
        assert started.status_code == 201
        body = started.json()
        assert body["day"] == 1 and body["today"]["phase"] == 1
        assert body["today"]["emotional"] and body["today"]["physical"]
        assert (await client.post("/v1/challenge", headers=c["b"])).status_code == 200

        r = await client.post("/v1/challenge/days/1", json={"choice": "physical"}, headers=c["b"])
        assert r.status_code == 200 and r.json()["choices"] == {"1": "physical"}
        again = await client.post("/v1/challenge/days/2", json={"choice": "emotional"}, headers=c["a"])
        assert again.status_code == 409

        clock["today"] += dt.timedelta(days=1)
        r = await client.post("/v1/challenge/days/2", json={"choice": "emotional"}, headers=c["a"])
        body = r.json()
        assert body["day"] == 3 and body["streak"] == 2 and body["missed_days"] == 0
        assert body["today"]["day"] == 3

        clock["today"] += dt.timedelta(days=3)
        body = (await client.get("/v1/challenge", headers=c["a"])).json()
        assert body["streak"] == 0 and body["missed_days"] == 2 and body["day"] == 3

        # Both partners share it; another couple has its own.
        assert (await client.get("/v1/challenge", headers=c["b"])).json() == body
        assert (await client.get("/v1/challenge", headers=other["a"])).status_code == 404

        bad = await client.post("/v1/challenge/days/3", json={"choice": "dance"}, headers=c["a"])
        assert bad.status_code == 422

        # A challenge session's coach template gets the couple's day.
        s = (
            await client.post("/v1/sessions", json={"exercise_id": "thirty-day-challenge"}, headers=c["a"])
        ).json()
        assert s["day"] == 3
