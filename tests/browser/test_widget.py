"""The widget as two partners use it: two browser contexts against a real ``coach serve``."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.async_api import Page, ViewportSize, expect

from tests.browser.conftest import PHONE, Open, host_origin, shot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

DISCLOSURE = "he grabbed me by the throat last night"


async def widget(page: Page) -> Page:
    """Locators pierce open shadow roots, so the page is the root for queries."""
    await expect(page.locator("coach-widget")).to_be_visible()
    return page


async def start_couple(page: Page, name: str = "Alex") -> str:
    await page.get_by_label("Your first name").fill(name)
    await page.get_by_role("button", name="Start as a couple").click()
    await expect(page.get_by_role("heading", name="You are in. Now invite your partner")).to_be_visible()
    code = (await page.get_by_test_id("invite-code").inner_text()).strip()
    assert code
    return code


async def pair(
    open_partner: Open, server: LiveServer, *, b_viewport: ViewportSize | None = None
) -> tuple[Page, Page]:
    a = await widget(await open_partner(server.url + "/"))
    code = await start_couple(a, "Alex")
    link = await a.get_by_label("Invite link").input_value()
    assert link.endswith("#coach-invite=" + code)
    b = await widget(await open_partner(link, viewport=b_viewport))
    await expect(b.get_by_role("heading", name="Your partner invited you")).to_be_visible()
    await expect(b.get_by_label("Invite code")).to_have_value(code)
    await b.get_by_label("Your first name").fill("Sam")
    await b.get_by_role("button", name="Join my partner").click()
    await expect(b.get_by_text("You are paired with your partner.")).to_be_visible()
    # The invite code is not left in the address bar.
    assert "coach-invite" not in b.url
    await a.get_by_role("button", name="Choose an exercise").click()
    return a, b


async def open_exercise(page: Page, title: str) -> None:
    await page.locator("button.pick", has_text=title).first.click()
    await expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()


async def share_rbt(page: Page, rose: str, bud: str, thorn: str) -> None:
    await page.get_by_role("textbox", name=re.compile("^Rose")).fill(rose)
    await page.get_by_role("textbox", name=re.compile("^Bud")).fill(bud)
    await page.get_by_role("textbox", name=re.compile("^Thorn")).fill(thorn)
    await page.get_by_role("button", name="Share with your partner").click()


async def stored_keys(page: Page) -> list[str]:
    keys: list[str] = await page.evaluate("() => Object.keys(localStorage)")
    return [k for k in keys if k.startswith("coach-widget:")]


async def test_pairing_and_a_rose_bud_thorn_round_seen_live_by_both(
    open_partner: Open, server: LiveServer
) -> None:
    a, b = await pair(open_partner, server, b_viewport=PHONE)
    await shot(b, "pairing-joined-360")

    await expect(a.locator("button.pick").first).to_contain_text("Suggested")
    await shot(a, "picker-desktop")
    await open_exercise(a, "Rose, Bud, Thorn")
    await expect(a.get_by_test_id("step-count")).to_have_text("Step 1 of 3")
    await expect(a.get_by_test_id("step-invite")).to_have_text(re.compile("rose.*bud.*thorn", re.I))

    # Sam's picker shows the round Alex started, without a reload.
    await expect(b.get_by_role("button", name=re.compile("Continue: Rose, Bud, Thorn"))).to_be_visible()
    await b.get_by_role("button", name=re.compile("Continue: Rose, Bud, Thorn")).click()
    await expect(b.get_by_test_id("step-count")).to_have_text("Step 1 of 3")

    await share_rbt(a, "Pancakes on Sunday", "The concert on Friday", "A long meeting")
    alex_share = "Rose: Pancakes on Sunday\nBud: The concert on Friday\nThorn: A long meeting"
    # Both see Alex's share as one message, and the coach's reply, live.
    for page in (a, b):
        await expect(page.locator(".msg.partner .text", has_text="Rose: Pancakes on Sunday")).to_have_text(
            alex_share
        )
        await expect(page.locator(".msg.coach .text").last).to_contain_text("Thank you for sharing")
    await expect(b.locator(".msg.partner .who").first).to_have_text("Alex")
    await expect(a.locator(".msg.mine .who").first).to_have_text("You")
    await shot(b, "rbt-partner-share-seen-live-360")

    await share_rbt(b, "A walk in the park", "Seeing my sister", "")
    for page in (a, b):
        await expect(page.locator(".msg .text", has_text="Rose: A walk in the park")).to_have_count(1)
        # Both have shared: the exercise moves on for both.
        await expect(page.get_by_test_id("step-count")).to_have_text("Step 2 of 3")
        await expect(page.get_by_role("heading", name="Respond to each other")).to_be_visible()
        await expect(page.get_by_role("textbox", name="Your message")).to_be_visible()
        # Each message is shown exactly once (live stream and POST stream are deduplicated).
        await expect(page.locator(".msg.partner")).to_have_count(2)
        await expect(page.locator(".msg.coach")).to_have_count(2)
    await shot(a, "rbt-step-2-desktop")
    await shot(b, "rbt-step-2-360")


async def test_a_disclosure_is_seen_only_by_its_author(open_partner: Open, server: LiveServer) -> None:
    a, b = await pair(open_partner, server)
    await open_exercise(a, "Rose, Bud, Thorn")
    await b.get_by_role("button", name=re.compile("Continue: Rose, Bud, Thorn")).click()
    await expect(b.get_by_test_id("step-count")).to_have_text("Step 1 of 3")

    await share_rbt(a, "Not much", "Nothing really", DISCLOSURE)
    panel = a.get_by_test_id("private-panel")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_role("heading", name="Just for you")).to_be_visible()
    await expect(panel.locator("a[href^='tel:']").first).to_be_visible()
    await expect(a.locator(".msg.mine.private .text")).to_contain_text(DISCLOSURE)
    await expect(a.locator(".msg.mine.private .tag")).to_have_text("Only you can see this")
    await expect(a.locator(".banner")).to_have_text("This exercise is paused for now.")
    await shot(a, "disclosure-author-private-panel-desktop")

    # Sam sees the exercise paused, with a neutral notice: nothing of what was said or the help.
    await expect(b.locator(".banner")).to_have_text("This exercise is paused for now.")
    await expect(b.locator(".msg.notice")).to_have_count(1)
    await expect(b.get_by_test_id("private-panel")).to_be_hidden()
    await expect(b.get_by_text("throat")).to_have_count(0)
    await expect(b.locator("a[href^='tel:'], a[href^='sms:']")).to_have_count(0)
    await expect(b.get_by_text("Just for you")).to_have_count(0)
    await shot(b, "disclosure-partner-sees-only-pause-desktop")

    # Reloading does not reveal it either; the author still has the panel after a reload.
    await b.reload()
    await expect(b.locator(".banner")).to_have_text("This exercise is paused for now.")
    await expect(b.get_by_text("throat")).to_have_count(0)
    await a.reload()
    await expect(a.get_by_test_id("private-panel")).to_be_visible()
    await expect(a.get_by_test_id("private-panel").locator("a[href^='tel:']").first).to_be_visible()


async def test_the_30_day_calendar_advances_when_a_day_is_done(
    open_partner: Open, server: LiveServer
) -> None:
    a, b = await pair(open_partner, server)
    await open_exercise(a, "30-Day Reconnection Challenge")
    await a.get_by_role("button", name="Start the 30 days").click()
    calendar = a.get_by_role("list", name="The 30 days")
    await expect(calendar.locator("li")).to_have_count(30)
    await expect(calendar.locator("li[aria-current=date]")).to_have_attribute("data-day", "1")
    day = a.get_by_test_id("challenge-day")
    await expect(day).to_contain_text("Today, day 1")
    await expect(a.get_by_test_id("challenge-stats")).to_contain_text("0 of 30 days done")
    await shot(a, "challenge-day-1-desktop")

    await a.get_by_role("button", name="We did the words one").click()
    await expect(calendar.locator("li[data-day='1']")).to_have_attribute("data-choice", "emotional")
    await expect(calendar.locator("li[data-day='1']")).to_have_attribute(
        "aria-label", re.compile("done: words")
    )
    await expect(day).to_contain_text("Day 1 is done: you chose words")
    await expect(day).to_contain_text("Tomorrow, day 2")
    await expect(day.get_by_role("button")).to_have_count(0)  # one day per calendar day
    await expect(a.get_by_test_id("challenge-stats")).to_contain_text("1 of 30 days done")
    await expect(a.get_by_test_id("challenge-stats")).to_contain_text("Streak 1")
    await shot(a, "challenge-day-1-done-desktop")

    # The challenge is the couple's: Sam sees the same progress on a phone.
    await b.set_viewport_size(PHONE)
    await expect(b.get_by_role("button", name=re.compile("Continue: 30-Day"))).to_be_visible()
    await b.get_by_role("button", name=re.compile("Continue: 30-Day")).click()
    await expect(b.get_by_role("list", name="The 30 days").locator("li[data-day='1']")).to_have_attribute(
        "data-choice", "emotional"
    )
    await expect(b.get_by_test_id("challenge-day")).to_contain_text("Tomorrow, day 2")
    await shot(b, "challenge-day-1-done-360")


async def test_every_exercise_opens_with_its_step_indicator(open_partner: Open, server: LiveServer) -> None:
    page = await widget(await open_partner(server.url + "/"))
    await start_couple(page)
    await page.get_by_role("button", name="Choose an exercise").click()
    await expect(page.locator("button.pick").first).to_be_visible()
    titles = await page.locator("button.pick strong").all_inner_texts()
    assert len(titles) >= 10
    for title in titles:
        await open_exercise(page, title)
        await expect(page.get_by_test_id("step-count")).to_have_text(re.compile(r"^Step 1 of \d+$"))
        await expect(page.get_by_test_id("step-invite")).not_to_be_empty()
        if title == "Honesty Hour":
            await expect(page.get_by_test_id("step-count")).to_have_text("Step 1 of 9")
            await expect(page.locator(".dots li")).to_have_count(9)
            await shot(page, "honesty-hour-step-1-desktop")
        await page.get_by_role("button", name="← All exercises").click()
        await expect(page.get_by_role("heading", name="Choose an exercise")).to_be_visible()


async def test_a_message_in_a_free_text_step_streams_in(open_partner: Open, server: LiveServer) -> None:
    page = await widget(await open_partner(server.url + "/"))
    await start_couple(page)
    await page.get_by_role("button", name="Choose an exercise").click()
    await open_exercise(page, "Honesty Hour")
    await page.get_by_role("textbox", name="Your message").fill("Phones are in the drawer, we have an hour.")
    await page.get_by_role("textbox", name="Your message").press("Control+Enter")
    await expect(page.locator(".msg.mine .text")).to_have_text("Phones are in the drawer, we have an hour.")
    await expect(page.locator(".msg.coach:not(.streaming) .text")).not_to_be_empty()
    await expect(page.get_by_role("textbox", name="Your message")).to_be_empty()


async def test_quick_exit_replaces_the_page_and_clears_storage(
    open_partner: Open, server: LiveServer
) -> None:
    page = await widget(await open_partner(server.url + "/"))
    await start_couple(page)
    assert await stored_keys(page)
    await expect(page.get_by_text("browser history may still show this visit")).to_be_visible()
    history_length = await page.evaluate("() => history.length")
    await page.get_by_role("button", name="Quick exit").click()
    await expect(page).to_have_url(server.url + "/neutral")
    await expect(page.get_by_role("heading", name="Today's forecast")).to_be_visible()
    assert await stored_keys(page) == []
    # location.replace: going back does not return to the coach.
    assert await page.evaluate("() => history.length") == history_length
    await shot(page, "quick-exit-neutral-page")


async def test_escape_twice_is_a_quick_exit(open_partner: Open, server: LiveServer) -> None:
    page = await widget(await open_partner(server.url + "/"))
    await start_couple(page)
    await page.get_by_role("button", name="Choose an exercise").click()
    await open_exercise(page, "Rose, Bud, Thorn")
    await page.get_by_role("textbox", name=re.compile("^Rose")).click()
    await page.keyboard.press("Escape")
    await page.keyboard.press("Escape")
    await expect(page).to_have_url(server.url + "/neutral")
    assert await stored_keys(page) == []


async def test_leave_and_delete_my_data_is_one_click(open_partner: Open, server: LiveServer) -> None:
    page = await widget(await open_partner(server.url + "/"))
    await start_couple(page)
    [key] = await stored_keys(page)
    token = await page.evaluate("key => JSON.parse(localStorage.getItem(key)).token", key)
    await page.get_by_role("button", name="Leave and delete my data").click()
    await expect(page.get_by_text("Your data was deleted")).to_be_visible()
    await expect(page.get_by_role("button", name="Start as a couple")).to_be_visible()
    assert await stored_keys(page) == []
    async with httpx.AsyncClient() as client:
        gone = await client.get(server.url + "/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401


async def test_embedded_on_another_origin_with_hostile_css(
    open_partner: Open, server: LiveServer, host_site: Callable[[str], str]
) -> None:
    """The API base comes from the script's own src; the host's CSS does not reach inside."""
    host_page = f"""<!doctype html><html><head><title>Host</title>
