"""A fake OpenAI-compatible upstream, fast enough not to be the bottleneck.

A raw asyncio HTTP/1.1 server (uvloop when available, keep-alive, no framework):

* ``POST /v1/chat/completions`` answers a fixed, benign coaching reply after
  ``--latency-ms``; with ``"stream": true`` it sends the first token after
  ``--latency-ms`` and one token every ``--token-ms`` (SSE over chunked encoding,
  ``data: [DONE]`` at the end), OpenAI-style tokens with a leading space.
* When the last user message contains ``[bench:TAG]`` the send time of every streamed
  token (``time.monotonic_ns()``, one clock for every process on the machine) is kept
  under TAG; ``GET /_stamps?tag=TAG`` returns and forgets them. Bounded: at most
  ``MAX_TAGS`` tags are kept, the oldest go first.
* ``GET /v1/models``, ``GET /healthz`` and ``GET /_stats`` (requests served).
* A request header ``x-fake-latency-ms`` overrides the latency for that request (the
  ceiling measurement uses 0).

Run: ``python bench/fake_upstream.py --port 9100 --latency-ms 20 --token-ms 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import signal
import time
from collections.abc import Coroutine
from typing import Any

import msgspec

REPLY = (
    "That sounds like it matters to you both. "
    "What would feel like one small step toward that this week? "
    "Take a quiet moment to notice how each of you feels right now."
)
TAG = re.compile(r"\[bench:([A-Za-z0-9_-]{1,64})\]")
MAX_TAGS = 50_000
MAX_HEADER = 64 * 1024
MAX_BODY = 4 * 1024 * 1024


def tokens_of(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


TOKENS = tokens_of(REPLY)
_enc = msgspec.json.Encoder()


class Config(msgspec.Struct, kw_only=True):
    latency_ms: float = 20.0
    token_ms: float = 5.0


class State:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.requests = 0
        self.streams = 0
        self.stamps: collections.OrderedDict[str, list[int]] = collections.OrderedDict()

    def stamp_slot(self, tag: str) -> list[int]:
        slot: list[int] = []
        self.stamps[tag] = slot
        while len(self.stamps) > MAX_TAGS:
            self.stamps.popitem(last=False)
        return slot


def _response(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\ncontent-type: "
        + ctype
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: keep-alive\r\n\r\n"
        + body
    )


def _completion(model: str) -> bytes:
    return _enc.encode(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": len(TOKENS),
                "total_tokens": 50 + len(TOKENS),
            },
        }
    )


def _chunk(model: str, created: int, delta: dict[str, Any], finish: str | None) -> bytes:
    payload = _enc.encode(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )
    data = b"data: " + payload + b"\n\n"
    return hex(len(data))[2:].encode() + b"\r\n" + data + b"\r\n"


_DONE_DATA = b"data: [DONE]\n\n"
DONE = hex(len(_DONE_DATA))[2:].encode() + b"\r\n" + _DONE_DATA + b"\r\n0\r\n\r\n"
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)


class Request(msgspec.Struct):
    model: str = "fake"
    stream: bool = False
    messages: list[dict[str, Any]] = msgspec.field(default_factory=list)


_req_dec = msgspec.json.Decoder(Request)


def _tag_of(req: Request) -> str | None:
    for message in reversed(req.messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and (m := TAG.search(content)):
                return m.group(1)
            return None
    return None


class HTTPProtocol(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # one request at a time per connection (no pipelining replies)
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        while not self.busy and not self.closed:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEADER:
                    self._fail(b"431 Request Header Fields Too Large")
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                self._fail(b"400 Bad Request")
                return
            length = 0
            latency: float | None = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip())
                elif lname == "x-fake-latency-ms":
                    latency = float(value.strip())
                elif lname == "transfer-encoding" and "chunked" in value.lower():
                    self._fail(b"411 Length Required")
                    return
            if length > MAX_BODY:
                self._fail(b"413 Content Too Large")
                return
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = bytes(self.buf[end + 4 : total])
            del self.buf[:total]
            self.state.requests += 1
            self._dispatch(method, target, body, latency)

    def _fail(self, status: bytes) -> None:
        if self.transport is not None:
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()
        self.closed = True

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _dispatch(self, method: str, target: str, body: bytes, latency: float | None) -> None:
        path, _, query = target.partition("?")
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                req = _req_dec.decode(body)
            except msgspec.DecodeError:
                self._write(_response("400 Bad Request", b'{"error":{"message":"bad json"}}'))
                return
            self.busy = True
            asyncio.get_running_loop().create_task(self._complete(req, latency))
        elif method == "GET" and path == "/_stamps":
            tag = query.partition("tag=")[2].split("&")[0]
            sent = self.state.stamps.pop(tag, None)
            self._write(
                _response("200 OK", _enc.encode({"tag": tag, "sent_ns": sent or [], "tokens": TOKENS}))
            )
        elif method == "GET" and path == "/_stats":
            self._write(
                _response(
                    "200 OK", _enc.encode({"requests": self.state.requests, "streams": self.state.streams})
                )
            )
        elif method == "GET" and path.endswith("/models"):
            self._write(
                _response(
                    "200 OK", b'{"object":"list","data":[{"id":"fake","object":"model","owned_by":"bench"}]}'
                )
            )
        elif method == "GET" and path == "/healthz":
            self._write(_response("200 OK", b'{"ok":true}'))
        else:
            self._write(_response("404 Not Found", b'{"error":{"message":"not found"}}'))

    async def _complete(self, req: Request, latency: float | None) -> None:
        cfg = self.state.config
        latency_ms = cfg.latency_ms if latency is None else latency
        try:
            if latency_ms > 0:
                await asyncio.sleep(latency_ms / 1000)
            if not req.stream:
                self._write(_response("200 OK", _completion(req.model)))
                return
            self.state.streams += 1
            tag = _tag_of(req)
            stamps = self.state.stamp_slot(tag) if tag else None
            created = int(time.time())
            self._write(STREAM_HEAD + _chunk(req.model, created, {"role": "assistant", "content": ""}, None))
            for i, token in enumerate(TOKENS):
                if i and cfg.token_ms > 0:
                    await asyncio.sleep(cfg.token_ms / 1000)
                if self.closed:
                    return
                if stamps is not None:
                    stamps.append(time.monotonic_ns())
                self._write(_chunk(req.model, created, {"content": token}, None))
            self._write(_chunk(req.model, created, {}, "stop") + DONE)
        finally:
            self.busy = False
            if not self.closed and self.buf:
                self._next()


async def serve(host: str, port: int, config: Config) -> None:
    loop = asyncio.get_running_loop()
    state = State(config)
    server = await loop.create_server(lambda: HTTPProtocol(state), host, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream on http://{host}:{port} {config}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--token-ms", type=float, default=5.0)
    args = parser.parse_args(argv)
    config = Config(latency_ms=args.latency_ms, token_ms=args.token_ms)
    run_loop(serve(args.host, args.port, config))
    return 0


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    raise SystemExit(main())
