"""`coach templates check`: renders every example; stale approvals fail; --strict needs approvals."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import yaml

from coach.catalog import load_catalog
from coach.review_cli import check, main

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    target = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", target)
    return target


def run(prompts: Path, *, strict: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = check(prompts, strict=strict, out=out)
    return code, out.getvalue()


def write_approvals(prompts: Path, entries: list[dict[str, str]]) -> None:
    (prompts / "approvals.yaml").write_text(yaml.safe_dump({"approvals": entries}), encoding="utf-8")


def approval(template: str, version: str) -> dict[str, str]:
    return {
        "template": template,
        "version": version,
        "decision": "approved",
        "by": "Dana",
        "at": "2025-01-02T03:04:05Z",
    }


def test_the_committed_prompts_pass_and_nothing_is_approved_yet() -> None:
    code, out = run(ROOT / "prompts")
    assert code == 0, out
    assert "TEMPLATE" in out and "VERSION" in out and "RESULT" in out
    assert "none (draft)" in out


def test_strict_fails_when_a_template_has_no_approval(prompts: Path) -> None:
    code, out = run(prompts, strict=True)
    assert code == 1
    assert "no approval for the current text" in out
    catalog = load_catalog(prompts)
    write_approvals(prompts, [approval(t.id, t.version) for t in catalog.templates()])
    code, out = run(prompts, strict=True)
    assert code == 0, out
    assert "approved by Dana 2025-01-02" in out


def test_a_stale_approval_fails(prompts: Path) -> None:
    system = load_catalog(prompts).system
    write_approvals(prompts, [approval("system", system.version)])
    assert run(prompts)[0] == 0
    path = prompts / "system.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("text: |\n", "text: |\n  Be kind.\n", 1), encoding="utf-8")
    assert load_catalog(prompts).system.version != system.version
    code, out = run(prompts)
    assert code == 1
    assert "STALE" in out
    assert f"approves {system.version}" in out


def test_an_approval_of_a_template_that_no_longer_exists_fails(prompts: Path) -> None:
    write_approvals(prompts, [approval("gone.template", "0123456789ab")])
    code, out = run(prompts)
    assert code == 1
    assert "no longer exists" in out


def test_a_rendering_failure_fails(prompts: Path) -> None:
    path = prompts / "exercises" / "rose-bud-thorn.yaml"
    text = path.read_text(encoding="utf-8")
    broken = text.replace(
        '- {step_number: 1, step_count: 3, step_title: "Share your rose, bud and thorn", together: true}',
        "- {step_number: 1, step_count: 3, together: true}",
        1,
    )
    assert broken != text
    path.write_text(broken, encoding="utf-8")
    code, out = run(prompts)
    assert code == 1
    assert "FAIL" in out
    assert "rose-bud-thorn.yaml" in out


def test_the_command_line(
    prompts: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COACH_REDIS_URL", raising=False)
    assert main(["templates", "check", "--prompts-dir", str(prompts)]) == 0
    assert main(["templates", "check", "--strict", "--prompts-dir", str(prompts)]) == 1
    capsys.readouterr()
    assert main(["counselor", "add", "Dana"]) == 2
    assert "persistent store" in capsys.readouterr().err
