"""Round twenty-three's early exit: fit it, set its point, measure it (RETRAIN.md).

The served encoder (round twenty-one), cut after layer :data:`LAYER`, and a logistic
regression on the mean-pooled, L2-normalised output of that layer (one row per window,
labelled as its text: risk or danger against the rest), fit on round twenty-one's
fitting files. The point: the lowest exit score among the *catches* of the calibration
files (round twenty-one's threshold group and round twenty-two's four sets, none of them
trained on by the encoder), minus :data:`MARGIN`. A catch is a text the full stage
raises in the right direction: a disclosure the lexicon left below risk raised to risk
or danger, or a danger the lexicon left below danger raised to danger.

    PYTHONPATH=. .venv/bin/python bench/learned_stage/exit_head.py fit OUT [--wheel WHEEL]
    PYTHONPATH=. .venv/bin/python bench/learned_stage/exit_head.py compare OUT RESULT FILE...
    PYTHONPATH=. taskset -c 1 .venv/bin/python bench/learned_stage/exit_head.py cpu OUT RESULT FILE...
    PYTHONPATH=. .venv/bin/python bench/learned_stage/exit_head.py install OUT

``fit`` builds the cut encoder in OUT (``safety.learned_build``, the served layers),
writes ``exit.npz`` (w, b) and ``exit.json`` (layer, point, what it was set on). With
``--candidate DIR`` (a ``finetune.py`` candidate, round twenty-four on) every step uses
that candidate instead: its int8 encoder cut after the layer, its head and thresholds,
its fitting files, and its threshold group alone as the calibration files (the only
committed texts it never trained on); ``--layer N`` cuts after layer N instead of 2;
``compare`` scores each file with the lexicon alone, the served system and the served
system with the exit (verdicts as the coach merges them), and writes RESULT; ``cpu``
measures CPU per classification of the texts of FILE... (those of five words or more),
and on ``bench/safety_learned.py``'s ``idle_gaps``, without and with the exit, three
alternating runs;
``install`` copies the head into ``safety/data/learned`` and names it in settings.json
(then ``make model`` rebuilds the encoder cut at that layer).
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from safety import Severity, combine, scan, stage_applies  # noqa: E402
from safety.evaluation import load_cases  # noqa: E402
from safety.learned import (  # noqa: E402
    BACK_FILE,
    DATA_DIR,
    ENCODER_FILE,
    FRONT_FILE,
    MIN_WORDS,
    OPERATING_POINT,
    SETTINGS_FILE,
    Encoder,
    ExitHead,
    LearnedStage,
    LinearHeads,
    load_heads,
    pooled,
)
from safety.learned_build import build, split_encoder  # noqa: E402

from finetune import CASES, SHARED_DEV  # noqa: E402

LAYER = 2
MARGIN = 0.25
C = 1.0
#: round twenty-one's own fresh sets: the served encoder never trained on them, and the
#: protocol uses them neither to fit the exit nor to set its point
ROUND21_NOT_TRAINED = {"holdout35", "holdout36", "everyday12", "everyday13"}
ROUND22_SETS = {"holdout37", "holdout38", "everyday14", "everyday15"}
ROUND23_SETS = {"holdout39", "holdout40", "everyday16", "everyday17"}
RANK = {s.value: s.rank for s in Severity}


def served(model_dir: Path, exit_head: ExitHead | None = None, candidate: Path | None = None) -> LearnedStage:
    """The served heads and thresholds (or ``candidate``'s) on the encoder in
    ``model_dir`` (cut or whole)."""
    settings = json.loads((DATA_DIR / SETTINGS_FILE).read_text(encoding="utf-8"))
    encoder = Encoder(model_dir, window=int(settings["window"]), stride=int(settings["stride"]))
    if candidate is not None:
        chosen = json.loads((candidate / SETTINGS_FILE).read_text(encoding="utf-8"))
        heads = LinearHeads.load(candidate / "head.npz")
        return LearnedStage(encoder, heads, float(chosen["t_pos"]), float(chosen["t_danger"]), exit=exit_head)
    point = settings["operating_points"][settings.get("operating_point", OPERATING_POINT)]
    served_heads, _ = load_heads(settings, DATA_DIR)
    return LearnedStage(
        encoder, served_heads, float(point["t_pos"]), float(point["t_danger"]), exit=exit_head
    )


def named(names: list[str]) -> list[Path]:
    return [SHARED_DEV if n == SHARED_DEV.stem else CASES / f"{n}.jsonl" for n in names]


def groups(candidate: Path | None = None) -> tuple[list[Path], list[Path]]:
    """(fitting files, calibration files): what the encoder was fit on (minus its
    threshold group), and what it never saw. Round twenty-one's: its threshold group and
    round twenty-two's sets; a candidate's: its threshold group."""
    if candidate is not None:
        chosen = json.loads((candidate / SETTINGS_FILE).read_text(encoding="utf-8"))
        trained, held = (ast.literal_eval(str(chosen[k])) for k in ("files", "held_out_for_thresholds"))
        trained = [n for n in trained if n not in held]
        return named(sorted(trained)), named(sorted(held))
    dec21 = json.loads((HERE / "dec21" / "settings.json").read_text(encoding="utf-8"))
    held = set(dec21["held_out_for_thresholds"])
    files = sorted(CASES.glob("*.jsonl"))
    unseen = ROUND21_NOT_TRAINED | ROUND22_SETS | ROUND23_SETS
    fitting = [p for p in files if p.stem not in held | unseen] + [SHARED_DEV]
    calibration = [p for p in files if p.stem in held | ROUND22_SETS]
    return fitting, calibration


def features(stage: LearnedStage, files: list[Path]) -> dict[str, Any]:
    """Per window: pooled exit-layer features and its text's index; per text: expected,
    lexicon severity, words, the full stage's severity."""
    feats, owner, texts = [], [], []
    for path in files:
        for case in load_cases(path):
            out, mask = stage.encoder.front(stage.encoder.windows(case.text))
            feats.append(pooled(out, mask))
            owner += [len(texts)] * len(out)
            top = stage.heads(stage.encoder.finish(out, mask)).max(0)
            words = len(case.text.split())
            full = stage.severity_of((float(top[0]), float(top[1]))) if words >= MIN_WORDS else Severity.NONE
            texts.append(
                dict(
                    file=path.stem,
                    expected=case.expected.value,
                    lexicon=scan(case.text).severity.value,
                    words=words,
                    full=full.value,
                )
            )
    return dict(x=np.vstack(feats), owner=np.array(owner), texts=texts)


def catches(texts: list[dict[str, Any]]) -> np.ndarray:
    """Texts the full stage raises in the right direction (see the module doc)."""
    out = []
    for t in texts:
        exp, lex, full = RANK[t["expected"]], RANK[t["lexicon"]], RANK[t["full"]]
        risk, danger = RANK["risk"], RANK["danger"]
        out.append(
            t["words"] >= MIN_WORDS
            and ((exp >= risk and lex < risk <= full) or (exp == danger and lex < danger <= full))
        )
    return np.array(out, dtype=bool)


def text_scores(w: np.ndarray, b: float, data: dict[str, Any]) -> np.ndarray:
    scores = np.full(len(data["texts"]), -np.inf)
    np.maximum.at(scores, data["owner"], data["x"] @ w + b)
    return scores


def fit(out: Path, wheel: Path | None, candidate: Path | None = None, layer: int = LAYER) -> None:
    from sklearn.linear_model import LogisticRegression

    out.mkdir(parents=True, exist_ok=True)
    if candidate is None:
        build(out, wheel, cut=layer)
    else:
        split_encoder(candidate / ENCODER_FILE, layer, out / FRONT_FILE, out / BACK_FILE)
        shutil.copyfile(candidate / "tokenizer.json", out / "tokenizer.json")
    stage = served(out, candidate=candidate)
    fitting, calibration = groups(candidate)
    train = features(stage, fitting)
    labels = np.array([t["expected"] in ("risk", "danger") for t in train["texts"]])[train["owner"]]
    model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(train["x"], labels)
    w, b = model.coef_[0].astype(np.float32), float(model.intercept_[0])
    cal = features(stage, calibration)
    caught = catches(cal["texts"])
    scores = text_scores(w, b, cal)
    point = float(scores[caught].min()) - MARGIN
    reads = np.array([t["words"] >= MIN_WORDS and t["lexicon"] != "danger" for t in cal["texts"]])
    everyday = np.array([t["file"].startswith("everyday") for t in cal["texts"]]) & reads
    np.savez(out / "exit.npz", w=w, b=np.float32(b))
    meta = dict(
        layer=layer,
        point=point,
        margin=MARGIN,
        C=C,
        candidate=str(candidate) if candidate else None,
        fitting_files=[p.stem for p in fitting],
        calibration_files=[p.stem for p in calibration],
        windows_fit=len(labels),
        calibration_catches=int(caught.sum()),
        lowest_catch_score=float(scores[caught].min()),
        calibration_everyday_exit_share=float((scores[everyday] < point).mean()),
    )
    (out / "exit.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in meta.items() if not k.endswith("_files")}, indent=1))


def rates(expected: list[str], got: list[str]) -> dict[str, Any]:
    exp, pred = np.array([RANK[e] for e in expected]), np.array([RANK[g] for g in got])
    pos, dang, neg = exp >= RANK["risk"], exp == RANK["danger"], exp < RANK["risk"]
    hit = pred >= RANK["risk"]
    return dict(
        recall=round(float(hit[pos].mean()), 3) if pos.any() else None,
        danger_recall=round(float((pred[dang] == RANK["danger"]).mean()), 3) if dang.any() else None,
        fpr=round(float(hit[neg].mean()), 3),
        false_alarms=int(hit[neg].sum()),
        misses=int((~hit[pos]).sum()),
        missed_dangers=int((pred[dang] < RANK["danger"]).sum()),
    )


def compare(out: Path, result: Path, files: list[Path]) -> None:
    meta = json.loads((out / "exit.json").read_text(encoding="utf-8"))
    head = ExitHead.load(out / "exit.npz", point=float(meta["point"]), layer=int(meta["layer"]))
    candidate = Path(meta["candidate"]) if meta.get("candidate") else None
    full, cascade = served(out, candidate=candidate), served(out, head, candidate)
    report: dict[str, Any] = {"exit": {k: meta[k] for k in ("layer", "point")}, "files": {}}
    for path in files:
        cases = load_cases(path)
        lex, with_full, with_exit, lost, lost_dangers, read, exited = [], [], [], 0, 0, 0, 0
        for case in cases:
            verdict = scan(case.text)
            lex.append(verdict.severity.value)
            if not stage_applies(verdict, "learned"):
                with_full.append(verdict.severity.value)
                with_exit.append(verdict.severity.value)
                continue
            a = combine(verdict, full.classify(case.text), source="learned").severity
            b = combine(verdict, cascade.classify(case.text), source="learned").severity
            with_full.append(a.value)
            with_exit.append(b.value)
            if len(case.text.split()) >= MIN_WORDS:
                read += 1
                out_, mask = cascade.encoder.front(cascade.encoder.windows(case.text))
                exited += head.exits(out_, mask)
            exp = case.expected
            lost += exp.rank >= Severity.RISK.rank and a.rank >= Severity.RISK.rank > b.rank
            lost_dangers += exp is Severity.DANGER and a is Severity.DANGER and b is not Severity.DANGER
        expected = [c.expected.value for c in cases]
        report["files"][path.stem] = dict(
            cases=len(cases),
            lexicon=rates(expected, lex),
            served=rates(expected, with_full),
            served_with_exit=rates(expected, with_exit),
            catches_lost=lost,
            danger_catches_lost=lost_dangers,
            texts_the_stage_reads=read,
            exited=exited,
        )
        print(path.stem, json.dumps(report["files"][path.stem]))
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def cpu(out: Path, result: Path, files: list[Path], runs: int = 3) -> None:
    import time

    from bench.safety_learned import idle_gaps

    meta = json.loads((out / "exit.json").read_text(encoding="utf-8"))
    head = ExitHead.load(out / "exit.npz", point=float(meta["point"]), layer=int(meta["layer"]))
    candidate = Path(meta["candidate"]) if meta.get("candidate") else None
    stages = {"full": served(out, candidate=candidate), "with_exit": served(out, head, candidate)}
    texts = [c.text for p in files for c in load_cases(p) if len(c.text.split()) >= MIN_WORDS]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in stages}
    for _ in range(runs):
        for name, stage in stages.items():
            stage.classify(texts[0])
            t = time.process_time()
            for text in texts:
                stage.classify(text)
            per_text = (time.process_time() - t) * 1000 / len(texts)
            gaps = idle_gaps(stage)["blas_1_thread_cpu_ms_per_call"]
            rows[name].append(
                {"texts_cpu_ms_per_call": round(per_text, 3), "idle_gaps_cpu_ms_per_call": gaps}
            )
            print(name, rows[name][-1])
    report = dict(texts=len(texts), files=[p.stem for p in files], runs=rows)
    for key in ("texts_cpu_ms_per_call", "idle_gaps_cpu_ms_per_call"):
        full = np.median([r[key] for r in rows["full"]])
        report[f"ratio_{key}"] = round(float(np.median([r[key] for r in rows["with_exit"]]) / full), 3)
    print(json.dumps({k: v for k, v in report.items() if k.startswith("ratio")}))
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def install(out: Path, data_dir: Path = DATA_DIR) -> None:
    meta = json.loads((out / "exit.json").read_text(encoding="utf-8"))
    shutil.copyfile(out / "exit.npz", data_dir / "exit.npz")
    path = data_dir / SETTINGS_FILE
    settings = json.loads(path.read_text(encoding="utf-8"))
    settings["exit"] = {
        "about": "round twenty-three's early exit (bench/learned_stage/exit_head.py)",
        "layer": meta["layer"],
        "head": "exit.npz",
        "point": meta["point"],
    }
    path.write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(settings["exit"]))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fit")
    p.add_argument("out", type=Path)
    p.add_argument("--wheel", type=Path)
    p.add_argument("--candidate", type=Path, help="a finetune.py candidate's folder")
    p.add_argument("--layer", type=int, default=LAYER, help=f"the layer to cut after (default {LAYER})")
    for name in ("compare", "cpu"):
        p = sub.add_parser(name)
        p.add_argument("out", type=Path)
        p.add_argument("result", type=Path)
        p.add_argument("files", type=Path, nargs="+")
    p = sub.add_parser("install")
    p.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "fit":
        fit(args.out, args.wheel, args.candidate, args.layer)
    elif args.cmd == "compare":
        compare(args.out, args.result, args.files)
    elif args.cmd == "cpu":
        cpu(args.out, args.result, args.files)
    else:
        install(args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
