"""With no model API, every exercise of the catalog can be completed, step by step."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from coach.catalog import load_catalog
from tests.conftest import ROOT, new_couple

CATALOG = load_catalog(ROOT / "prompts")


@pytest.mark.parametrize("exercise_id", list(CATALOG.exercises))
async def test_every_exercise_completes_offline(client: AsyncTestClient[Litestar], exercise_id: str) -> None:
    exercise = CATALOG.exercises[exercise_id]
    c = await new_couple(client)
    session = (await client.post("/v1/sessions", json={"exercise_id": exercise_id}, headers=c["a"])).json()
    sid = session["session_id"]
    speakers = ["a", "b"] if exercise.mode == "together" else ["a"]
    seen_steps = []
    for index, step in enumerate(exercise.steps):
        assert session["step"]["id"] == step.id
        seen_steps.append(step.id)
        turns = speakers if step.advance == "each" else speakers[:1]
        for who in turns:
            r = await client.post(
                f"/v1/sessions/{sid}/messages",
                json={"text": f"Here is my answer for {step.title}."},
                headers=c[who],
            )
            assert r.status_code == 201, r.text
            reply = r.json()["reply"]
            assert reply["model"] == "offline"
            assert reply["template"]["id"] == step.template.id
            assert reply["text"].strip() and "{{" not in reply["text"]
            session = r.json()["session"]
        expected = "completed" if index == len(exercise.steps) - 1 else "active"
        assert session["status"] == expected
    assert seen_steps == [s.id for s in exercise.steps]
    # A finished exercise takes no more messages.
    r = await client.post(f"/v1/sessions/{sid}/messages", json={"text": "one more"}, headers=c["a"])
    assert r.status_code == 409 and r.json()["type"] == "/problems/session-completed"
