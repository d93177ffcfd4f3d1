"""The docs tell the truth: the committed OpenAPI schema, the error list, the client example."""

from __future__ import annotations

import os
import subprocess
import sys

from coach.api.problems import PROBLEMS
from coach.cli import openapi_text
from tests.conftest import ROOT, LiveServer


def test_committed_openapi_matches_the_code() -> None:
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == openapi_text(), "run `make openapi` and commit docs/openapi.json"


def test_every_problem_type_is_documented() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    for slug, (status, _title) in PROBLEMS.items():
        assert f"| `/problems/{slug}` | {status} |" in text, slug


def test_the_client_example_runs(live_server: LiveServer) -> None:
    env = {**os.environ, "COACH_URL": live_server.url}
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs/examples/client.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "model=offline" in done.stdout
    assert "partner B sees 2 messages" in done.stdout
