"""A lean HTTP/1.1 keep-alive transport for the model API, under httpx and the openai SDK.

httpx's own transport (httpcore over anyio) spent about 0.7 ms of CPU per model call on
this machine, and 1.7 ms of latency on an idle one, where a plain asyncio stream spends a
few tens of microseconds (``bench/transport.py``). Everything above the transport stays:
the SDK's auth, base URL and error types, httpx's request building and content decoding,
timeouts taken from the request, so the retry, Retry-After and breaker logic is unchanged.

What it does: HTTP/1.1 over TCP or TLS, keep-alive with a bounded pool per origin,
content-length, chunked and read-to-close bodies streamed as they arrive, one retry on a
fresh connection when a pooled one turns out to be closed before any byte of the answer
(the server never saw the request). Connection, read and write timeouts raise httpx's
own exceptions, so the SDK maps them as it always has.

What it does not: proxies and HTTP/2. When the environment sets a proxy for the model's
URL, ``model_transport`` leaves the choice to httpx, which honours it.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import httpx

READ_SIZE = 64 * 1024
MAX_HEAD = 64 * 1024
Origin = tuple[str, str, int]


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


def _timeouts(request: httpx.Request) -> tuple[float | None, float | None, float | None, float | None]:
    t: dict[str, float | None] = request.extensions.get("timeout", {})
    return t.get("connect"), t.get("read"), t.get("write"), t.get("pool")


class _Head:
    __slots__ = ("chunked", "headers", "keep_alive", "length", "reason", "status")

    def __init__(self, raw: bytes, method: bytes) -> None:
        lines = raw[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(f"malformed status line: {lines[0][:80]!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = parts[0] == b"HTTP/1.1"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise httpx.RemoteProtocolError("malformed header line")
            value = value.strip()
            self.headers.append((name, value))
            lname = name.lower()
            if lname == b"content-length":
                if not value.isdigit():
                    raise httpx.RemoteProtocolError("malformed Content-Length")
                self.length = int(value)
            elif lname == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif lname == b"connection":
                token = value.lower()
                if b"close" in token:
                    self.keep_alive = False
                elif b"keep-alive" in token:
                    self.keep_alive = True
        if method == b"HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self.length, self.chunked = 0, False
        elif self.length is None and not self.chunked:
            self.keep_alive = False  # the body runs to the end of the connection


class _Body(httpx.AsyncByteStream):
    """The answer's body, read from the connection as the caller iterates; the connection
    goes back to the pool only when the body was read to its end."""

    def __init__(
        self, pool: LeanTransport, origin: Origin, conn: _Conn, head: _Head, read: float | None
    ) -> None:
        self.pool, self.origin, self.conn, self.head, self.read_timeout = pool, origin, conn, head, read
        self.complete = head.length == 0
        self.released = False

    async def _read(self, coro: Any) -> bytes:
        try:
            async with asyncio.timeout(self.read_timeout):
                data: bytes = await coro
                return data
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out reading the model API's answer") from exc
        except asyncio.IncompleteReadError as exc:
            raise httpx.RemoteProtocolError("the model API closed the connection mid-answer") from exc
        except (ConnectionError, OSError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader, head = self.conn.reader, self.head
        if self.complete:
            return
        if head.chunked:
            while True:
                line = await self._read(reader.readuntil(b"\r\n"))
                try:
                    size = int(line.split(b";", 1)[0], 16)
                except ValueError as exc:
                    raise httpx.RemoteProtocolError("malformed chunk size") from exc
                if size == 0:
                    while await self._read(reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    self.complete = True
                    return
                data = await self._read(reader.readexactly(size + 2))
                yield data[:-2]
        elif head.length is not None:
            left = head.length
            while left:
                data = await self._read(reader.read(min(left, READ_SIZE)))
                if not data:
                    raise httpx.RemoteProtocolError("the model API closed the connection mid-answer")
                left -= len(data)
                yield data
            self.complete = True
        else:
            while data := await self._read(reader.read(READ_SIZE)):
                yield data
            self.complete = True

    async def aclose(self) -> None:
        if self.released:
            return
        self.released = True
        reuse = self.complete and self.head.keep_alive
        self.pool._release(self.origin, self.conn, reuse=reuse)


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int = 100, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_connections = max(1, max_connections)
        self._slots = asyncio.Semaphore(self.max_connections)
        self._idle: dict[Origin, list[_Conn]] = {}
        self._ssl = ssl_context
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _connect(self, origin: Origin, seconds: float | None) -> _Conn:
        scheme, host, port = origin
        try:
            async with asyncio.timeout(seconds):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._ssl_context() if scheme == "https" else None, limit=MAX_HEAD
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        return _Conn(reader, writer)

    def _pooled(self, origin: Origin) -> _Conn | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _release(self, origin: Origin, conn: _Conn, *, reuse: bool) -> None:
        if reuse and not self._closed and conn.usable():
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()
        self._slots.release()

    @staticmethod
    def _request_head(request: httpx.Request) -> bytes:
        url = request.url
        target = url.raw_path or b"/"
        lines = [request.method.encode() + b" " + target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in request.headers.raw]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _exchange(
        self, conn: _Conn, data: bytes, method: bytes, write: float | None, read: float | None
    ) -> _Head:
        conn.writer.write(data)
        try:
            async with asyncio.timeout(write):
                await conn.writer.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("timed out sending to the model API") from exc
        try:
            async with asyncio.timeout(read):
                raw = await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out waiting for the model API's answer") from exc
        except asyncio.LimitOverrunError as exc:
            raise httpx.RemoteProtocolError("the model API's response head is too large") from exc
        return _Head(raw, method)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the model API transport is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        origin: Origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        connect, read, write, pool = _timeouts(request)
        data = self._request_head(request) + await request.aread()
        method = request.method.encode()
        try:
            async with asyncio.timeout(pool):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free connection to the model API") from exc
        conn: _Conn | None = None
        try:
            while True:
                conn = self._pooled(origin)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(origin, connect)
                try:
                    head = await self._exchange(conn, data, method, write, read)
                    break
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    conn.close()
                    conn = None
                    nothing_read = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
                    if reused and nothing_read:
                        continue  # a pooled connection the server had closed: try a fresh one
                    raise httpx.RemoteProtocolError("the model API closed the connection") from exc
                except OSError as exc:
                    raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            self._slots.release()
            raise
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=_Body(self, origin, conn, head, read),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def proxied(url: str) -> bool:
    """Whether the environment routes ``url`` through a proxy (HTTP_PROXY, HTTPS_PROXY,
    ALL_PROXY, minus NO_PROXY), which only httpx's own transport knows how to use."""
    parsed = httpx.URL(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parsed.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parsed.host)


def model_transport(base_url: str | None, max_connections: int) -> LeanTransport | None:
    """The lean transport, or None (httpx builds its own, proxy included) when the
    environment routes the model's URL through a proxy."""
    if base_url and proxied(base_url):
        return None
    return LeanTransport(max_connections=max_connections)
