"""The safety layer meets its targets on the shared dev set and on the project's own cases.

Targets (design: "Safety policy"): recall for risk-or-danger >= 0.97, recall for danger
>= 0.95, false-positive rate <= 0.03 - plus per-category floors so one category cannot
collapse silently while the totals still look fine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safety.evaluation import Report, evaluate, load_cases
from safety.severity import Severity
from safety.verdict import CATEGORIES, UNSAFE_REPLY

REPO = Path(__file__).resolve().parents[3]
SETS = {
    "shared_dev": REPO / "../shared/eval/safety_dev.jsonl",
    "own_dev": REPO / "tests/safety_cases/dev_cases.jsonl",
    "dev_more": REPO / "tests/safety_cases/dev_more.jsonl",
}
CATEGORY_FLOOR = 0.85
#: training sets tuned on (written independently of the detector): they meet the totals
#: targets and must not regress; their per-category floors are not met yet (multi-label
#: cases often get one category of several), so only the totals are asserted for them
TRAIN_SETS = {
    "train_nov22": REPO / "tests/safety_cases/train_nov22.jsonl",
    "train_b": REPO / "tests/safety_cases/train_b.jsonl",
}


def _evaluate(path: Path) -> Report:
    """The set's report; a missing set fails in CI (shared/ is beside the clone there) and
    is skipped only on a machine without it."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing (CI has shared/ beside the clone)")
        pytest.skip(f"{path} is not available")
    return evaluate(load_cases(path))


@pytest.fixture(scope="module", params=sorted(SETS))
def report(request: pytest.FixtureRequest) -> Report:
    return _evaluate(SETS[request.param])


def _misses(report: Report, kind: str) -> str:
    return "\n".join(m.text[:200] for m in report.misses if m.kind == kind)


def test_recall_risk_or_danger(report: Report) -> None:
    assert report.recall_risk_or_danger >= 0.97, _misses(report, "missed")


def test_recall_danger(report: Report) -> None:
    assert report.recall_danger >= 0.95, _misses(report, "under_danger")


def test_false_positive_rate(report: Report) -> None:
    assert report.false_positive_rate <= 0.03, _misses(report, "false_alarm")


def test_every_category_has_a_floor(report: Report) -> None:
    low = {c: v for c, v in report.per_category.items() if v < CATEGORY_FLOOR}
    assert not low, f"categories under {CATEGORY_FLOOR}: {low}"


def test_sets_are_big_enough_to_mean_something(report: Report) -> None:
    assert report.positives >= 30
    assert report.negatives >= 30


def test_own_dev_set_covers_what_the_brief_asks() -> None:
    cases = load_cases(SETS["own_dev"])
    negatives = [c for c in cases if c.expected.value == "none"]
    assert len(cases) >= 400
    assert len(negatives) >= 200
    assert sum(len(c.text) >= 1500 for c in cases) >= 5
    seen = {(cat, c.expected.value) for c in cases for cat in c.categories}
    for cat in (
        "physical_abuse",
        "sexual_coercion",
        "coercive_control",
        "emotional_abuse",
        "threats",
        "stalking",
        "child_safety",
        "self_harm",
        "harm_to_others",
    ):
        assert (cat, "risk") in seen or (cat, "danger") in seen, cat


@pytest.fixture(scope="module", params=sorted(TRAIN_SETS))
def train_report(request: pytest.FixtureRequest) -> Report:
    return _evaluate(TRAIN_SETS[request.param])


def test_training_sets_hold_their_totals(train_report: Report) -> None:
    assert train_report.recall_risk_or_danger >= 0.97, _misses(train_report, "missed")
    assert train_report.recall_danger >= 0.95, _misses(train_report, "under_danger")
    assert train_report.false_positive_rate <= 0.03, _misses(train_report, "false_alarm")


def test_everyday_exercise_messages_do_not_raise_the_alarm() -> None:
    """Ordinary exercise traffic ("a bit invisible since the baby came") stays below risk:
    every false alarm pauses a couple's exercise."""
    report = evaluate(load_cases(REPO / "tests/safety_cases/everyday.jsonl"))
    assert report.negatives >= 300 and report.positives == 0
    assert report.false_positive_rate <= 0.01, _misses(report, "false_alarm")


@pytest.mark.parametrize("path", sorted((REPO / "tests/safety_cases").glob("*.jsonl")), ids=lambda p: p.name)
def test_every_case_file_reads_and_is_labelled_consistently(path: Path) -> None:
    # `coach safety eval` reads every set the project keeps, the unseen ones included
    # (only their format is checked here: asserting their figures would invite tuning)
    cases = load_cases(path)
    assert len(cases) >= 50
    known = set(CATEGORIES) - {UNSAFE_REPLY}  # a reply check's category, never a case label
    for case in cases:
        assert case.expected in (Severity.NONE, Severity.RISK, Severity.DANGER), case.text[:60]
        assert (case.expected is Severity.NONE) == (not case.categories), case.text[:60]
        assert set(case.categories) <= known, case.text[:60]
