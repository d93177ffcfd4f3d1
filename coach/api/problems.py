"""Errors as RFC 9457 problem details (``application/problem+json``), one stable type each.

Every kind is listed in ``PROBLEMS`` and documented in docs/errors.md; the ``type`` is a
relative URI, ``/problems/<slug>``, stable across releases.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger("coach.http")

PROBLEM_JSON = "application/problem+json"

PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request could not be read"),
    "unauthorized": (401, "A valid token is needed"),
    "forbidden": (403, "Not allowed"),
    "not-found": (404, "Not found"),
    "not-approved": (404, "Not available until a counselor approves its text"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "turn-in-progress": (409, "Another message of yours is still being answered"),
    "session-paused": (409, "This exercise is paused"),
    "session-completed": (409, "This exercise is complete"),
    "not-held": (409, "This message is not waiting to be shared"),
    "idempotency-in-progress": (
        409,
        "The first request with this Idempotency-Key is still running",
    ),
    "idempotency-key-reused": (422, "This Idempotency-Key was used with a different request"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "Send the body as application/json"),
    "validation": (422, "The request body is not valid"),
    "message-empty": (422, "The message is empty"),
    "message-too-long": (422, "The message is too long"),
    "rate-limited": (429, "Too many requests"),
    "safety-unavailable": (503, "The safety check is unavailable; nothing was shared"),
    "store-unavailable": (503, "The store is unavailable; try again shortly"),
    "internal": (500, "Something went wrong on our side"),
}

_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
    503: "store-unavailable",
}


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details, as every error is sent."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, Any]] | None = None
    limit: int | None = None
    length: int | None = None
    day: int | None = None


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the problem+json errors an operation can answer with."""
    common = {400, 422, 429, 500, 503}
    out: dict[int, ResponseSpec] = {}
    for status in sorted(common | set(statuses)):
        kinds = [f"/problems/{slug}" for slug, (code, _t) in PROBLEMS.items() if code == status]
        out[status] = ResponseSpec(
            data_container=ProblemDetails,
            media_type=PROBLEM_JSON,
            description="Problem: " + ", ".join(kinds),
            generate_examples=False,
        )
    return out


class Problem(HTTPException):
    """An error with a stable problem type; ``extra`` becomes extension members."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        status, title = PROBLEMS[slug]
        super().__init__(detail=detail or title, status_code=status, headers=headers)
        self.slug = slug
        self.title = title
        self.extra_members = extra


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    path = request.url.path
    if isinstance(exc, Problem):
        return problem_response(
            exc.status_code,
            exc.slug,
            exc.title,
            exc.detail,
            path,
            exc.headers,
            **exc.extra_members,
        )
    if isinstance(exc, RecursionError):
        status, title = PROBLEMS["bad-request"]
        return problem_response(status, "bad-request", title, "The body is nested too deeply.", path)
    if isinstance(exc, UnicodeDecodeError):
        status, title = PROBLEMS["bad-request"]
        return problem_response(status, "bad-request", title, "The body is not valid UTF-8.", path)
    if isinstance(exc, ValidationException):
        errors = exc.extra if isinstance(exc.extra, list) else None
        detail = exc.detail
        slug = "validation"
        if "decode" in detail.lower() or ("json" in detail.lower() and not errors):
            slug = "bad-request"
        elif errors and all(_is_blank_text(e) for e in errors):
            # the message schema's min_length / pattern: an empty or blank message
            slug, detail = "message-empty", "Write something before sending."
        elif errors and all(_source(e) in _NOT_BODY for e in errors):
            # a malformed header, query or path parameter: the request, not its body
            slug = "bad-request"
            detail = "Malformed " + ", ".join(_where(e) for e in errors) + "."
        status, title = PROBLEMS[slug]
        extra: dict[str, Any] = {"errors": errors} if errors and slug != "message-empty" else {}
        return problem_response(status, slug, title, detail, path, **extra)
    if isinstance(exc, HTTPException):
        status = exc.status_code
        slug = _BY_STATUS.get(status, "bad-request" if status < 500 else "internal")
        title = PROBLEMS[slug][1]
        detail = exc.detail if not isinstance(exc, NotFoundException) else "Not found"
        return problem_response(status, slug, title, detail, path, exc.headers)
    if is_store_error(exc):
        log.warning("store unavailable: %s: %s", type(exc).__name__, exc)
        status, title = PROBLEMS["store-unavailable"]
        return problem_response(status, "store-unavailable", title, title, path, {"Retry-After": "2"})
    log.exception("unhandled error on %s", path)
    status, title = PROBLEMS["internal"]
    return problem_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal", title, title, path)


#: Where a validation error can come from, other than the body (litestar's ``source``).
_NOT_BODY = frozenset({"header", "query", "path", "cookie"})


def _source(error: Any) -> str:
    source = error.get("source", "") if isinstance(error, dict) else ""
    return str(getattr(source, "value", source))


def _is_blank_text(error: Any) -> bool:
    """msgspec's answer to a ``text`` below ``MessageText``'s min_length or off its pattern."""
    if not isinstance(error, dict) or error.get("key") != "text" or _source(error) != "body":
        return False
    message = str(error.get("message", ""))
    return message.startswith(("Expected `str` of length >= 1", "Expected `str` matching regex"))


def _where(error: dict[str, Any]) -> str:
    """``header last-event-id``, ``query limit``: a header by the name it is sent with."""
    source, key = _source(error), str(error.get("key", ""))
    return f"{source} {key.replace('_', '-') if source == 'header' else key}".strip()


def is_store_error(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)


__all__ = ["PROBLEMS", "PROBLEM_JSON", "MediaType", "Problem", "handle_exception", "is_store_error"]
