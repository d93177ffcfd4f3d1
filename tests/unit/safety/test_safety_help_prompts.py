"""Counselor-reviewed help messages in prompts/help/: format, variables, rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import msgspec
import pytest
import yaml
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from safety import Severity, resources_for

HELP = Path(__file__).resolve().parents[3] / "prompts" / "help"
FILES = sorted(HELP.glob("*.yaml"))
REQUIRED = {
    "help.danger",
    "help.danger.self_harm",
    "help.risk",
    "help.risk.self_harm",
    "help.author_of_harm",
    "help.concern",
    "help.held",
    "help.paused",
}
ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def test_required_messages_exist() -> None:
    assert {_load(p)["id"] for p in FILES} >= REQUIRED


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_template_format(path: Path) -> None:
    data = _load(path)
    assert set(data) == {"id", "description", "variables", "text", "examples"}
    assert path.name == f"{data['id']}.yaml"
    assert data["description"].strip() and "\n" not in data["description"].strip()
    used = meta.find_undeclared_variables(ENV.parse(data["text"]))
    assert used == set(data["variables"])
    assert data["examples"], "needs at least one example"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_examples_render(path: Path) -> None:
    data = _load(path)
    template = ENV.from_string(data["text"])
    for example in data["examples"]:
        out = template.render(**example)
        assert out.strip()
        for res in example.get("resources", []):
            assert res["name"] in out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_never_asks_for_details_or_blames(path: Path) -> None:
    text = _load(path)["text"].lower()
    for phrase in (
        "what happened?",
        "tell me more",
        "describe what",
        "describe it",
        "what did you do",
        "why did you",
    ):
        assert phrase not in text


def _render(msg_id: str, country: str, severity: Severity, cats: list[str]) -> str:
    data = _load(HELP / f"{msg_id}.yaml")
    resources = [msgspec.to_builtins(r) for r in resources_for(country, severity, cats)]
    from safety import country_name

    return ENV.from_string(data["text"]).render(country_name=country_name(country), resources=resources)


@pytest.mark.parametrize(
    ("msg_id", "cats"), [("help.danger", ["physical_abuse"]), ("help.danger.self_harm", ["self_harm"])]
)
def test_danger_lists_the_emergency_number_first(msg_id: str, cats: list[str]) -> None:
    out = _render(msg_id, "GB", Severity.DANGER, cats)
    first_line = next(line for line in out.splitlines() if line.strip().startswith("- "))
    assert "999" in first_line
    assert "safe" in out.lower()


@pytest.mark.parametrize("path", [p for p in FILES if p.name != "help.paused.yaml"], ids=lambda p: p.name)
def test_disclosure_messages_ask_if_safe_to_talk_or_suggest_help(path: Path) -> None:
    text = _load(path)["text"].lower()
    assert "safe" in text or "counselor" in text


def test_paused_message_reveals_nothing() -> None:
    text = _load(HELP / "help.paused.yaml")["text"].lower()
    for word in ("safe", "abuse", "danger", "help line", "your partner said", "disclos", "crisis"):
        assert word not in text
