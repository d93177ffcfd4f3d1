"""The learned stage's early exit (round twenty-three, safety/learned.py's ``ExitHead``):
an ordinary message leaves after the encoder's first two layers; a disclosure the full
stage would raise never does. Since round twenty-five the served encoder runs whole (its
own exit let too few ordinary messages out to pass round twenty-three's rule), so these
tests cut a copy of it after layer two and name an exit fit for it (``dec37/exit.npz``:
round twenty-three's recipe on round thirty-seven's encoder, fit after that round's
decision for these tests, never judged or served) in a copy of the settings - the
mechanism a settings.json with an ``exit`` would serve.
Needs the built encoder (`make model`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from safety import Classification, Severity, combine, needs_full_score, scan, stage_applies
from safety.evaluation import load_cases
from safety.learned import (
    BACK_FILE,
    DATA_DIR,
    DEFAULT_MODEL_DIR,
    ENCODER_FILE,
    FRONT_FILE,
    MANIFEST_FILE,
    MIN_WORDS,
    SETTINGS_FILE,
    TOKENIZER_FILE,
    LearnedStage,
    LearnedStageUnavailable,
)
from safety.learned_build import BuildError, split_encoder
from tests.unit.safety.test_safety_lowering import ROOK

ROOT = Path(__file__).resolve().parents[3]
CASES = ROOT / "tests" / "safety_cases"
EXIT = ROOT / "bench" / "learned_stage" / "dec37"
ORDINARY = [
    "I would love for us to spend more unhurried time together on the weekends.",
    "My rose today was the walk by the canal, my thorn was the printer jamming again.",
]
# ordinary too, but the exit is cautious (on its calibration files about 34 % of ordinary
# messages leave, dec37/exit.json): this one runs the whole encoder and is still none
STAYS = "I get anxious when you go quiet after a row, because I don't know if you're still upset with me."
# the lexicon misses it; the full stage raises it (test_safety_learned.py)
ISOLATED = "He says my friends are trouble so I stopped seeing them, it is easier that way."


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, data folder): the served encoder cut after layer two, and the
    served settings naming the exit fit for it."""
    model, data = tmp_path_factory.mktemp("cut-model"), tmp_path_factory.mktemp("exit-data")
    if not (DEFAULT_MODEL_DIR / ENCODER_FILE).is_file():
        pytest.fail(f"{DEFAULT_MODEL_DIR / ENCODER_FILE} is missing (`make model` builds it)")
    split_encoder(DEFAULT_MODEL_DIR / ENCODER_FILE, 2, model / FRONT_FILE, model / BACK_FILE)
    shutil.copyfile(DEFAULT_MODEL_DIR / TOKENIZER_FILE, model / TOKENIZER_FILE)
    manifest = json.loads((DEFAULT_MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    (model / MANIFEST_FILE).write_text(json.dumps({**manifest, "exit_layer": 2}), encoding="utf-8")
    for path in DATA_DIR.iterdir():
        if path.is_file():
            shutil.copyfile(path, data / path.name)
    shutil.copyfile(EXIT / "exit.npz", data / "exit.npz")
    chosen = json.loads((EXIT / "exit.json").read_text(encoding="utf-8"))
    settings = json.loads((DATA_DIR / SETTINGS_FILE).read_text(encoding="utf-8"))
    settings["exit"] = {"layer": chosen["layer"], "head": "exit.npz", "point": chosen["point"]}
    (data / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")
    return model, data


@pytest.fixture(scope="module")
def stages(cut: tuple[Path, Path]) -> tuple[LearnedStage, LearnedStage]:
    """(with the exit; the served stage, whole)."""
    model, data = cut
    try:
        return LearnedStage.load(model, data_dir=data), LearnedStage.load(DEFAULT_MODEL_DIR)
    except LearnedStageUnavailable as exc:
        pytest.fail(f"{exc} (`make model` builds it)")


def test_the_served_stage_runs_the_whole_encoder_since_round_twenty_five(
    stages: tuple[LearnedStage, LearnedStage],
) -> None:
    with_exit, served = stages
    assert served.exit is None and "exit" not in json.loads((DATA_DIR / SETTINGS_FILE).read_text())
    manifest = json.loads((DEFAULT_MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["exit_layer"] is None  # built whole
    chosen = json.loads((EXIT / "exit.json").read_text(encoding="utf-8"))
    assert with_exit.exit is not None and (with_exit.exit.layer, with_exit.exit.point) == (2, chosen["point"])
    assert with_exit.version != served.version  # the stamp says which judged


@pytest.mark.parametrize("text", ORDINARY)
def test_an_ordinary_message_leaves_before_the_last_four_layers(
    stages: tuple[LearnedStage, LearnedStage], monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    served, _ = stages

    def must_not_finish(*args: object) -> object:
        raise AssertionError("ran the rest of the encoder")

    monkeypatch.setattr(served.encoder, "finish", must_not_finish)
    assert served.classify(text) == Classification(Severity.NONE)


def test_an_ordinary_message_the_exit_keeps_is_scored_in_full_and_stays_none(
    stages: tuple[LearnedStage, LearnedStage],
) -> None:
    with_exit, served = stages
    assert with_exit.exit is not None
    assert not with_exit.exit.exits(*with_exit.encoder.front(with_exit.encoder.windows(STAYS)))
    assert with_exit.classify(STAYS) == served.classify(STAYS) == Classification(Severity.NONE)


def test_a_disclosure_runs_the_whole_encoder_and_is_raised(stages: tuple[LearnedStage, LearnedStage]) -> None:
    served, whole = stages
    assert scan(ISOLATED).severity is Severity.NONE
    assert served.classify(ISOLATED) == whole.classify(ISOLATED) == Classification(Severity.RISK)


def test_with_lowering_on_only_a_text_the_lexicon_alarmed_on_is_scored_in_full(
    cut: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lowering a lexicon alarm needs the stage's full score; an ordinary message can
    still leave early (the stage can only raise it)."""
    stage = LearnedStage.load(cut[0], data_dir=cut[1], lowers=True)
    assert stage.exit is not None
    alarm = scan(ROOK)
    assert alarm.severity is Severity.RISK
    assert needs_full_score(alarm, lowers=True) and not needs_full_score(alarm, lowers=False)
    assert stage.classify(ROOK, full=True).clear  # scored in full, and sure: lowered
    ordinary = scan(ORDINARY[0])
    assert not needs_full_score(ordinary, lowers=True)

    def must_not_finish(*args: object) -> object:
        raise AssertionError("ran the rest of the encoder")

    monkeypatch.setattr(stage.encoder, "finish", must_not_finish)
    assert stage.classify(ORDINARY[0], full=False) == Classification(Severity.NONE)
    with pytest.raises(AssertionError, match="rest of the encoder"):
        stage.classify(ROOK, full=True)


@pytest.mark.parametrize("name", ["holdout67", "holdout68"])
def test_the_exit_lets_out_no_disclosure_the_whole_stage_raises(
    stages: tuple[LearnedStage, LearnedStage], name: str
) -> None:
    """Round thirty-seven's fresh sets (now spent; neither the encoder nor the exit was fit
    on them): every risk or danger text the full stage raised above the lexicon is raised
    the same with the exit; and the exit did let ordinary texts of the same files out."""
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
    # this exit is cautious (34 % of ordinary calibration messages leave) and a holdout's
    # negatives are hard ones: 21 and 25 of them left when it was fit
    assert raised >= 40 and exited >= 15


def test_an_encoder_cut_elsewhere_is_refused(tmp_path: Path) -> None:
    manifest = json.loads((DEFAULT_MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    for path in DEFAULT_MODEL_DIR.iterdir():
        if path.suffix == ".onnx" or path.name == "tokenizer.json":
            (tmp_path / path.name).symlink_to(path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**manifest, "exit_layer": 3}), encoding="utf-8")
    with pytest.raises(LearnedStageUnavailable, match="cut at layer 3"):
        LearnedStage.load(tmp_path)


def test_a_cut_needs_layers_on_both_sides(cut: tuple[Path, Path], tmp_path: Path) -> None:
    front = cut[0] / FRONT_FILE  # the first part: two layers
    with pytest.raises(BuildError, match="2 layers after layer 2"):
        split_encoder(front, 2, tmp_path / "a.onnx", tmp_path / "b.onnx")
