"""A tiny OpenAI-compatible upstream on a real loopback port, for tests that need a real
network peer (client disconnects, cross-process streaming). It records what it saw."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import uvicorn

from tests.conftest import free_port


class SlowStreamUpstream:
    """Streams ``pieces`` one every ``pace`` seconds; notes when a stream was abandoned."""

    def __init__(self, pieces: list[str], pace: float = 0.2) -> None:
        self.pieces = pieces
        self.pace = pace
        self.port = free_port()
        self.started = threading.Event()
        self.abandoned = threading.Event()
        self.abandoned_at: float | None = None
        self.requests = 0
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        self.started.set()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.abandoned_at = time.monotonic()
            self.abandoned.set()

        watcher = asyncio.create_task(watch())
        try:
            for piece in self.pieces:
                if self.abandoned.is_set():
                    return
                chunk = {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "slow",
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                body = f"data: {json.dumps(chunk)}\n\n".encode()
                await send({"type": "http.response.body", "body": body, "more_body": True})
                await asyncio.sleep(self.pace)
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        finally:
            watcher.cancel()

    def start(self) -> SlowStreamUpstream:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
