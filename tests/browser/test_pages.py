"""The pages and the widget script as served: content types, caching, CSP."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer


def test_widget_js_is_cacheable_briefly_and_revalidates(server: LiveServer) -> None:
    r = httpx.get(server.url + "/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=300"
    assert "customElements.define" in r.text
    etag = r.headers["etag"]
    again = httpx.get(server.url + "/widget.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


def test_pages_carry_a_strict_csp(server: LiveServer) -> None:
    for path, marker in [("/", "widget.js"), ("/neutral", "forecast")]:
        r = httpx.get(server.url + path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert marker in r.text
    css = httpx.get(server.url + "/static/demo.css")
    assert css.headers["content-type"].startswith("text/css")


def test_only_the_widget_files_are_served(server: LiveServer) -> None:
    assert httpx.get(server.url + "/static/../settings.py").status_code == 404
    assert httpx.get(server.url + "/static/nope.css").status_code == 404
