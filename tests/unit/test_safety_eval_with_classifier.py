"""``coach safety eval FILE --classifier``: the lexicon plus the configured model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from coach.cli import main
from tests.conftest import UPSTREAM, chat_completion

ROWS = [
    {"text": "he choked me", "expected": "danger", "categories": ["physical_abuse"]},
    {
        "text": "He said tonight would be my last night on earth.",
        "expected": "danger",
        "categories": ["threats"],
    },
    {"text": "we went for a walk", "expected": "none", "categories": []},
]


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n", encoding="utf-8")
    return path


def _answer(request: httpx.Request) -> httpx.Response:
    text = json.loads(request.content)["messages"][-1]["content"]
    severity, categories = ("danger", ["threats"]) if "last night" in text else ("none", [])
    return httpx.Response(
        200, json=chat_completion(json.dumps({"severity": severity, "categories": categories}))
    )


def test_the_model_raises_what_the_lexicon_missed(
    cases: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COACH_MODEL_BASE_URL", UPSTREAM)
    with respx.mock(using="coach") as mock:
        route = mock.post(f"{UPSTREAM}/chat/completions").mock(side_effect=_answer)
        assert main(["safety", "eval", str(cases), "--format", "json", "--lexicon"]) == 0
        without = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert route.call_count == 0
        assert main(["safety", "eval", str(cases), "--format", "json", "--classifier"]) == 0
        captured = capsys.readouterr()
    with_model = json.loads(captured.out.strip().splitlines()[-1])
    assert without["recall_danger"] == 0.5 and without["second_stage"] is False
    assert with_model["recall_danger"] == 1.0 and with_model["second_stage"] is True
    assert with_model["system"] == "lexicon + model classifier"
    assert with_model["false_positive_rate"] == 0.0
    assert route.call_count == 2  # "he choked me" is a lexicon disclosure: not sent
    assert "0 failed" in captured.err


def test_without_a_model_api_it_says_what_is_missing(
    cases: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("COACH_MODEL_BASE_URL", "OPENAI_API_KEY", "COACH_MODEL_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert main(["safety", "eval", str(cases), "--classifier"]) == 2
    assert "COACH_MODEL_BASE_URL" in capsys.readouterr().err


def test_coach_safety_eval_follows_the_coach_settings(
    cases: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`coach safety eval` measures the stage the coach's settings serve: on by default (needs
    `make model`), off with COACH_SAFETY_LEARNED=false, the lexicon alone when
    COACH_SAFETY_MODEL_DIR holds no encoder; lowering by default since round thirty-eight,
    not with COACH_SAFETY_LEARNED_LOWERS=false."""
    systems = []
    for env in (
        {},
        {"COACH_SAFETY_LEARNED": "false"},
        {"COACH_SAFETY_MODEL_DIR": str(tmp_path)},
        {"COACH_SAFETY_LEARNED_LOWERS": "false"},
    ):
        for var in ("COACH_SAFETY_LEARNED", "COACH_SAFETY_MODEL_DIR", "COACH_SAFETY_LEARNED_LOWERS"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        assert main(["safety", "eval", str(cases), "--format", "json"]) == 0
        data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        systems.append((data["system"], data["recall_danger"]))
    assert systems == [
        ("lexicon + learned stage + lowering", 1.0),
        ("lexicon", 0.5),
        ("lexicon", 0.5),
        ("lexicon + learned stage", 1.0),
    ]