<style>button {{ background: rgb(255, 105, 180) !important; font-size: 40px !important; }}
coach-widget {{ --coach-accent: rgb(120, 40, 90); }}</style></head>
<body><h1>Someone else's site</h1>
<script src="{server.url}/widget.js" data-exercise="honesty-hour" async></script></body></html>"""
    host = host_origin(server)
    page = await open_partner(host_site(host_page))
    start = page.get_by_role("button", name="Start as a couple")
    await expect(start).to_be_visible()
    background = await start.evaluate("el => getComputedStyle(el).backgroundColor")
    assert background == "rgb(120, 40, 90)"  # the host's theme variable, not its button rule
    assert await start.evaluate("el => getComputedStyle(el).fontSize") != "40px"
    await start.click()
    await expect(page.get_by_test_id("invite-code")).not_to_be_empty()
    assert (await page.get_by_label("Invite link").input_value()).startswith(host + "/wellness#coach-invite=")
    await page.get_by_role("button", name="Choose an exercise").click()
    await expect(page.locator("button.pick").first).to_contain_text("Honesty Hour")


async def test_the_demo_page_at_360px_and_in_dark_mode(open_partner: Open, server: LiveServer) -> None:
    page = await widget(await open_partner(server.url + "/", viewport=PHONE, dark=True))
    await expect(page.get_by_role("button", name="Start as a couple")).to_be_visible()
    # Nothing overflows sideways at 360 px.
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    await shot(page, "welcome-360-dark")
    await start_couple(page)
    await shot(page, "invite-360-dark")
