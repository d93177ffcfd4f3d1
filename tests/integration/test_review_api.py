"""The review API: approval gating, hash pinning, roles, audit log, cross-worker refresh."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.di import Provide
from litestar.testing import AsyncTestClient

from coach import approvals as approvals_module
from coach.approvals import ApprovalGate
from coach.reviews import ReviewStore
from coach.store import Store
from tests.conftest import ROOT, AppFactory, new_couple

Client = AsyncTestClient[Litestar]
EXERCISE = "rose-bud-thorn"
DANGER = "Marcus grabbed my throat and pinned me against the fridge."


async def counselor_token(redis: aioredis.Redis, name: str, role: str = "counselor") -> dict[str, str]:
    reviews = ReviewStore(Store(redis, retention_seconds=3600))
    _, token = await reviews.add_counselor(name, "admin" if role == "admin" else "counselor")
    return {"Authorization": f"Bearer {token}"}


def gate_of(app: Litestar) -> ApprovalGate:
    provide = app.dependencies["gate"]
    assert isinstance(provide, Provide)
    gate = provide.dependency()
    assert isinstance(gate, ApprovalGate)
    return gate


async def templates_of(c: Client, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = await c.get("/v1/review/templates", headers=headers)
    assert r.status_code == 200, r.text
    return {t["id"]: t for t in r.json()["templates"]}


async def approve(c: Client, headers: dict[str, str], template_id: str, version: str) -> dict[str, Any]:
    r = await c.post(
        f"/v1/review/templates/{template_id}/decisions",
        json={"version": version, "decision": "approved", "comment": "reads well"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def approve_exercise(c: Client, headers: dict[str, str], exercise_id: str) -> None:
    found = await templates_of(c, headers)
    for t in found.values():
        if t["id"] == "system" or t["exercise"] == exercise_id:
            await approve(c, headers, t["id"], t["version"])


def served_ids(r: Any) -> set[str]:
    assert r.status_code == 200, r.text
    return {e["id"] for e in r.json()["exercises"]}


async def test_a_draft_never_reaches_a_couple_until_approved(
    make_app: AppFactory, redis_client: aioredis.Redis
) -> None:
    admin = await counselor_token(redis_client, "Dana", "admin")
    async with AsyncTestClient(app=make_app(allow_draft_templates=False)) as c:
        couple = await new_couple(c)
        assert served_ids(await c.get("/v1/exercises")) == set()
        r = await c.post("/v1/sessions", json={"exercise_id": EXERCISE}, headers=couple["a"])
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")

        await approve_exercise(c, admin, EXERCISE)
        assert served_ids(await c.get("/v1/exercises")) == {EXERCISE}
        r = await c.post("/v1/sessions", json={"exercise_id": EXERCISE}, headers=couple["a"])
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        r = await c.post(f"/v1/sessions/{sid}/messages", json={"text": "Rose: a walk."}, headers=couple["a"])
        assert r.status_code == 201, r.text
        reply = r.json()["reply"]
        current = (await templates_of(c, admin))[reply["template"]["id"]]
        assert reply["template"]["version"] == current["version"]
        assert current["status"] == "approved"
        assert reply.get("draft", False) is False

        # The console sees how many replies the version produced (counts only).
        detail = (await c.get(f"/v1/review/templates/{current['id']}", headers=admin)).json()
        assert detail["counts"] == {"replies": 1, "replaced": 0}
        assert "Rose: a walk." not in str(detail)


async def test_the_rewrite_and_the_challenge_wait_for_approval_too(
    make_app: AppFactory, redis_client: aioredis.Redis
) -> None:
    """With drafts off, the one-shot rewrite and the 30-day challenge (whose activities are
    reviewed with its steps) are refused as not approved until a counselor approves them;
    a disclosure sent to the rewrite still gets its help message."""
    admin = await counselor_token(redis_client, "Dana", "admin")
    async with AsyncTestClient(app=make_app(allow_draft_templates=False)) as c:
        couple = await new_couple(c)
        for r in (
            await c.post("/v1/rewrite", json={"text": "You never listen to me."}, headers=couple["a"]),
            await c.post("/v1/challenge", headers=couple["a"]),
            await c.get("/v1/challenge", headers=couple["a"]),
            await c.post("/v1/challenge/days/1", json={"choice": "emotional"}, headers=couple["a"]),
        ):
            assert r.status_code == 404, r.text
            assert r.json()["type"] == "/problems/not-approved"
        help_reply = await c.post("/v1/rewrite", json={"text": DANGER}, headers=couple["a"])
        assert help_reply.status_code == 200 and help_reply.json()["help"]

        rewrite = (await templates_of(c, admin))["rewrite.i-statement"]
        await approve(c, admin, rewrite["id"], rewrite["version"])
        r = await c.post("/v1/rewrite", json={"text": "You never listen to me."}, headers=couple["a"])
        assert r.status_code == 200, r.text
        assert r.json()["template"]["id"] == "rewrite.i-statement" and r.json().get("draft", False) is False

        await approve_exercise(c, admin, "thirty-day-challenge")
        assert (await c.post("/v1/challenge", headers=couple["a"])).status_code == 201


async def test_an_edited_approved_template_stops_being_served_until_reapproved(
    make_app: AppFactory, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    admin = await counselor_token(redis_client, "Dana", "admin")
    async with AsyncTestClient(app=make_app(allow_draft_templates=False, prompts_dir=prompts)) as c:
        await approve_exercise(c, admin, EXERCISE)
        old = (await templates_of(c, admin))[f"{EXERCISE}.share"]
        assert served_ids(await c.get("/v1/exercises")) == {EXERCISE}

    path = prompts / "exercises" / f"{EXERCISE}.yaml"
    text = path.read_text(encoding="utf-8")
    edited = text.replace("reflect the feeling behind each", "gently name the feeling behind each", 1)
    assert edited != text
    path.write_text(edited, encoding="utf-8")

    async with AsyncTestClient(app=make_app(allow_draft_templates=False, prompts_dir=prompts)) as c:
        couple = await new_couple(c)
        new = (await templates_of(c, admin))[f"{EXERCISE}.share"]
        assert new["version"] != old["version"]
        assert new["status"] == "draft"
        assert served_ids(await c.get("/v1/exercises")) == set()
        r = await c.post("/v1/sessions", json={"exercise_id": EXERCISE}, headers=couple["a"])
        assert r.status_code == 404

        # The console shows what changed since the approved text.
        detail = (await c.get(f"/v1/review/templates/{EXERCISE}.share", headers=admin)).json()
        assert detail["diff"]["against"] == old["version"]
        assert any(line.startswith("+") and "gently name" in line for line in detail["diff"]["lines"])
        assert any(line.startswith("-") and "reflect the feeling" in line for line in detail["diff"]["lines"])

        # Approving the old hash is refused: a decision is pinned to the text read.
        r = await c.post(
            f"/v1/review/templates/{EXERCISE}.share/decisions",
            json={"version": old["version"], "decision": "approved"},
            headers=admin,
        )
        assert r.status_code == 409
        assert r.json()["type"] == "/problems/conflict"
        assert r.json()["current_version"] == new["version"]

        await approve(c, admin, f"{EXERCISE}.share", new["version"])
        assert served_ids(await c.get("/v1/exercises")) == {EXERCISE}


async def test_hash_pinning_in_the_gate() -> None:
    from coach.approvals import Approval
    from coach.catalog import load_catalog

    catalog = load_catalog(ROOT / "prompts")
    system = catalog.system
    stale = Approval(template="system", version="000000000000", decision="approved", by="x", at="t")
    gate = ApprovalGate([stale], allow_drafts=False)
    assert gate.is_draft(system)
    assert gate.servable_exercises(catalog) == {}
    fresh = Approval(template="system", version=system.version, decision="approved", by="x", at="t")
    gate = ApprovalGate([fresh], allow_drafts=False)
    assert gate.status(system) == "approved"
    retired = Approval(template="system", version=system.version, decision="retired", by="x", at="t2")
    gate.record(retired)
    assert gate.status(system) == "retired"
    assert not gate.servable(system)


async def test_a_decision_reaches_another_worker_without_a_restart(
    make_app: AppFactory, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(approvals_module, "_clock", lambda: now[0])
    admin = await counselor_token(redis_client, "Dana", "admin")
    worker_a, worker_b = make_app(allow_draft_templates=False), make_app(allow_draft_templates=False)
    async with AsyncTestClient(app=worker_a) as a, AsyncTestClient(app=worker_b) as b:
        assert served_ids(await b.get("/v1/exercises")) == set()
        await approve_exercise(a, admin, EXERCISE)
        assert served_ids(await a.get("/v1/exercises")) == {EXERCISE}
        # Worker B checks the approvals counter at most once per refresh interval...
        assert served_ids(await b.get("/v1/exercises")) == set()
        # ...and follows the decision as soon as the interval has passed.
        now[0] += gate_of(worker_b).refresh_interval
        assert served_ids(await b.get("/v1/exercises")) == {EXERCISE}


class StalledSource:
    """Approvals in a store that stopped answering until ``go_on`` is set (a hung Redis)."""

    def __init__(self, decisions: list[Any]) -> None:
        self.go_on = asyncio.Event()
        self.reads = 0
        self.list = decisions

    async def generation(self) -> int:
        self.reads += 1
        await self.go_on.wait()
        return 1

    async def decisions(self) -> list[Any]:
        return self.list


class FakeRequest:
    def __init__(self, path: str) -> None:
        self.url = type("Url", (), {"path": path})()


async def test_a_stalled_store_holds_no_request_for_the_approvals_and_none_for_liveness() -> None:
    """The refresh a request starts goes on in the background when the store does not
    answer; the request goes on with the last known approvals, and the decision is followed
    once the store answers. Liveness and readiness never ask the store."""
    made = {"template": "system", "version": "0123456789ab", "by": "x", "at": "t"}
    system = approvals_module.Approval(**made, decision="approved")
    retired = approvals_module.Approval(**made, decision="retired")
    source = StalledSource([retired])
    gate = ApprovalGate([system], allow_drafts=False, source=source)
    key = (system.template, system.version)
    for path in ("/healthz", "/readyz"):
        await asyncio.wait_for(gate.before_request(FakeRequest(path)), 5)
    assert source.reads == 0
    await asyncio.wait_for(gate.before_request(FakeRequest("/v1/exercises")), 5)
    await asyncio.wait_for(gate.before_request(FakeRequest("/v1/exercises")), 5)
    assert source.reads == 1 and key in gate.approved  # one read in flight, last known state
    source.go_on.set()
    await asyncio.wait_for(gate.before_request(FakeRequest("/v1/exercises")), 5)
    assert key in gate.retired and key not in gate.approved


async def test_decisions_need_a_reason_to_send_back(client: Client, redis_client: aioredis.Redis) -> None:
    counselor = await counselor_token(redis_client, "Kim")
    system = (await templates_of(client, counselor))["system"]
    r = await client.post(
        "/v1/review/templates/system/decisions",
        json={"version": system["version"], "decision": "changes_requested"},
        headers=counselor,
    )
    assert r.status_code == 422
    r = await client.post(
        "/v1/review/templates/system/decisions",
        json={"version": system["version"], "decision": "changes_requested", "comment": "Warmer, please."},
        headers=counselor,
    )
    assert r.status_code == 201
    history = (await client.get("/v1/review/templates/system/history", headers=counselor)).json()
    (record,) = history["records"]
    assert record["decision"] == "changes_requested"
    assert record["by"] == "Kim"
    assert record["version"] == system["version"]
    assert record["comment"] == "Warmer, please."
    assert record["at"].endswith("Z")


# ---------------------------------------------------------------------------- roles

COUNSELOR_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/review/me", None),
    ("GET", "/v1/review/templates", None),
    ("GET", "/v1/review/templates/system", None),
    ("POST", "/v1/review/templates/system/preview", {"example": 0}),
    ("POST", "/v1/review/templates/system/decisions", "DECISION"),
    ("GET", "/v1/review/templates/system/history", None),
    ("GET", "/v1/review/records", None),
    ("GET", "/v1/review/approvals", None),
    ("POST", "/v1/review/safety", {"text": "We argued about the dishes."}),
]
ADMIN_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/review/counselors", None),
    ("POST", "/v1/review/counselors", {"name": "New person"}),
    ("POST", "/v1/review/counselors/TARGET/disable", None),
    ("GET", "/v1/review/audit", None),
]


async def call(c: Client, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    if method == "GET":
        return await c.get(path, headers=headers)
    return await c.post(path, json=body, headers=headers)


async def test_every_review_endpoint_checks_the_role(client: Client, redis_client: aioredis.Redis) -> None:
    couple = await new_couple(client)
    counselor = await counselor_token(redis_client, "Kim")
    admin = await counselor_token(redis_client, "Dana", "admin")
    version = (await templates_of(client, counselor))["system"]["version"]
    decision = {"version": version, "decision": "approved", "comment": ""}
    reviews = ReviewStore(Store(redis_client, retention_seconds=3600))

    for admin_only, endpoints in ((False, COUNSELOR_ENDPOINTS), (True, ADMIN_ENDPOINTS)):
        for method, raw_path, raw_body in endpoints:
            body = decision if raw_body == "DECISION" else raw_body
            if "TARGET" in raw_path:
                target, _ = await reviews.add_counselor("Target", "counselor")
                path = raw_path.replace("TARGET", target.id)
            else:
                path = raw_path
            where = f"{method} {path}"
            r = await call(client, method, path, body, {})
            assert r.status_code == 401, where
            assert r.headers["content-type"].startswith("application/problem+json"), where
            r = await call(client, method, path, body, couple["a"])
            assert r.status_code == 403, where
            assert r.json()["type"] == "/problems/forbidden", where
            r = await call(client, method, path, body, {"Authorization": "Bearer cr_not-a-token"})
            assert r.status_code == 401, where
            r = await call(client, method, path, body, counselor)
            if admin_only:
                assert r.status_code == 403, where
                assert r.json()["type"] == "/problems/forbidden", where
            else:
                assert r.status_code in (200, 201), (where, r.text)
            r = await call(client, method, path, body, admin)
            assert r.status_code in (200, 201), (where, r.text)


async def test_admins_manage_counselors_and_a_disabled_token_stops_working(
    client: Client, redis_client: aioredis.Redis
) -> None:
    admin = await counselor_token(redis_client, "Dana", "admin")
    r = await client.post("/v1/review/counselors", json={"name": "Kim", "role": "counselor"}, headers=admin)
    assert r.status_code == 201
    created = r.json()
    kim = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get("/v1/review/me", headers=kim)).json()["name"] == "Kim"
    listed = (await client.get("/v1/review/counselors", headers=admin)).json()["counselors"]
    assert {c["name"] for c in listed} == {"Dana", "Kim"}
    assert all("token" not in c for c in listed)
    # Tokens are stored hashed: the token itself appears nowhere in Redis.
    for key in await redis_client.keys("coach:review:*"):
        if await redis_client.type(key) == "string":
            assert created["token"] not in (await redis_client.get(key) or "")
    r = await client.post(f"/v1/review/counselors/{created['counselor']['id']}/disable", headers=admin)
    assert r.status_code == 200
    assert (await client.get("/v1/review/me", headers=kim)).status_code == 401


async def test_the_audit_log_is_append_only(client: Client, redis_client: aioredis.Redis) -> None:
    admin = await counselor_token(redis_client, "Dana", "admin")
    found = await templates_of(client, admin)
    await approve(client, admin, "system", found["system"]["version"])
    await client.post("/v1/review/counselors", json={"name": "Kim"}, headers=admin)
    first = (await client.get("/v1/review/audit", headers=admin)).json()["entries"]
    assert [e["action"] for e in first] == ["template.approved", "counselor.add"]
    assert first[0]["target"] == f"system@{found['system']['version']}"
    assert first[0]["actor"] == "Dana"

    await client.post(
        "/v1/review/templates/system/decisions",
        json={"version": found["system"]["version"], "decision": "retired", "comment": "superseded"},
        headers=admin,
    )
    second = (await client.get("/v1/review/audit", headers=admin)).json()["entries"]
    assert second[: len(first)] == first
    assert [e["action"] for e in second[len(first) :]] == ["template.retired"]
    ids = [e["id"] for e in second]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    after = (await client.get("/v1/review/audit", params={"after": first[-1]["id"]}, headers=admin)).json()
    assert [e["action"] for e in after["entries"]] == ["template.retired"]
    # There is no way to change or delete an entry through the API.
    for method in ("DELETE", "PUT", "PATCH"):
        r = await client.request(method, "/v1/review/audit", headers=admin)
        assert r.status_code == 405


async def test_previews_show_the_scripted_line_and_the_safety_tester(
    client: Client, redis_client: aioredis.Redis
) -> None:
    counselor = await counselor_token(redis_client, "Kim")
    detail = (await client.get(f"/v1/review/templates/{EXERCISE}.share", headers=counselor)).json()
    assert detail["variables"]
    assert any(s["variable"] and "step_number" in s["text"] for s in detail["segments"])
    assert "".join(s["text"] for s in detail["segments"]) == detail["text"]
    assert len(detail["previews"]) >= 1
    assert all(p["scripted"] for p in detail["previews"])
    r = await client.post(
        f"/v1/review/templates/{EXERCISE}.share/preview", json={"example": 0}, headers=counselor
    )
    assert r.status_code == 200
    body = r.json()
    assert body["scripted"] == detail["previews"][0]["scripted"]
    assert body["model_configured"] is False and body["model_reply"] is None

    r = await client.post("/v1/review/safety", json={"text": DANGER}, headers=counselor)
    assert r.status_code == 200
    verdict = r.json()
    assert verdict["severity"] == "danger"
    assert verdict["signals"]
    for signal in verdict["signals"]:
        assert DANGER[signal["start"] : signal["end"]] == signal["text"]
    assert [h["country"] for h in verdict["help"]] == ["US", "GB", "CA", "AU", "IE", "NZ", "DE", "IN", "INTL"]
    for entry in verdict["help"]:
        assert entry["resources"], entry["country"]
        assert entry["text"] or "prompts/help" in entry["note"]


async def test_the_review_api_is_in_the_schema(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    review_paths = {p: ops for p, ops in schema["paths"].items() if p.startswith("/v1/review/")}
    assert "/v1/review/templates/{template_id}/decisions" in review_paths
    for ops in review_paths.values():
        for op in ops.values():
            assert op["tags"] == ["review"]
            assert op["security"] == [{"bearer": []}]
    assert not any(p.startswith("/console") for p in schema["paths"])
