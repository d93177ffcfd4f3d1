"""The counselor console in Chromium against a real `coach serve`: log in, preview, approve,
then see the coach serve the approved version (drafts not allowed)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from coach.review_cli import main as review_cli
from tests.conftest import ROOT, LiveServer, RedisServer

pytestmark = pytest.mark.browser

SHOTS = ROOT / "artifacts" / "screenshots"
EXERCISE = "rose-bud-thorn"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DANGER = "Marcus grabbed my throat and pinned me against the fridge."


@pytest.fixture
def strict_server(redis_server: RedisServer) -> Iterator[LiveServer]:
    import redis

    redis.Redis(port=redis_server.port).flushdb()
    server = LiveServer(redis_server.url, COACH_ALLOW_DRAFT_TEMPLATES="false").start()
    yield server
    server.stop()


def add_admin(redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("COACH_REDIS_URL", redis_url)
    assert review_cli(["counselor", "add", "Dana", "--role", "admin"]) == 0
    found = re.search(r"^(cr_\S+)$", capsys.readouterr().out, re.M)
    assert found is not None
    return found.group(1)


def test_console_login_preview_approve_then_the_coach_serves_it(
    strict_server: LiveServer,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    token = add_admin(redis_server.url, monkeypatch, capsys)
    base = strict_server.url
    api = httpx.Client(base_url=base, timeout=10)
    couple = api.post("/v1/couples", json={"display_name": "Alex", "country": "GB"}).json()
    partner = {"Authorization": f"Bearer {couple['token']}"}
    assert api.get("/v1/exercises").json()["exercises"] == []
    assert api.post("/v1/sessions", json={"exercise_id": EXERCISE}, headers=partner).status_code == 404
    # A partner token never reaches the review API.
    assert api.get("/v1/review/templates", headers=partner).status_code == 403

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        response = page.goto(base + "/console")
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]

        # A partner token is refused at the login form.
        page.fill("#token", couple["token"])
        page.click("#login-form button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("Partner tokens cannot use the review API")

        page.fill("#token", token)
        page.click("#login-form button[type=submit]")
        expect(page.locator("#who-name")).to_have_text("Dana (admin)")
        expect(page.locator("#serving-mode")).to_have_text("approved only")
        assert page.evaluate("sessionStorage.getItem('coach.counselor.token')") == token

        to_approve = ["system", f"{EXERCISE}.share", f"{EXERCISE}.respond", f"{EXERCISE}.close"]
        listed = page.locator("#template-list [data-template]").all_inner_texts()
        assert set(to_approve) <= set(listed)
        for template_id in to_approve:
            page.click(f"#template-list [data-template='{template_id}']")
            expect(page.locator("#detail-title")).to_contain_text(template_id)
            expect(page.locator("#detail-title .badge")).to_have_text("draft")
            if template_id == f"{EXERCISE}.share":
                expect(page.locator("#template-text mark.var").first).to_be_visible()
                expect(page.locator(".example[data-example='0'] .scripted")).not_to_be_empty()
                page.click(".example[data-example='0'] .ask-model")
                expect(page.locator(".model-out[data-example='0'] .note")).to_contain_text(
                    "No model API is configured"
                )
                page.screenshot(path=str(SHOTS / "console-preview.png"), full_page=True)
            page.fill("#decision-comment", "Reviewed in the console.")
            page.click("#approve")
            expect(page.locator("#detail-title .badge")).to_have_text("approved")
            expect(page.locator("#template-detail .notice")).to_contain_text(
                "the coach serves this version now"
            )

        # The running coach serves the approved version without a restart.
        assert [e["id"] for e in api.get("/v1/exercises").json()["exercises"]] == [EXERCISE]
        started = api.post("/v1/sessions", json={"exercise_id": EXERCISE}, headers=partner)
        assert started.status_code == 201, started.text
        sid = started.json()["session_id"]
        posted = api.post(
            f"/v1/sessions/{sid}/messages", json={"text": "Rose: the sun came out."}, headers=partner
        )
        assert posted.status_code == 201, posted.text
        reply = posted.json()["reply"]
        counselor = {"Authorization": f"Bearer {token}"}
        shown = api.get(f"/v1/review/templates/{EXERCISE}.share", headers=counselor).json()
        version = shown["template"]["version"]
        assert shown["template"]["status"] == "approved"
        assert reply["template"] == {"id": f"{EXERCISE}.share", "version": version}
        assert reply.get("draft", False) is False

        # The console counts the reply for that version (counts only).
        page.click(f"#template-list [data-template='{EXERCISE}.share']")
        expect(page.locator("#counts")).to_contain_text("1 replies from this version; 0 replaced")
        expect(page.locator(".history")).to_contain_text("Reviewed in the console.")
        page.screenshot(path=str(SHOTS / "console-approved.png"), full_page=True)

        # The safety tester.
        page.click(".tabs [data-tab=safety]")
        page.fill("#safety-text", DANGER)
        page.click("#safety-form button[type=submit]")
        expect(page.locator("#severity")).to_have_text("danger")
        expect(page.locator("#scanned-text mark.signal").first).to_be_visible()
        expect(page.locator(".country")).to_have_count(9)
        page.screenshot(path=str(SHOTS / "console-safety.png"), full_page=True)

        # The audit log (admin).
        page.click(".tabs [data-tab=audit]")
        expect(page.locator("#audit-table")).to_contain_text("template.approved")
        page.screenshot(path=str(SHOTS / "console-audit.png"), full_page=True)
        browser.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
