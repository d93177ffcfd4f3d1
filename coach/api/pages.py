"""Web pages served by the coach: the widget script and the demo host page.

- ``/widget.js``: the embeddable widget (short ``max-age`` plus an ``ETag``, so a fix
  reaches every host page within minutes and revalidation is a cheap 304).
- ``/``: a demo host page ("Sunny Side Wellness") with the widget embedded.
- ``/neutral``: the neutral page Quick Exit replaces the widget's page with.
- ``/static/<name>``: the stylesheets those pages use.

Every page carries a strict Content-Security-Policy (no inline script or style); the
widget styles its Shadow DOM with a constructable stylesheet, which the CSP allows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from coach.api.problems import Problem

STATIC = Path(__file__).resolve().parent.parent / "static"

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
        "object-src 'none'",
    ]
)

TYPES = {
    ".html": "text/html",  # Litestar adds "; charset=utf-8" to text types
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}

# The files /static/<name> may serve (the widget's and the demo's; not other pages').
PUBLIC_ASSETS = frozenset({"demo.css", "neutral.css", "widget.js"})


@dataclass(frozen=True)
class Asset:
    body: bytes
    etag: str
    mtime: float


_cache: dict[str, Asset] = {}


def load(name: str) -> Asset:
    """The file's bytes and a strong ETag, re-read when the file changes on disk."""
    path = STATIC / name
    mtime = path.stat().st_mtime
    cached = _cache.get(name)
    if cached is not None and cached.mtime == mtime:
        return cached
    body = path.read_bytes()
    asset = Asset(body=body, etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"', mtime=mtime)
    _cache[name] = asset
    return asset


def serve(request: Request[Any, Any, Any], name: str, *, cache_control: str, page: bool) -> Response[bytes]:
    asset = load(name)
    headers = {
        "Cache-Control": cache_control,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        # The visit should not leak to the sites a partner follows a link to.
        "Referrer-Policy": "no-referrer",
    }
    if page:
        headers["Content-Security-Policy"] = CSP
    else:
        # Host pages on other origins load the script (and cross-origin-isolated hosts too).
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    media_type = TYPES[Path(name).suffix]
    match = request.headers.get("if-none-match", "")
    if asset.etag in [tag.strip().removeprefix("W/") for tag in match.split(",")]:
        return Response(content=b"", status_code=304, headers=headers, media_type=media_type)
    return Response(content=asset.body, headers=headers, media_type=media_type)


@get("/", include_in_schema=False, name="demo-page")
async def demo_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    return serve(request, "demo.html", cache_control="no-cache", page=True)


@get("/neutral", include_in_schema=False, name="neutral-page")
async def neutral_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    return serve(request, "neutral.html", cache_control="public, max-age=3600", page=True)


@get("/widget.js", include_in_schema=False, name="widget-js")
async def widget_js(request: Request[Any, Any, Any]) -> Response[bytes]:
    return serve(request, "widget.js", cache_control="public, max-age=300", page=False)


@get("/static/{name:str}", include_in_schema=False, name="widget-static")
async def static_asset(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    if name not in PUBLIC_ASSETS:
        raise Problem("not-found", "No such file.")
    return serve(request, name, cache_control="public, max-age=300", page=False)


ROUTES: list[Any] = [demo_page, neutral_page, widget_js, static_asset]
