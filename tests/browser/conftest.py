"""Browser fixtures: one Chromium per test session, one ``coach serve`` per module.

Debian's Chromium is driven through Playwright (Playwright's own browser download is not
used). Each partner is a separate browser context, so each has its own localStorage.
Screenshots of every state land in ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.async_api import Browser, Page, Playwright, ViewportSize, async_playwright, expect

from tests.conftest import ROOT, LiveServer, RedisServer, free_port

CHROMIUM = os.environ.get("COACH_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
HOST_PORTS: dict[int, int] = {}  # coach port -> port of the fake third-party host site


def host_origin(server: LiveServer) -> str:
    """The origin of a third-party site embedding the widget (see ``host_site``)."""
    return f"http://127.0.0.1:{HOST_PORTS[server.port]}"


DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 780}

expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
async def playwright_instance() -> AsyncIterator[Playwright]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (once per session)
        message = f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI a missing browser is a failure, never a silent skip
        pytest.skip(message)
    async with async_playwright() as p:
        yield p


@pytest.fixture(scope="session")
async def browser(playwright_instance: Playwright) -> AsyncIterator[Browser]:
    b = await playwright_instance.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )
    yield b
    await b.close()


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[LiveServer]:
    # US help resources have phone and text numbers: the tap-to-call links can be checked.
    live = LiveServer(redis_server.url, COACH_HEARTBEAT_SECONDS="1", COACH_DEFAULT_COUNTRY="US")
    # The widget is also embedded by a (fake) host on another origin: allow it (CORS).
    HOST_PORTS[live.port] = free_port()
    live.env["COACH_WIDGET_ORIGINS"] = f"{live.url},{host_origin(live)}"
    live.start()
    yield live
    live.stop()


Open = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_partner(browser: Browser) -> AsyncIterator[Open]:
    """Open a page for a partner in a fresh context (own storage). Closed after the test."""
    contexts = []

    async def open_(url: str, *, viewport: ViewportSize | None = None, dark: bool = False) -> Page:
        context = await browser.new_context(
            viewport=viewport or DESKTOP,
            color_scheme="dark" if dark else "light",
            permissions=["clipboard-read", "clipboard-write"],
        )
        contexts.append(context)
        page = await context.new_page()
        await page.goto(url)
        return page

    yield open_
    for context in contexts:
        await context.close()


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def host_site(server: LiveServer) -> Iterator[Callable[[str], str]]:
    """A real web server on another origin; ``host_site(html)`` serves ``html`` at
    /wellness and returns that page's URL."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body or b"not found")

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", HOST_PORTS[server.port]), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def serve(html: str) -> str:
        pages["/wellness"] = html.encode()
        return host_origin(server) + "/wellness"

    yield serve
    httpd.shutdown()
    httpd.server_close()
