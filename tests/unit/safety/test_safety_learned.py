"""The learned stage (safety/learned.py): raises what the lexicon misses, never lowers,
leaves everyday text and figures of speech alone, bounded cost on very long text.

Needs the built encoder (`make model`, which `make test` runs first); loaded once per session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from safety import Classification, Severity, combine, scan, stage_applies
from safety.learned import (
    DATA_DIR,
    DEFAULT_MODEL_DIR,
    EDGE_WINDOWS,
    MAX_WINDOWS,
    MIN_WORDS,
    OPERATING_POINT,
    LearnedStage,
    LearnedStageUnavailable,
    SharedSvmHeads,
    SvmHead,
    pick_windows,
)
from safety.learned_build import TOLERANCE

ROOT = Path(__file__).resolve().parents[3]
# First-hand disclosures the lexicon does not flag (written for these tests, not from any case file).
ISOLATED = "He says my friends are trouble so I stopped seeing them, it is easier that way."  # -> risk
# Escalating violence (danger); the lexicon finds nothing. Round fourteen's SVM heads said
# danger for "I tried to leave once and he found me at my mum's within a day." - stalking
# after a separation, which the policy puts at risk, as the fine-tuned encoders do.
ESCALATING = "Every time it's a bit worse, first pushing, then slaps, now he uses his fists."  # -> danger
EVERYDAY = [
    "I would love it if we planned a date night on Friday.",
    "Can we talk about how we split the chores? I feel a bit tired lately.",
    "I felt hurt when you forgot our anniversary, and I'd like us to talk about it.",
    "We had a blast at the party on Saturday.",
]
FIGURES_OF_SPEECH = [
    "You're killing me with these puns.",
    "I could murder a pizza right now.",
    "This traffic is going to be the death of me.",
    "My boss is a slave driver this week, I'm exhausted.",
]
# Short replies to an exercise's question: the heads alone would say risk on all of these.
SHORT_REPLIES = ["Nothing really", "I don't know", "Can't think of anything", "My mum", "Seeing my sister"]
LEXICON_DANGER = [
    "He strangled me until I passed out.",
    "She threw a plate at my head and I needed stitches.",  # the stage alone says none
    "He sits on my chest until I can't get air and then laughs.",  # the stage alone says risk
]


@pytest.fixture(scope="session")
def stage() -> LearnedStage:
    try:
        return LearnedStage.load(DEFAULT_MODEL_DIR)
    except LearnedStageUnavailable as exc:
        pytest.fail(f"{exc} (`make model` builds it)")


def test_raises_a_first_hand_disclosure_the_lexicon_misses(stage: LearnedStage) -> None:
    lexicon = scan(ISOLATED)
    assert lexicon.severity is Severity.NONE
    got = combine(lexicon, stage.classify(ISOLATED), source="learned")
    assert got.severity is Severity.RISK and got.is_disclosure
    # no categories invented: the coach answers with the generic help.risk message
    assert got.categories == ()
    assert [(s.id, s.category, s.start, s.end) for s in got.signals] == [("learned.risk", "", 0, 0)]
    assert got.policy_version == lexicon.policy_version


def test_raises_to_danger_when_the_danger_head_fires(stage: LearnedStage) -> None:
    lexicon = scan(ESCALATING)
    assert not lexicon.is_disclosure
    assert combine(lexicon, stage.classify(ESCALATING), source="learned").severity is Severity.DANGER


@pytest.mark.parametrize("text", LEXICON_DANGER)
def test_never_lowers_a_lexicon_danger(stage: LearnedStage, text: str) -> None:
    lexicon = scan(text)
    assert lexicon.severity is Severity.DANGER
    assert combine(lexicon, stage.classify(text), source="learned") == lexicon
    for severity in Severity:
        assert combine(lexicon, Classification(severity), source="learned").severity is Severity.DANGER


@pytest.mark.parametrize("text", EVERYDAY + FIGURES_OF_SPEECH)
def test_everyday_messages_and_figures_of_speech_stay_none(stage: LearnedStage, text: str) -> None:
    assert stage.classify(text) == Classification(Severity.NONE)
    lexicon = scan(text)
    assert combine(lexicon, stage.classify(text), source="learned") == lexicon


def _refuse_scoring(stage: LearnedStage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every score starts with the encoder's first layers: make them refuse."""

    def must_not_score(batch: list[list[int]]) -> tuple[object, object]:
        raise AssertionError(f"scored {len(batch)} windows")

    monkeypatch.setattr(stage.encoder, "front", must_not_score)


