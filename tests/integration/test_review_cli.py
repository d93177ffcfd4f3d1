"""`coach counselor add` and `coach templates export-approvals` against a real redis-server."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from coach.approvals import load_approvals
from coach.catalog import load_catalog
from coach.review_cli import check, main
from coach.reviews import ReviewStore
from coach.store import Store
from tests.conftest import ROOT, RedisServer


@pytest.fixture
def redis_env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COACH_REDIS_URL", redis_server.url)

    async def flush() -> None:
        client: aioredis.Redis = aioredis.from_url(redis_server.url)
        await client.flushdb()
        await client.aclose()

    asyncio.run(flush())
    return redis_server.url


def test_counselor_add_prints_a_working_token_once(
    redis_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["counselor", "add", "Dana", "--role", "admin"]) == 0
    out = capsys.readouterr().out
    token = re.search(r"^(cr_\S+)$", out, re.M)
    assert token is not None, out

    async def lookup() -> tuple[str, str, list[str]]:
        client: aioredis.Redis = aioredis.from_url(redis_env, decode_responses=True)
        reviews = ReviewStore(Store(client, retention_seconds=60))
        found = await reviews.counselor_by_token(token.group(1))
        audit = await reviews.audit_log()
        await client.aclose()
        assert found is not None
        return found.name, found.role, [e.action for e in audit]

    assert asyncio.run(lookup()) == ("Dana", "admin", ["counselor.add"])
    assert main(["counselor", "list"]) == 0
    listed = capsys.readouterr().out
    assert "Dana" in listed and token.group(1) not in listed


def test_export_approvals_writes_what_counselors_approved(redis_env: str, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    catalog = load_catalog(prompts)

    async def approve() -> None:
        client: aioredis.Redis = aioredis.from_url(redis_env, decode_responses=True)
        reviews = ReviewStore(Store(client, retention_seconds=60))
        dana, _ = await reviews.add_counselor("Dana", "counselor")
        await reviews.decide(dana, catalog.system, "approved", "fine")
        await reviews.decide(dana, catalog.rewrite, "changes_requested", "shorter")
        await client.aclose()

    asyncio.run(approve())
    out = io.StringIO()
    assert main(["templates", "export-approvals", "--prompts-dir", str(prompts)], out=out) == 0
    written = load_approvals(prompts)
    assert [(a.template, a.version, a.by) for a in written] == [("system", catalog.system.version, "Dana")]
    assert check(prompts, strict=False, out=io.StringIO()) == 0
    assert check(prompts, strict=True, out=io.StringIO()) == 1
