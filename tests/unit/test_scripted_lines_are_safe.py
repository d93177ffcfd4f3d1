"""The offline client's scripted lines are what replaces an unsafe reply, so each must
itself pass the reply safety check (otherwise a replacement would be unsafe too)."""

from __future__ import annotations

import pytest

from coach.catalog import load_catalog
from safety import ScanContext, scan
from tests.conftest import ROOT

CATALOG = load_catalog(ROOT / "prompts")
LINES = [
    (
        exercise.id,
        step.id,
        CATALOG.render(step.template, CATALOG.step_context(exercise, i, partner_count=2), "scripted"),
    )
    for exercise in CATALOG.exercises.values()
    for i, step in enumerate(exercise.steps)
]


@pytest.mark.parametrize(("exercise_id", "step_id", "line"), LINES, ids=[f"{e}.{s}" for e, s, _ in LINES])
def test_scripted_line_passes_the_reply_check(exercise_id: str, step_id: str, line: str) -> None:
    for after_disclosure in (False, True):
        verdict = scan(line, ScanContext(source="reply", after_disclosure=after_disclosure))
        assert not verdict.is_disclosure, (exercise_id, step_id, verdict.signals)


def test_rewrite_scaffold_passes_the_reply_check() -> None:
    scaffold = CATALOG.render(CATALOG.rewrite, {}, "scaffold")
    assert not scan(scaffold, ScanContext(source="reply")).is_disclosure
