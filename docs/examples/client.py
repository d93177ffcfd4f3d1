"""A minimal Coach API client: pair two partners, start an exercise, stream a reply.

Run against a running coach (``make run``):  python docs/examples/client.py
(or COACH_URL=http://host:port python docs/examples/client.py). Needs only httpx.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator

import httpx

BASE = os.environ.get("COACH_URL", "http://127.0.0.1:8000")


def post(
    client: httpx.Client, path: str, body: dict[str, object], token: str | None = None
) -> dict[str, object]:
    """POST with an Idempotency-Key, retried on 409 turn-in-progress / 429 / 503."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for _attempt in range(5):
        response = client.post(path, json=body, headers=headers)
        if response.status_code in (409, 429, 503) and "retry-after" in response.headers:
            # Same key: if the first try did go through, the retry returns its result.
            import time

            time.sleep(float(response.headers["retry-after"]))
            continue
        if response.is_error:
            problem = response.json()  # application/problem+json
            raise RuntimeError(f"{problem['type']}: {problem['detail']}")
        return dict(response.json())
    raise RuntimeError("gave up after retries")


def stream_reply(
    client: httpx.Client, session_id: str, token: str, text: str
) -> Iterator[tuple[str, dict[str, object]]]:
    """Send a message and yield (event, data) as the coach's reply streams in."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "text/event-stream",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    with client.stream(
        "POST", f"/v1/sessions/{session_id}/messages", json={"text": text}, headers=headers
    ) as response:
        response.raise_for_status()
        event, data = "", ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and event:
                yield event, json.loads(data)
                event, data = "", ""


def main() -> int:
    with httpx.Client(base_url=BASE, timeout=60) as client:
        first = post(client, "/v1/couples", {"display_name": "Robin", "country": "GB"})
        second = post(client, "/v1/couples/join", {"invite_code": first["invite_code"], "display_name": "Jo"})
        token_a, token_b = str(first["token"]), str(second["token"])
        session = post(client, "/v1/sessions", {"exercise_id": "rose-bud-thorn"}, token_a)
        sid = str(session["session_id"])
        print(f"step {session['step']['number']}: {session['step']['invite']}")  # type: ignore[index]
        for event, data in stream_reply(
            client, sid, token_a, "Rose: a slow breakfast\nBud: the trip\nThorn: a long commute"
        ):
            if event == "delta":
                print(data["text"], end="", flush=True)
            elif event == "replace":
                print("\n[replaced]", data["text"])
            elif event == "done":
                reply = data["reply"]
                print(f"\n-- model={reply['model']} template={reply['template']}")  # type: ignore[index]
        transcript = client.get(
            f"/v1/sessions/{sid}/messages", headers={"Authorization": f"Bearer {token_b}"}
        ).json()
        print(f"partner B sees {len(transcript['messages'])} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