@pytest.mark.parametrize("text", SHORT_REPLIES)
def test_short_replies_never_reach_the_heads(
    stage: LearnedStage, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """Why the floor is there: the heads never saw texts this short, and on them they are
    unreliable (the first heads raised all five replies above; round seven's still raised
    "I don't know"; round fourteen's score "Can't think of anything" at 0.56 against a 0.58
    threshold). So a short text is never scored at all, whatever the heads would say."""
    assert len(text.split()) < MIN_WORDS
    _refuse_scoring(stage, monkeypatch)
    assert stage.classify(text) == Classification(Severity.NONE)


def test_a_text_of_min_words_is_scored(stage: LearnedStage, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "Nothing really happened today, sorry"
    assert len(text.split()) == MIN_WORDS
    _refuse_scoring(stage, monkeypatch)
    with pytest.raises(AssertionError, match="scored"):
        stage.classify(text)


def test_the_encoder_runs_on_one_thread(stage: LearnedStage) -> None:
    options = stage.encoder.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1


def test_windows_of_a_20000_character_text_are_bounded(stage: LearnedStage) -> None:
    filler = "We went to the market on Saturday and bought apples, bread and cheese, then walked home. "
    text = (filler * 300)[:20000]
    every = stage.encoder.all_windows(text)
    used = stage.encoder.windows(text)
    assert len(every) > 3 * MAX_WINDOWS
    assert len(used) == MAX_WINDOWS
    assert used[:EDGE_WINDOWS] == every[:EDGE_WINDOWS] and used[-EDGE_WINDOWS:] == every[-EDGE_WINDOWS:]
    assert all(len(w) <= stage.encoder.window + 2 for w in used)
    assert stage.classify(text).severity is Severity.NONE


def test_pick_windows() -> None:
    assert pick_windows(1) == [0]
    assert pick_windows(MAX_WINDOWS) == list(range(MAX_WINDOWS))
    picked = pick_windows(100)
    assert len(picked) == MAX_WINDOWS == len(set(picked)) and picked == sorted(picked)
    assert picked[:EDGE_WINDOWS] == [0, 1, 2, 3] and picked[-EDGE_WINDOWS:] == [96, 97, 98, 99]
    gaps = np.diff(picked[EDGE_WINDOWS - 1 : -EDGE_WINDOWS + 1])
    assert gaps.max() - gaps.min() <= 1  # evenly spaced between the edges


def test_the_built_encoder_matches_the_reference_embeddings(stage: LearnedStage) -> None:
    """The encoder within the build's tolerance (int8 kernels differ by CPU), and the
    heads exactly: on the reference embeddings they give the reference scores."""
    ref = json.loads((DATA_DIR / "reference.json").read_text(encoding="utf-8"))
    enc = stage.encoder
    got = np.vstack([enc.forward([enc.windows(s)[0]]) for s in ref["sentences"]])
    embeddings = np.asarray(ref["embeddings"], dtype=np.float32)
    assert np.abs(got - embeddings).max() <= TOLERANCE
    assert np.allclose(stage.heads(embeddings), ref["scores"], atol=1e-4)
    # what the tolerance is for: a text far from both thresholds keeps its verdict
    assert [stage.severity_of(stage.scores(s)) for s in ref["sentences"]] == [
        stage.severity_of((float(p), float(d))) for p, d in ref["scores"]
    ]


def test_thresholds_are_the_ones_the_latest_round_set_before_any_evaluation(stage: LearnedStage) -> None:
    """The thresholds were set on the held-out group of the training files at the
    pre-declared 2 % point (bench/learned_stage/finetune.py) and committed with the
    candidate before it was scored; the service uses them unchanged."""
    chosen = json.loads((ROOT / "bench/learned_stage/dec37/settings.json").read_text())
    assert OPERATING_POINT == "0.02" and chosen["window"] == stage.encoder.window == 128
    assert (stage.t_pos, stage.t_danger) == (chosen["t_pos"], chosen["t_danger"])
    point = chosen["operating_points"][OPERATING_POINT]
    assert point == {"t_pos": chosen["t_pos"], "t_danger": chosen["t_danger"]}
    assert stage.encoder.stride == chosen["stride"] == 64


def test_another_operating_point_can_be_asked_for_and_a_missing_one_is_named(stage: LearnedStage) -> None:
    """retrain_eval.py scores the 1% point this way; an unknown point fails to load."""
    points = json.loads((DATA_DIR / "settings.json").read_text(encoding="utf-8"))["operating_points"]
    strict = LearnedStage.load(operating_point="0.01")
    assert (strict.t_pos, strict.t_danger) == (points["0.01"]["t_pos"], points["0.01"]["t_danger"])
    assert strict.t_pos > stage.t_pos  # a lower false-positive budget is a higher bar
    with pytest.raises(LearnedStageUnavailable, match=r"'0\.5'"):
        LearnedStage.load(operating_point="0.5")


def test_svm_heads_scored_together_agree_with_each_head_alone() -> None:
    """Rounds one to nineteen served RBF-SVM heads (bench/learned_stage still scores them):
    one kernel row over the union of both heads' support vectors gives each head's own
    decision function."""
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(40, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)

    def head(rows: slice, b: float) -> SvmHead:
        sv = vecs[rows]
        return SvmHead(sv, rng.normal(size=len(sv)).astype(np.float32), b, 0.7, (sv**2).sum(1))

    pos, danger = head(slice(0, 30), 0.1), head(slice(20, 40), -0.2)
    emb = rng.normal(size=(7, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    together = SharedSvmHeads.of(pos, danger)
    assert together.sv_t.shape[1] == 40 < len(pos.sv) + len(danger.sv)
    assert np.abs(together(emb)[:, 0] - pos(emb)).max() < 1e-4
    assert np.abs(together(emb)[:, 1] - danger(emb)).max() < 1e-4
    other = SvmHead(pos.sv, pos.alpha, pos.b, pos.gamma * 2, pos.sv_sq)
    with pytest.raises(LearnedStageUnavailable, match="gamma"):
        SharedSvmHeads.of(danger, other)


def test_a_missing_encoder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LearnedStageUnavailable, match="learned_build"):
        LearnedStage.load(tmp_path)


def test_which_stages_are_asked_given_the_verdict_so_far() -> None:
    """The learned stage may still raise a lexicon risk to danger (emergency help first);
    the model classifier is asked only while no disclosure was found."""
    none, risk = scan("We planned the weekend together."), scan("He slapped me last week.")
    assert none.severity is Severity.NONE and risk.severity is Severity.RISK
    danger = scan(LEXICON_DANGER[0])
    assert stage_applies(none, "learned") and stage_applies(none, "classifier")
    assert stage_applies(risk, "learned") and not stage_applies(risk, "classifier")
    assert not stage_applies(danger, "learned") and not stage_applies(danger, "classifier")
    assert combine(risk, Classification(Severity.DANGER), source="learned").severity is Severity.DANGER


def test_loading_the_stage_keeps_numpy_blas_to_one_thread(stage: LearnedStage) -> None:
    """OpenBLAS's extra threads spin after every call: with them the coach spent 15-40 ms
    of CPU per turn on a 4 ms classification (bench/safety_learned.py, idle_gaps)."""
    from threadpoolctl import threadpool_info

    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas, "numpy has no BLAS threadpool threadpoolctl can see"
    assert all(p["num_threads"] == 1 for p in blas), blas


#: The issue's own examples of what must stay none (negation, sport and games, figures of
#: speech, reported media), as full messages, through the served system: the lexicon and
#: the learned stage combined as the coach combines them.
ISSUE_NONES = [
    "he has never hit me",
    "He has never hit me and never would.",
    "My boyfriend has never laid a finger on me.",
    "she killed it at her presentation today",
    "she beat me at chess again last night",
    "this commute is killing me",
    "I'd kill for a coffee right now",
    "we watched a crime show where a man strangles his wife",
]


@pytest.mark.parametrize("text", ISSUE_NONES)
def test_the_issues_own_hard_negatives_stay_none_with_the_stage(stage: LearnedStage, text: str) -> None:
    """Round thirty-five: the stage read "he has never hit me" as risk until a text that
    says nothing but a negated signal was no longer put to it (``negated_only``)."""
    lexicon = scan(text)
    assert lexicon.severity is Severity.NONE
    served = (
        combine(lexicon, stage.classify(text), source="learned")
        if stage_applies(lexicon, "learned")
        else lexicon
    )
    assert served.severity is Severity.NONE


#: Disclosures that carry a negation the lexicon sets aside, with more said around it: the
#: stage is still asked, and catches them (from spent evaluation sets, reworded).
NEGATED_BUT_MORE_SAID = [
    "So the thing is, he doesn't hit me. He just stands really close and blocks the door until I say sorry.",
    "ok so he's not violent but he's broken my laptop, my phone and the bedroom door this month.",
]


@pytest.mark.parametrize("text", NEGATED_BUT_MORE_SAID)
def test_a_negation_with_more_said_is_still_read_by_the_stage(stage: LearnedStage, text: str) -> None:
    lexicon = scan(text)
    assert not lexicon.negated_only and stage_applies(lexicon, "learned")
    assert combine(lexicon, stage.classify(text), source="learned").is_disclosure
