"""The learned stage's opt-in lowering rule (``safety.lower``, ``COACH_SAFETY_LEARNED_LOWERS``;
round twenty-two): off unless switched on; when on, a lexicon verdict of risk on a text
the stage is sure about becomes concern, keeps the lexicon's signals for counselors, and
still adds up over a session. A danger is never lowered, however sure the stage is (since
session twenty-nine: on real published writing the stage was sure of explicit suicide
intent, bench/real_text/). Real disclosures are never lowered.

The tests that load the stage need the built encoder (`make model`, which `make test` runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from safety import (
    Classification,
    Severity,
    accumulate,
    combine,
    lower,
    lowered_from,
    needs_full_score,
    parse_classification,
    scan,
    stage_applies,
)
from safety.learned import DATA_DIR, DEFAULT_MODEL_DIR, LOWERING_FILE, LearnedStage, LearnedStageUnavailable

ROOT = Path(__file__).resolve().parents[3]
# Figures of speech the lexicon raises, TOASTER to danger and ROOK to risk (written for
# these tests, not from any case file).
TOASTER = "Our toaster is going to die by my hand this morning, third burnt slice in a row."
ROOK = "Board game night: she sacrificed her rook purely to humiliate me, and it worked."
# Disclosures the lexicon finds at danger; the stage must not be sure they are nothing.
NECK = "He put his hands around my neck last night and squeezed until I saw stars."
KNIFE = "She threatened to kill me if I ever tell her mum, and she had the kitchen knife in her hand."
CLEAR = Classification(Severity.NONE, clear=True)


@pytest.fixture(scope="module")
def lowering_stage() -> LearnedStage:
    try:
        return LearnedStage.load(DEFAULT_MODEL_DIR, lowers=True)
    except LearnedStageUnavailable as exc:
        pytest.fail(f"{exc} (`make model` builds it)")


def test_the_examples_are_lexicon_alarms() -> None:
    assert scan(TOASTER).severity is Severity.DANGER and scan(ROOK).severity is Severity.RISK
    assert scan(NECK).severity is Severity.DANGER and scan(KNIFE).severity is Severity.DANGER


def test_a_sure_stage_lowers_a_lexicon_risk_to_concern_keeping_its_signals() -> None:
    first = scan(ROOK)
    lowered = lower(first, CLEAR)
    assert lowered.severity is Severity.CONCERN and not lowered.is_disclosure
    assert lowered.categories == first.categories  # counselors still see what the lexicon found
    assert lowered.signals[: len(first.signals)] == first.signals
    [added] = lowered.signals[len(first.signals) :]
    assert (added.id, added.severity) == ("learned.lowered", Severity.CONCERN)
    assert (added.category, added.text, added.start, added.end) == ("", "", 0, 0)
    assert lowered.policy_version == first.policy_version


def test_a_lexicon_danger_is_never_lowered_however_sure_the_stage_is() -> None:
    """The figure of speech the lexicon takes for a danger keeps its danger: the pause,
    the emergency number first."""
    for text in (TOASTER, NECK, KNIFE):
        first = scan(text)
        assert lower(first, CLEAR) is first
        assert not needs_full_score(first, lowers=True)  # nothing to score it for


def test_a_lowered_verdict_remembers_the_severity_it_was_lowered_from() -> None:
    """The coach holds a lowered message and offers the resources of this severity."""
    assert lowered_from(lower(scan(ROOK), CLEAR)) is Severity.RISK
    assert lowered_from(scan(TOASTER)) is None and lowered_from(scan(ROOK)) is None
    concern = scan("I feel like I'm walking on eggshells around him lately.")
    assert lowered_from(concern) is None


def test_nothing_is_lowered_without_a_sure_answer() -> None:
    first = scan(ROOK)
    for answer in (None, Classification(Severity.NONE), Classification(Severity.RISK)):
        assert lower(first, answer) is first
    calm = scan("I'd love a quiet night in with you this Friday, just us two.")
    assert lower(calm, CLEAR) is calm  # none and concern have nothing to lower


def test_a_sure_answer_never_raises_and_a_model_cannot_claim_to_be_sure() -> None:
    first = scan(ROOK)
    assert combine(first, CLEAR, source="learned") is first
    parsed = parse_classification('{"severity": "none", "categories": [], "clear": true}')
    assert parsed == Classification(Severity.NONE) and not parsed.clear


def test_the_stage_is_never_asked_about_a_lexicon_danger() -> None:
    """It can neither raise nor lower one, so lowering on or off it is not asked; a risk
    it is asked about (its danger head may raise it, lowering may lower it)."""
    danger, risk = scan(TOASTER), scan(ROOK)
    assert not stage_applies(danger, "learned") and not stage_applies(danger, "classifier")
    assert stage_applies(risk, "learned")


def test_lowered_turns_still_add_up_to_risk_over_a_session() -> None:
    """Alarming figures of speech from one partner come back as a risk."""
    state = None
    severities = []
    for _ in range(3):
        state, verdict = accumulate(state, "p1", lower(scan(ROOK), CLEAR))
        severities.append(verdict.severity)
    assert severities == [Severity.CONCERN, Severity.CONCERN, Severity.RISK]


class _Fixed:
    """Heads answering fixed (pos, danger) scores, on a stand-in encoder."""

    def __init__(self, pos: float, danger: float) -> None:
        self.row = np.array([[pos, danger]], dtype=np.float32)

    def windows(self, text: str) -> list[list[int]]:
        return [[0]]

    def front(self, batch: list[list[int]]) -> tuple[Any, Any]:
        return np.zeros((len(batch), 1, 4), dtype=np.float32), np.ones((len(batch), 1), dtype=np.float32)

    def finish(self, out: Any, mask: Any) -> Any:
        return np.zeros((len(out), 4), dtype=np.float32)

    def __call__(self, emb: Any) -> Any:
        return self.row


def _stage(pos: float, danger: float = -9.0, t_lower: float | None = -4.0) -> LearnedStage:
    fixed = _Fixed(pos, danger)
    return LearnedStage(fixed, fixed, t_pos=4.0, t_danger=0.0, t_lower=t_lower)  # type: ignore[arg-type]


def test_the_stage_is_sure_only_below_its_lowering_point_on_a_text_it_reads() -> None:
    long_text = "we had a lovely walk by the river today"
    assert _stage(-6.0).classify(long_text) == CLEAR
    assert not _stage(-3.0).classify(long_text).clear  # between the points: not sure either way
    assert not _stage(-6.0).classify("kill it with fire").clear  # under five words it does not read
    assert not _stage(-6.0, t_lower=None).classify(long_text).clear  # lowering off
    danger = _stage(-6.0, danger=1.0).classify(long_text)  # its danger head still raises
    assert danger.severity is Severity.DANGER and not danger.clear


def test_the_lowering_point_is_round_twenty_two_s_one_percent_point(lowering_stage: LearnedStage) -> None:
    recorded = json.loads((ROOT / "bench/learned_stage/dec37/settings.json").read_text())["lowering_points"]
    lowering = json.loads((DATA_DIR / LOWERING_FILE).read_text(encoding="utf-8"))
    assert lowering["point"] == "0.01" and lowering["points"] == recorded
    assert lowering_stage.t_lower == recorded["0.01"] < lowering_stage.t_pos
    default = LearnedStage.load(DEFAULT_MODEL_DIR)
    assert default.t_lower is None  # off unless asked for
    assert lowering_stage.version != default.version  # the stamp says lowering could apply


def test_the_served_encoder_is_sure_about_the_figure_of_speech(lowering_stage: LearnedStage) -> None:
    answer = lowering_stage.classify(ROOK, full=needs_full_score(scan(ROOK), lowers=True))  # as the coach
    assert answer.clear
    assert lower(scan(ROOK), answer).severity is Severity.CONCERN
    # sure of the danger figure of speech too, and it stays a danger all the same
    assert lowering_stage.classify(TOASTER, full=True).clear
    assert lower(scan(TOASTER), lowering_stage.classify(TOASTER, full=True)).severity is Severity.DANGER


@pytest.mark.parametrize("text", [NECK, KNIFE])
def test_the_served_encoder_never_lowers_a_disclosure(lowering_stage: LearnedStage, text: str) -> None:
    answer = lowering_stage.classify(text, full=needs_full_score(scan(text), lowers=True))  # as the coach
    assert not answer.clear
    assert lower(scan(text), answer).severity is Severity.DANGER
