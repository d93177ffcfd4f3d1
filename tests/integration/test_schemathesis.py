"""Schemathesis against the live app: no server errors, no schema violations.

Two runs: the partner API with a partner token, and the review API with an admin
counselor's token. Every check runs except ``allow_header_conformance``: Litestar's
automatic OPTIONS answer lists only one handler's methods when a controller serves GET
and POST on the same path (noted in the issue, not worked around here).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer


def run_schemathesis(live_server: LiveServer, token: str, tmp_path: Path, *filters: str) -> str:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("schemathesis is not installed in the test environment")
    done = subprocess.run(
        [
            exe,
            "run",
            f"{live_server.url}/schema/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--exclude-checks",
            "allow_header_conformance",
            *filters,
            "--max-examples",
            "25",
            "--seed",
            "20261122",
            "--request-timeout",
            "20",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )
    tail = done.stdout[-6000:]
    assert done.returncode == 0, tail
    # It really exercised the API, and every generated case passed every check.
    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts is not None, tail
    assert int(counts[1]) == int(counts[2]) >= 100, tail
    return done.stdout


def test_partner_api_holds_its_contract_under_fuzzing(live_server: LiveServer, tmp_path: Path) -> None:
    token = httpx.post(f"{live_server.url}/v1/couples", json={"country": "GB"}).json()["token"]
    # Not the live stream (it never ends), not DELETE /v1/me (it would erase the test's own
    # partner half-way, leaving only 401s), not the review API (the next test's).
    out = run_schemathesis(
        live_server, token, tmp_path, "--exclude-path-regex", r"(/events|/v1/me)$|^/v1/review"
    )
    assert "Authentication failed" not in out


def test_review_api_holds_its_contract_under_fuzzing(live_server: LiveServer, tmp_path: Path) -> None:
    env = {**os.environ, **live_server.env}
    added = subprocess.run(
        [sys.executable, "-m", "coach.cli", "counselor", "add", "fuzzer", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    # Not the disable endpoint: the fuzzer would lock itself out.
    out = run_schemathesis(
        live_server,
        token,
        tmp_path,
        "--include-path-regex",
        r"^/v1/review",
        "--exclude-path-regex",
        r"/disable$",
    )
    assert "Authentication failed" not in out
