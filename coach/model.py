"""Model clients: the protocol, an OpenAI-compatible client, and the offline client.

One retry layer only: the openai SDK runs with ``max_retries=0`` and tenacity retries
408/409/429/5xx, connection errors and timeouts with jittered exponential backoff,
honouring ``Retry-After``, all bounded by the turn's deadline. A circuit breaker stops
a dead provider from making every turn wait out its deadline. ``ResilientClient``
falls back to the offline client, so a couple always gets a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, Protocol, TypedDict

import httpx
import msgspec
import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from coach.transport import model_transport

OFFLINE_MODEL = "offline"


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class ModelRequest(msgspec.Struct, frozen=True, kw_only=True):
    messages: tuple[ChatMessage, ...]
    scripted: str  # the counselor-approved line the offline client answers with
    json_schema: dict[str, Any] | None = None  # ask for structured output
    max_tokens: int = 400


class ModelReply(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    model: str
    fallback: bool = False  # True when the offline client answered for a failed model


class ModelUnavailable(Exception):
    """The model API could not answer within the deadline (or the breaker is open)."""


class StreamBroken(Exception):
    """A stream failed after some text had been produced."""


class ModelClient(Protocol):
    @property
    def name(self) -> str: ...

    async def complete(self, request: ModelRequest, *, deadline: float) -> ModelReply: ...

    def stream(self, request: ModelRequest, *, deadline: float) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class OfflineClient:
    """Answers with the template's scripted line; clearly marked ``"model": "offline"``."""

    name = OFFLINE_MODEL

    async def complete(self, request: ModelRequest, *, deadline: float) -> ModelReply:
        return ModelReply(text=request.scripted, model=OFFLINE_MODEL)

    async def stream(self, request: ModelRequest, *, deadline: float) -> AsyncIterator[str]:
        for word in _split_keep(request.scripted):
            yield word

    async def aclose(self) -> None:
        return None


def _split_keep(text: str) -> list[str]:
    parts: list[str] = []
    for i, word in enumerate(text.split(" ")):
        parts.append(word if i == 0 else " " + word)
    return parts


class CircuitBreaker:
    """Opens after ``failures`` consecutive failed calls; one trial after ``reset`` seconds."""

    def __init__(self, failures: int, reset: float) -> None:
        self.threshold = max(1, failures)
        self.reset = reset
        self.consecutive = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if time.monotonic() - self.opened_at >= self.reset:
            self.opened_at = time.monotonic()  # half-open: let this one call through
            return True
        return False

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None

    def failure(self) -> None:
        self.consecutive += 1
        if self.consecutive >= self.threshold:
            self.opened_at = time.monotonic()

    @property
    def state(self) -> str:
        return "closed" if self.opened_at is None else "open"


RETRY_STATUSES = frozenset({408, 409, 429})


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUSES or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError | asyncio.TimeoutError | httpx.TransportError)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``)."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


class _Wait:
    """Jittered exponential backoff, or the server's Retry-After when it gives one."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.backoff = wait_random_exponential(multiplier=0.25, max=4.0)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        wait = retry_after_seconds(exc)
        if wait is None:
            wait = float(self.backoff(state))
        remaining = self.deadline - time.monotonic()
        if wait >= remaining:
            # Waiting would overrun the turn's deadline: give up now, fall back at once.
            raise ModelUnavailable(f"retry wait {wait:.1f}s exceeds the turn deadline") from exc
        return wait


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    delta: _Message | None = None


class _Completion(msgspec.Struct):
    """The parts of a chat completion (or a streamed chunk of one) the coach reads."""

    choices: list[_Choice] = []
    model: str | None = None
    error: Any = None


_ENCODER = msgspec.json.Encoder()
_COMPLETION = msgspec.json.Decoder(_Completion)
_JSON_HEADERS = {"Content-Type": "application/json"}
_DONE = "\0done"


class UpstreamStreamError(Exception):
    """The provider reported an error inside an open stream."""


def _sse_delta(line: str) -> str | None:
    """The text of one server-sent-event line of a streamed completion: ``_DONE`` at the
    end marker, None for comments, blank lines and chunks without text."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    if not data:
        return None
    chunk = _COMPLETION.decode(data)
    if chunk.error is not None:
        raise UpstreamStreamError(str(chunk.error)[:200])
    text = "".join(c.delta.content for c in chunk.choices if c.delta is not None and c.delta.content)
    return text or None


async def _deltas(response: httpx.Response, deadline: float) -> AsyncIterator[str]:
    """Text deltas of a streamed completion, read by one task of its own: the read stops
    at the turn's deadline (each read also has the client's timeout), and a consumer that
    goes away cancels that task exactly once, so the upstream connection is really closed
    (a cancel delivered twice into a read can leave it open)."""
    queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

    def put(line: bytes) -> None:
        delta = _sse_delta(line.decode().rstrip("\r"))
        if delta and delta is not _DONE:
            queue.put_nowait(delta)

    async def read() -> None:
        end: BaseException | None = None
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                # Lines split here from the decoded bytes (httpx's text and line decoders
                # cost more than the rest of a token's path). Read on past [DONE] to the end
                # of the body: the connection is then reused.
                rest = b""
                async for data in response.aiter_bytes():
                    *lines, rest = (rest + data).split(b"\n")
                    for line in lines:
                        put(line)
                put(rest)
        except Exception as exc:
            end = exc
        finally:
            await response.aclose()  # before the end is signalled: nothing may cancel it
        queue.put_nowait(end)

    reader = asyncio.get_running_loop().create_task(read())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(reader)


