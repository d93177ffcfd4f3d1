"""The learned stage's early exit (round twenty-three, safety/learned.py's ``ExitHead``):
an ordinary message leaves after the encoder's first two layers; a disclosure the full
stage would raise never does. Needs the built encoder (`make model`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safety import Classification, Severity, combine, needs_full_score, scan, stage_applies
from safety.evaluation import load_cases
from safety.learned import (
    DEFAULT_MODEL_DIR,
    FRONT_FILE,
    MANIFEST_FILE,
    MIN_WORDS,
    LearnedStage,
    LearnedStageUnavailable,
)
from safety.learned_build import BuildError, split_encoder
from tests.unit.safety.test_safety_lowering import TOASTER

ROOT = Path(__file__).resolve().parents[3]
CASES = ROOT / "tests" / "safety_cases"
ORDINARY = [
    "I would love for us to spend more unhurried time together on the weekends.",
    "My rose today was the walk by the canal, my thorn was the printer jamming again.",
    "Can we try the six-second kiss when I get home, even if I'm grumpy from work?",
]
# the lexicon misses it; the full stage raises it (test_safety_learned.py)
ISOLATED = "He says my friends are trouble so I stopped seeing them, it is easier that way."


@pytest.fixture(scope="module")
def stages() -> tuple[LearnedStage, LearnedStage]:
    """(with the exit, as served; without it)."""
    try:
        return LearnedStage.load(DEFAULT_MODEL_DIR), LearnedStage.load(DEFAULT_MODEL_DIR, early_exit=False)
    except LearnedStageUnavailable as exc:
        pytest.fail(f"{exc} (`make model` builds it)")


def test_the_served_stage_exits_after_layer_two_at_round_twenty_three_s_point(
    stages: tuple[LearnedStage, LearnedStage],
) -> None:
    served, whole = stages
    chosen = json.loads((ROOT / "bench/learned_stage/dec23/exit.json").read_text(encoding="utf-8"))
    assert served.exit is not None and whole.exit is None
    assert (served.exit.layer, served.exit.point) == (chosen["layer"], chosen["point"])
    assert chosen["layer"] == 2
    manifest = json.loads((DEFAULT_MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["exit_layer"] == 2  # built cut where the exit reads
    assert served.version != whole.version  # the stamp says which judged


@pytest.mark.parametrize("text", ORDINARY)
def test_an_ordinary_message_leaves_before_the_last_four_layers(
    stages: tuple[LearnedStage, LearnedStage], monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    served, _ = stages

    def must_not_finish(*args: object) -> object:
        raise AssertionError("ran the rest of the encoder")

    monkeypatch.setattr(served.encoder, "finish", must_not_finish)
    assert served.classify(text) == Classification(Severity.NONE)


def test_a_disclosure_runs_the_whole_encoder_and_is_raised(stages: tuple[LearnedStage, LearnedStage]) -> None:
    served, whole = stages
    assert scan(ISOLATED).severity is Severity.NONE
    assert served.classify(ISOLATED) == whole.classify(ISOLATED) == Classification(Severity.RISK)


def test_with_lowering_on_only_a_text_the_lexicon_alarmed_on_is_scored_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lowering a lexicon alarm needs the stage's full score; an ordinary message can
    still leave early (the stage can only raise it)."""
    stage = LearnedStage.load(DEFAULT_MODEL_DIR, lowers=True)
    assert stage.exit is not None
    alarm = scan(TOASTER)
    assert alarm.severity.rank >= Severity.RISK.rank
    assert needs_full_score(alarm, lowers=True) and not needs_full_score(alarm, lowers=False)
    assert stage.classify(TOASTER, full=True).clear  # scored in full, and sure: lowered
    ordinary = scan(ORDINARY[0])
    assert not needs_full_score(ordinary, lowers=True)

    def must_not_finish(*args: object) -> object:
        raise AssertionError("ran the rest of the encoder")

    monkeypatch.setattr(stage.encoder, "finish", must_not_finish)
    assert stage.classify(ORDINARY[0], full=False) == Classification(Severity.NONE)
    with pytest.raises(AssertionError, match="rest of the encoder"):
        stage.classify(TOASTER, full=True)


@pytest.mark.parametrize("name", ["holdout39", "holdout40"])
def test_the_exit_lets_out_no_disclosure_the_whole_stage_raises(
    stages: tuple[LearnedStage, LearnedStage], name: str
) -> None:
    """Round twenty-three's fresh sets (now spent): every risk or danger text the full
    stage raised above the lexicon is raised the same with the exit (0 of them lost,
    RETRAIN.md); and the exit did let ordinary texts of the same files out."""
    served, whole = stages
    raised, exited = 0, 0
    for case in load_cases(CASES / f"{name}.jsonl"):
        lexicon = scan(case.text)
        if not stage_applies(lexicon, "learned") or len(case.text.split()) < MIN_WORDS:
            continue
        full = combine(lexicon, whole.classify(case.text), source="learned")
        if case.expected.rank >= Severity.RISK.rank and full.severity.rank > lexicon.severity.rank:
            raised += 1
            assert combine(lexicon, served.classify(case.text), source="learned") == full, case.text
        elif case.expected is Severity.NONE and served.exit is not None:
            exited += served.exit.exits(*served.encoder.front(served.encoder.windows(case.text)))
    assert raised >= 40 and exited >= 50


def test_an_encoder_cut_elsewhere_is_refused(tmp_path: Path) -> None:
    manifest = json.loads((DEFAULT_MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    for path in DEFAULT_MODEL_DIR.iterdir():
        if path.suffix == ".onnx" or path.name == "tokenizer.json":
            (tmp_path / path.name).symlink_to(path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**manifest, "exit_layer": 3}), encoding="utf-8")
    with pytest.raises(LearnedStageUnavailable, match="cut at layer 3"):
        LearnedStage.load(tmp_path)


def test_a_cut_needs_layers_on_both_sides(tmp_path: Path) -> None:
    front = DEFAULT_MODEL_DIR / FRONT_FILE  # the served first part: two layers
    with pytest.raises(BuildError, match="2 layers after layer 2"):
        split_encoder(front, 2, tmp_path / "a.onnx", tmp_path / "b.onnx")
