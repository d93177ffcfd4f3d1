"""Request bodies of the /v1 API must be JSON: anything else is 415 problem+json."""

from __future__ import annotations

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.types.asgi_types import HTTPResponseBodyEvent, HTTPResponseStartEvent

from coach.api.problems import PROBLEM_JSON, PROBLEMS

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class RequireJson:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == ScopeType.HTTP
            and scope.get("method") in BODY_METHODS
            and scope.get("path", "").startswith("/v1/")
        ):
            headers = dict(scope.get("headers", []))
            length = headers.get(b"content-length", b"0")
            has_body = length not in (b"0", b"") or b"transfer-encoding" in headers
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if has_body and not _is_json(content_type):
                status, title = PROBLEMS["unsupported-media-type"]
                body = msgspec.json.encode(
                    {
                        "type": "/problems/unsupported-media-type",
                        "title": title,
                        "status": status,
                        "detail": "Send the body as application/json.",
                        "instance": scope.get("path", ""),
                    }
                )
                start: HTTPResponseStartEvent = {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
                await send(start)
                end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
                await send(end)
                return
        await self.app(scope, receive, send)
