"""``python -m safety eval`` and the evaluation harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safety.cli import Served, main
from safety.evaluation import evaluate, format_table, load_cases, report_json


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


ROWS: list[dict[str, object]] = [
    {"text": "he choked me", "expected": "danger", "categories": ["physical_abuse"]},
    {"text": "he hits me", "expected": "risk", "categories": ["physical_abuse"]},
    {"text": "she beat me at chess", "expected": "none", "categories": []},
    {"text": "we went for a walk", "expected": "none", "categories": []},
    {"text": "my bf is lovely", "expected": "risk", "categories": ["stalking"]},
]


def test_report_figures(tmp_path: Path) -> None:
    report = evaluate(load_cases(_write(tmp_path / "c.jsonl", ROWS)))
    assert report.cases == 5
    assert report.recall_risk_or_danger == pytest.approx(2 / 3)
    assert report.recall_danger == 1.0
    assert report.false_positive_rate == 0.0
    assert report.precision == 1.0
    assert report.per_category == {"physical_abuse": 1.0, "stalking": 0.0}
    assert report.confusion["risk"]["none"] == 1
    assert [m.kind for m in report.misses] == ["missed"]
    assert report.median_us > 0 and report.p99_us >= report.median_us
    assert "recall danger" in format_table(report)
    assert report_json(report)["cases"] == 5


def test_cli_json_last_line_is_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "c.jsonl", ROWS)
    assert main(["eval", str(path), "--format", "json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    data = json.loads(last)
    for key in (
        "cases",
        "recall_risk_or_danger",
        "recall_danger",
        "false_positive_rate",
        "precision",
        "per_category",
        "median_us",
        "p99_us",
    ):
        assert key in data


def test_cli_table_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(_write(tmp_path / "c.jsonl", ROWS))]) == 0
    assert "recall risk-or-danger" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": 1}\n', encoding="utf-8")
    assert main(["eval", str(bad)]) == 2
    assert main(["eval", str(tmp_path / "missing.jsonl")]) == 2


def test_eval_with_the_classifier_counts_what_it_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safety import Classification, Severity

    asked: list[list[str]] = []

    def classify(texts: list[str]) -> dict[str, Classification | None]:
        asked.append(texts)
        return {t: Classification(Severity.RISK, ("stalking",)) if "bf" in t else None for t in texts}

    path = _write(tmp_path / "c.jsonl", ROWS)
    assert main(["eval", str(path), "--format", "json", "--classifier"], classify=classify) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["second_stage"] is True
    assert data["recall_risk_or_danger"] == 1.0  # "my bf is lovely" is now caught
    assert data["per_category"]["stalking"] == 1.0
    # Only texts the lexicon does not flag are sent, each once.
    assert asked == [["she beat me at chess", "we went for a walk", "my bf is lovely"]]


def test_eval_classifier_needs_the_coach(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "c.jsonl", ROWS)
    assert main(["eval", str(path), "--classifier"]) == 2
    assert "coach safety eval" in capsys.readouterr().err


def test_eval_lowers_as_the_coach_does_by_default_and_not_with_no_lowers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--learned` (needs `make model`) lowers as the coach does by default since round
    thirty-eight: the figure of speech the lexicon raises to risk is lowered, the
    strangulation disclosure is not (no danger is); `--no-lowers` keeps the lexicon's
    alarm; `--lowers` with another system is refused."""
    rows: list[dict[str, object]] = [
        {
            "text": "Board game night: she sacrificed her rook purely to humiliate me, and it worked.",
            "expected": "none",
            "categories": [],
        },
        {
            "text": "He put his hands around my neck last night and squeezed until I saw stars.",
            "expected": "danger",
            "categories": ["physical_abuse"],
        },
    ]
    path = _write(tmp_path / "c.jsonl", rows)
    figures = {}
    for flags in (["--learned"], ["--learned", "--lowers"], ["--learned", "--no-lowers"]):
        assert main(["eval", str(path), "--format", "json", *flags]) == 0
        data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        figures[" ".join(flags)] = (data["false_positive_rate"], data["recall_danger"])
    assert figures == {
        "--learned": (0.0, 1.0),
        "--learned --lowers": (0.0, 1.0),
        "--learned --no-lowers": (1.0, 1.0),
    }
    assert main(["eval", str(path), "--format", "json"], served=Served(lowers=False)) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["false_positive_rate"] == 1.0
    assert main(["eval", str(path), "--lexicon", "--lowers"]) == 2
    assert "learned stage's rule" in capsys.readouterr().err
    assert main(["eval", str(path), "--lowers"], served=Served(learned=False)) == 2
    assert "stage is off" in capsys.readouterr().err


#: The lexicon misses the first (a threat to kill told without a kill word); the stage
#: reads it as danger.
SERVED_ROWS: list[dict[str, object]] = [
    {
        "text": "He said tonight would be my last night on earth.",
        "expected": "danger",
        "categories": ["threats"],
    },
    {"text": "he choked me", "expected": "danger", "categories": ["physical_abuse"]},
    {
        "text": "We walked the dog along the canal and talked about the summer.",
        "expected": "none",
        "categories": [],
    },
]


def _last_json(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, object], str]:
    captured = capsys.readouterr()
    return json.loads(captured.out.strip().splitlines()[-1]), captured.err


def test_eval_measures_what_the_coach_serves_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a flag the figures are the served system's (lexicon + learned stage with
    lowering; needs `make model`), the same as `--learned`; `--no-lowers` the stage
    raising only; `--lexicon` the lexicon's alone. The stage reads no text the lexicon
    found at danger (it can neither raise nor lower one)."""
    path = _write(tmp_path / "c.jsonl", SERVED_ROWS)
    runs = {}
    for flags in ([], ["--learned"], ["--no-lowers"], ["--lexicon"]):
        assert main(["eval", str(path), "--format", "json", *flags]) == 0
        data, _ = _last_json(capsys)
        runs[" ".join(flags)] = (data["system"], data["recall_danger"], data["stage_texts"])
    assert runs == {
        "": ("lexicon + learned stage + lowering", 1.0, 2),
        "--learned": ("lexicon + learned stage + lowering", 1.0, 2),
        "--no-lowers": ("lexicon + learned stage", 1.0, 2),
        "--lexicon": ("lexicon", 0.5, 0),
    }
    assert main(["eval", str(path)]) == 0
    table = capsys.readouterr().out
    assert "system                lexicon + learned stage + lowering" in table
    assert "learned stage         2 texts read" in table


def test_eval_falls_back_to_the_lexicon_as_the_coach_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stage that cannot load leaves the lexicon, as in the coach, and stderr says so;
    `--learned` insists on it; a coach with the stage off is measured without it."""
    path = _write(tmp_path / "c.jsonl", SERVED_ROWS)
    empty = tmp_path / "no-model"
    empty.mkdir()
    assert main(["eval", str(path), "--format", "json"], served=Served(model_dir=empty)) == 0
    data, err = _last_json(capsys)
    assert (data["system"], data["recall_danger"]) == ("lexicon", 0.5)
    assert "measuring the lexicon alone" in err and "make model" in err
    assert main(["eval", str(path), "--learned"], served=Served(model_dir=empty)) == 2
    assert "encoder_int8.onnx is missing" in capsys.readouterr().err
    assert main(["eval", str(path), "--format", "json"], served=Served(learned=False)) == 0
    data, err = _last_json(capsys)
    assert (data["system"], data["recall_danger"], err) == ("lexicon", 0.5, "")
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(path), "--lexicon", "--learned"])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err