class OpenAIClient:
    """Any OpenAI-compatible chat completions API, through an explicit httpx client."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        request_timeout: float,
        breaker: CircuitBreaker,
        max_connections: int = 100,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # An explicit httpx client (openai 3.x otherwise sends through httpx2) on the lean
        # transport of coach/transport.py; tests mock that with ``respx.mock(using="coach")``.
        self.http = http_client or httpx.AsyncClient(
            transport=model_transport(base_url, max_connections),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=httpx.Timeout(request_timeout, connect=min(5.0, request_timeout)),
        )
        self.sdk = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            max_retries=0,
            http_client=self.http,  # type: ignore[arg-type]
        )
        self.url = str(self.sdk.base_url).rstrip("/") + "/chat/completions"
        headers = {**self.sdk.default_headers, **self.sdk.auth_headers, **_JSON_HEADERS}
        self.headers = {k: v for k, v in headers.items() if isinstance(v, str)}
        self.model = model
        self.request_timeout = request_timeout
        self.breaker = breaker
        self.sleep = sleep

    @property
    def name(self) -> str:
        return self.model

    def _retrying(self, deadline: float) -> AsyncRetrying:
        remaining = max(0.0, deadline - time.monotonic())
        return AsyncRetrying(
            stop=stop_after_delay(remaining),
            wait=_Wait(deadline),
            retry=retry_if_exception(is_retryable),
            sleep=self.sleep,
            reraise=True,
        )

    def _body(self, request: ModelRequest, *, stream: bool) -> bytes:
        """The request body, encoded once with msgspec (the SDK's per-message TypedDict
        transform cost more CPU than the rest of a turn; see docs/benchmarks.md)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
        }
        if stream:
            body["stream"] = True
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.json_schema, "strict": True},
            }
        return _ENCODER.encode(body)

    async def _send(self, body: bytes, *, read_timeout: float, stream: bool) -> httpx.Response:
        """POST with the SDK's headers (auth, client identification) to the SDK's base URL;
        a non-2xx answer raises ``openai.APIStatusError`` as the SDK would. Sent straight
        through the httpx client: the SDK's per-request option handling cost about as
        much CPU as the rest of the model call (bench/transport.py)."""
        request = self.http.build_request(
            "POST", self.url, content=body, headers=self.headers, timeout=read_timeout
        )
        response = await self.http.send(request, stream=stream)
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            try:
                detail: object = msgspec.json.decode(response.content)
            except msgspec.DecodeError:
                detail = response.text[:500] or None
            raise openai.APIStatusError(
                f"Error code: {response.status_code} - {detail}",
                response=response,  # type: ignore[arg-type]
                body=detail,
            )
        return response

    def _timeout(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ModelUnavailable("turn deadline passed")
        return min(self.request_timeout, remaining)

    async def complete(self, request: ModelRequest, *, deadline: float) -> ModelReply:
        if not self.breaker.allow():
            raise ModelUnavailable("circuit breaker open")
        body = self._body(request, stream=False)
        try:
            async for attempt in self._retrying(deadline):
                with attempt:
                    timeout = self._timeout(deadline)
                    async with asyncio.timeout(timeout):
                        response = await self._send(body, read_timeout=timeout, stream=False)
                    completion = _COMPLETION.decode(response.content)
        except ModelUnavailable:
            self.breaker.failure()
            raise
        except Exception as exc:
            self.breaker.failure()
            raise ModelUnavailable(f"model API failed: {type(exc).__name__}") from exc
        self.breaker.success()
        message = completion.choices[0].message if completion.choices else None
        text = (message.content or "").strip() if message else ""
        if not text:
            raise ModelUnavailable("model API returned an empty reply")
        return ModelReply(text=text, model=completion.model or self.model)

    async def stream(self, request: ModelRequest, *, deadline: float) -> AsyncIterator[str]:
        """Yield text deltas. Retries only before the first token; later failures raise
        ``StreamBroken`` (a stream is never replayed once text was shown)."""
        if not self.breaker.allow():
            raise ModelUnavailable("circuit breaker open")
        body = self._body(request, stream=True)
        produced = False
        response: httpx.Response | None = None
        try:
            async for attempt in self._retrying(deadline):
                with attempt:
                    timeout = self._timeout(deadline)
                    async with asyncio.timeout(timeout):
                        response = await self._send(body, read_timeout=timeout, stream=True)
            assert response is not None
            async for delta in _deltas(response, deadline):
                produced = True
                yield delta
        except (ModelUnavailable, StreamBroken):
            self.breaker.failure()
            raise
        except Exception as exc:
            self.breaker.failure()
            if produced:
                raise StreamBroken(f"stream failed midway: {type(exc).__name__}") from exc
            raise ModelUnavailable(f"model API failed: {type(exc).__name__}") from exc
        finally:
            if response is not None:
                await response.aclose()
        if not produced:
            self.breaker.failure()
            raise ModelUnavailable("model API returned an empty stream")
        self.breaker.success()

    async def aclose(self) -> None:
        await self.http.aclose()


class ResilientClient:
    """The configured model with the offline client as its fallback."""

    def __init__(self, primary: ModelClient | None, offline: OfflineClient | None = None) -> None:
        self.primary = primary
        self.offline = offline or OfflineClient()

    @property
    def name(self) -> str:
        return self.primary.name if self.primary else self.offline.name

    async def complete(self, request: ModelRequest, *, deadline: float) -> ModelReply:
        if self.primary is None:
            return await self.offline.complete(request, deadline=deadline)
        try:
            return await self.primary.complete(request, deadline=deadline)
        except ModelUnavailable:
            reply = await self.offline.complete(request, deadline=deadline)
            return ModelReply(text=reply.text, model=OFFLINE_MODEL, fallback=True)

    async def aclose(self) -> None:
        if self.primary is not None:
            await self.primary.aclose()
