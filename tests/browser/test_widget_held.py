"""The widget with lowering on (``COACH_SAFETY_LEARNED_LOWERS=true``): a held figure of
speech is shown to its author alone with the private check and a "Share it" button; the
partner sees it only after it is shared. Needs `make model`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Open, shot
from tests.browser.test_widget import open_exercise, pair
from tests.conftest import LiveServer, RedisServer
from tests.integration.test_safety_learned import CUPBOARD

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[LiveServer]:
    live = LiveServer(
        redis_server.url,
        COACH_HEARTBEAT_SECONDS="1",
        COACH_DEFAULT_COUNTRY="US",
        COACH_SAFETY_LEARNED_LOWERS="true",
    )
    live.start()
    yield live
    live.stop()


async def test_a_held_message_is_private_until_its_author_shares_it(
    open_partner: Open, server: LiveServer
) -> None:
    a, b = await pair(open_partner, server)
    await open_exercise(a, "Honesty Hour")
    await b.get_by_role("button", name=re.compile("Continue: Honesty Hour")).click()
    box = a.get_by_role("textbox", name="Your message")
    await box.fill(CUPBOARD)
    await box.press("Control+Enter")

    held = a.locator(".msg.mine.private", has_text="cupboard")
    await expect(held.locator(".tag")).to_have_text("Only you can see this")
    share = held.get_by_role("button", name="Share it")
    await expect(share).to_be_visible()
    check = a.locator(".msg.coach.private .text")
    await expect(check).to_contain_text("kept it just for you")
    await expect(check).to_contain_text("1-800-799-7233")  # a risk's helpline, as for the lexicon's risk
    await expect(check).to_contain_text("911")  # and the emergency number
    # its help lines are tap-to-call actions under it, the helpline first
    await expect(a.locator(".msg.coach.private a[href^='tel:']").first).to_have_text("Call 1-800-799-7233")
    await expect(a.get_by_test_id("private-panel")).to_be_hidden()  # no crisis panel, no pause
    await expect(a.get_by_text("This exercise is paused for now.")).to_have_count(0)
    await shot(a, "held-message-author-desktop")
    await expect(b.get_by_text("cupboard")).to_have_count(0)

    await share.click()
    await expect(held.locator(".tag")).to_have_text("Shared")
    await expect(held.get_by_role("button", name="Share it")).to_have_count(0)
    await expect(a.locator(".msg.mine:not(.private)", has_text="cupboard")).to_have_count(1)
    # Sam sees the message live, and the coach's reply to it; never the private check.
    await expect(b.locator(".msg.partner", has_text="cupboard")).to_have_count(1)
    await expect(b.get_by_text("kept it just for you")).to_have_count(0)
    await shot(b, "held-message-shared-partner-desktop")

    # After a reload the author's held message still says it was shared, with no button.
    await a.reload()
    await expect(a.locator(".msg.mine.private", has_text="cupboard").locator(".tag")).to_have_text("Shared")
    await expect(a.get_by_role("button", name="Share it")).to_have_count(0)
