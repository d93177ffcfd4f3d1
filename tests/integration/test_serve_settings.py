"""``coach serve`` as a real process with the folders the container image sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from safety.learned import DEFAULT_MODEL_DIR
from tests.conftest import LiveServer, RedisServer

ROOT = Path(__file__).resolve().parents[2]


def test_the_coach_serves_with_the_images_folders_set(redis_server: RedisServer, tmp_path: Path) -> None:
    """The Dockerfile sets COACH_PROMPTS_DIR and COACH_SAFETY_MODEL_DIR: with both set (to
    this checkout's folders, copied elsewhere) `coach serve` starts, reads its templates
    from there and loads the learned stage from there."""
    env_line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if "COACH_PROMPTS_DIR" in line
    )
    names = {pair.split("=", 1)[0] for pair in env_line.removeprefix("ENV ").split()}
    assert {"COACH_PROMPTS_DIR", "COACH_SAFETY_MODEL_DIR"} <= names
    prompts = shutil.copytree(ROOT / "prompts", tmp_path / "prompts")
    model = shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "safety-model")
    server = LiveServer(
        redis_server.url, COACH_PROMPTS_DIR=str(prompts), COACH_SAFETY_MODEL_DIR=str(model)
    ).start()
    try:
        ready = httpx.get(server.url + "/readyz", timeout=5).json()
        exercises = httpx.get(server.url + "/v1/exercises", timeout=5)
    finally:
        server.stop()
    assert ready["safety_learned"] == "on"
    assert exercises.status_code == 200 and len(exercises.json()) > 0
