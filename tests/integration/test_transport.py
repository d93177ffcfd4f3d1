"""The model API's lean HTTP/1.1 transport (coach/transport.py) against real sockets: a
scripted asyncio server decides the framing, the timing and when connections close."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from coach.model import CircuitBreaker, ModelRequest, ModelUnavailable, OpenAIClient
from coach.transport import LeanTransport, model_transport

Respond = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]  # -> keep the connection


class Server:
    """Reads each request (head and content-length body) and lets ``respond`` answer it."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                if not await self.respond(len(self.requests), head + body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ssl_context)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Respond], Awaitable[tuple[Server, str]]]]:
    servers: list[Server] = []

    async def start(respond: Respond) -> tuple[Server, str]:
        server = Server(respond)
        port = await server.start()
        servers.append(server)
        return server, f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop()


def answer(body: bytes, *extra: bytes, status: bytes = b"200 OK") -> bytes:
    head = [b"HTTP/1.1 " + status, b"content-type: application/json", b"content-length: %d" % len(body)]
    return b"\r\n".join([*head, *extra]) + b"\r\n\r\n" + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def json_ok(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(b'{"n": %d}' % n))
    await writer.drain()
    return True


async def test_answers_and_reuses_one_connection(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    server, url = await serve(json_ok)
    async with httpx.AsyncClient(transport=LeanTransport()) as http:
        first = await http.post(url + "/v1/chat/completions", content=b'{"a": 1}')
        second = await http.post(url + "/v1/chat/completions", content=b'{"a": 2}')
    assert (first.status_code, first.json(), second.json()) == (200, {"n": 1}, {"n": 2})
    assert server.connections == 1
    assert server.requests[1].endswith(b'{"a": 2}')
    assert b"host: 127.0.0.1:" in server.requests[0].lower()


async def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    async def answer_then_hang_up(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        await json_ok(n, request, writer)
        return False  # the server closes the idle keep-alive connection

    server, url = await serve(answer_then_hang_up)
    async with httpx.AsyncClient(transport=LeanTransport()) as http:
        assert (await http.post(url + "/x", content=b"1")).json() == {"n": 1}
        await asyncio.sleep(0.05)
        assert (await http.post(url + "/x", content=b"2")).json() == {"n": 2}
    assert server.connections == 2


async def test_a_reused_connection_dropped_before_any_answer_is_retried_once_on_a_fresh_one(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    async def drop_the_second(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False  # read it, close without a byte of answer
        return await json_ok(n, request, writer)

    server, url = await serve(drop_the_second)
    async with httpx.AsyncClient(transport=LeanTransport()) as http:
        assert (await http.post(url + "/x", content=b"1")).json() == {"n": 1}
        assert (await http.post(url + "/x", content=b"2")).json() == {"n": 3}
    assert server.connections == 2


async def test_connection_close_is_honoured(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    async def close_after(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"{}", b"connection: close"))
        await writer.drain()
        await asyncio.sleep(0.2)  # the server has not closed yet: the client must not reuse
        return False

    server, url = await serve(close_after)
    async with httpx.AsyncClient(transport=LeanTransport()) as http:
        await http.post(url + "/x", content=b"1")
        await http.post(url + "/x", content=b"2")
    assert server.connections == 2


async def test_a_chunked_stream_arrives_piece_by_piece(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    go_on = asyncio.Event()

    async def sse(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(chunk(b"data: one\n\n"))
        await writer.drain()
        await go_on.wait()
        writer.write(chunk(b"data: two\n\n") + b"0\r\n\r\n")
        await writer.drain()
        return True

    server, url = await serve(sse)
    async with httpx.AsyncClient(transport=LeanTransport()) as http:
        async with http.stream("POST", url + "/x", content=b"{}") as response:
            lines = response.aiter_lines()
            assert await anext(lines) == "data: one"  # before the server sends the rest
            go_on.set()
            rest = [line async for line in lines if line]
        assert rest == ["data: two"]
        assert (await http.post(url + "/x", content=b"{}")).status_code == 200
    assert server.connections == 1  # read to its end: the connection went back to the pool


async def test_an_abandoned_stream_closes_its_connection_and_frees_its_slot(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    async def endless(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(200):
                writer.write(chunk(b"data: more\n\n"))
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            return False
        return False

    server, url = await serve(endless)
    async with httpx.AsyncClient(transport=LeanTransport(max_connections=1)) as http:
        async with http.stream("POST", url + "/x", content=b"{}") as response:
            async for _ in response.aiter_lines():
                break
        # one connection allowed: a second request only gets through if the slot was freed
        async with asyncio.timeout(2), http.stream("POST", url + "/x", content=b"{}") as response:
            async for _ in response.aiter_lines():
                break
    assert server.connections == 2


async def test_timeouts_and_failures_raise_httpx_errors(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    async def silent(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async def cut_short(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b'{"choices": [')[:-3])
        await writer.drain()
        return False

    _, slow = await serve(silent)
    _, short = await serve(cut_short)
    async with httpx.AsyncClient(transport=LeanTransport(), timeout=0.3) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await http.post(slow + "/x", content=b"{}")
        assert time.monotonic() - started < 2
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(short + "/x", content=b"{}")
        closed = socket_port_nobody_listens_on()
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{closed}/x", content=b"{}")


def socket_port_nobody_listens_on() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_gzip_answers_are_decoded(serve: Callable[[Respond], Awaitable[tuple[Server, str]]]) -> None:
    async def gz(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(gzip.compress(b'{"ok": true}'), b"content-encoding: gzip"))
        await writer.drain()
        return True

    _, url = await serve(gz)
    async with httpx.AsyncClient(transport=LeanTransport()) as http:
        assert (await http.post(url + "/x", content=b"{}")).json() == {"ok": True}


async def test_the_model_client_over_it_retries_a_429_then_answers(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    async def busy_then_ok(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(
                answer(b'{"error": "slow down"}', b"retry-after: 0", status=b"429 Too Many Requests")
            )
        else:
            writer.write(answer(b'{"choices": [{"message": {"content": "Hello both."}}], "model": "m"}'))
        await writer.drain()
        return True

    server, url = await serve(busy_then_ok)
    client = OpenAIClient(
        base_url=url + "/v1", api_key="k", model="m", request_timeout=2, breaker=CircuitBreaker(5, 5)
    )
    reply = await client.complete(
        ModelRequest(messages=({"role": "user", "content": "hi"},), scripted="-"),
        deadline=time.monotonic() + 5,
    )
    await client.aclose()
    assert reply.text == "Hello both."
    assert len(server.requests) == 2 and server.connections == 1
    assert b"authorization: bearer k" in server.requests[0].lower()
    assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1")


async def test_a_client_error_is_not_retried(
    serve: Callable[[Respond], Awaitable[tuple[Server, str]]],
) -> None:
    async def bad(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b'{"error": {"message": "bad model"}}', status=b"400 Bad Request"))
        await writer.drain()
        return True

    server, url = await serve(bad)
    client = OpenAIClient(
        base_url=url + "/v1", api_key="k", model="m", request_timeout=2, breaker=CircuitBreaker(5, 5)
    )
    with pytest.raises(ModelUnavailable, match="APIStatusError"):
        await client.complete(
            ModelRequest(messages=({"role": "user", "content": "hi"},), scripted="-"),
            deadline=time.monotonic() + 5,
        )
    await client.aclose()
    assert len(server.requests) == 1


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("the openssl command is missing (CI must test TLS)")
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_with_a_verified_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = Server(json_ok)
    port = await server.start(server_ctx)
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(transport=LeanTransport(ssl_context=trusting)) as http:
            assert (await http.post(f"https://127.0.0.1:{port}/x", content=b"{}")).json() == {"n": 1}
        async with httpx.AsyncClient(transport=LeanTransport()) as http:  # system CAs: refused
            with pytest.raises(httpx.ConnectError):
                await http.post(f"https://127.0.0.1:{port}/x", content=b"{}")
    finally:
        await server.stop()


def test_a_proxy_in_the_environment_hands_the_model_url_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(model_transport("https://api.example.com/v1", 10), LeanTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert model_transport("https://api.example.com/v1", 10) is None
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    assert isinstance(model_transport("https://api.example.com/v1", 10), LeanTransport)
