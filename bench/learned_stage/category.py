"""A self-harm head for the learned stage, chosen by grouped CV on the training sets only.

usage: category.py fit            -> writes head_int8w_svc_self_harm.npz and
                                     category_settings.json (here)
       category.py eval FILE...   -> per file: how the combined verdicts' self_harm tags
                                     would compare with the expected categories

Result (2026-12-03): NOT ADOPTED. Pre-registered (commit b522284) and scored once on
holdout, holdout2, holdout3 and everyday: of the self-harm disclosures the lexicon left
untagged, the head tagged 7 of 11, but it also tagged 21 other raised disclosures and
all 3 of the learned stage's everyday false alarms (which would then read "it sounds like
you are in a lot of pain"). Limited after the fact to texts the lexicon named no category
for: 6 right, 13 wrong. The service instead shows an uncategorised verdict both the
abuse and the crisis line (safety/resources.py). Figures: bench/learned_stage/README.md.

Why: the learned stage raises a verdict without naming a category, so a suicide plan
that only it catches got the generic help message ("What you describe is not okay ...")
instead of the self-harm one. This head says whether a text the stage raised is about
self-harm. It is trained on the positive training cases only (self_harm in the expected
categories vs every other positive), on the service's own embeddings (the int8 encoder,
each text's windows as one batch, exactly as ``safety.learned`` embeds them), and a
text's score is the max over its windows.

Fixed before any fit (not chosen by CV): the files (the five training sets), RBF-SVM,
the grid C in {1, 3, 10} x class weight {none, balanced}, choice by pooled
leave-one-file-out AUC, and the threshold: the lowest whose out-of-fold rate of *other*
positives tagged self_harm is at most 5% (a wrongly tagged abuse disclosure gets the
self-harm wording and the crisis line first, which is the cost this budget bounds).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.svm import SVC

from cv import save_head  # the same plain-array head format as the pos/danger heads

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from safety import scan  # noqa: E402
from safety.learned import LearnedStage, SvmHead  # noqa: E402

TRAIN = [
    REPO / "tests/safety_cases/dev_cases.jsonl",
    REPO / "tests/safety_cases/dev_more.jsonl",
    REPO / "tests/safety_cases/train_nov22.jsonl",
    REPO / "tests/safety_cases/train_b.jsonl",
    REPO.parent / "shared/eval/safety_dev.jsonl",
]
CACHE = Path("/tmp/ls_category_train.pkl")
GRID = [(C, cw) for C in (1.0, 3.0, 10.0) for cw in (None, "balanced")]
OTHER_POSITIVES_BUDGET = 0.05
CATEGORY = "self_harm"
HERE = Path(__file__).resolve().parent
HEAD_FILE = HERE / "head_int8w_svc_self_harm.npz"
SETTINGS = HERE / "category_settings.json"


def load(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def embedded(stage: LearnedStage) -> list[dict]:
    if CACHE.exists():
        rows: list[dict] = pickle.loads(CACHE.read_bytes())
        return rows
    rows = []
    for f in TRAIN:
        for r in load(f):
            if r["expected"] == "none":
                continue
            rows.append(
                dict(
                    file=f.name,
                    y=int(CATEGORY in r.get("categories", [])),
                    emb=stage.encoder.embed(r["text"]),
                )
            )
    CACHE.write_bytes(pickle.dumps(rows))
    return rows


def fit(rows: list[dict], idx: list[int], C: float, cw: str | None) -> SVC:
    X = np.concatenate([rows[i]["emb"] for i in idx])
    y = np.concatenate([[rows[i]["y"]] * len(rows[i]["emb"]) for i in idx])
    return SVC(C=C, kernel="rbf", gamma="scale", class_weight=cw).fit(X, y)


def oof(rows: list[dict], C: float, cw: str | None) -> np.ndarray:
    scores = np.zeros(len(rows))
    for f in sorted({r["file"] for r in rows}):
        tr = [i for i, r in enumerate(rows) if r["file"] != f]
        te = [i for i, r in enumerate(rows) if r["file"] == f]
        clf = fit(rows, tr, C, cw)
        scores[te] = [clf.decision_function(rows[i]["emb"]).max() for i in te]
    return scores


def threshold_for(scores_other: np.ndarray, budget: float) -> float:
    top = float(scores_other.max()) + 1e-6
    for t in np.unique(np.concatenate([scores_other, [top]])):
        if (scores_other >= t).mean() <= budget:
            return float(t)
    return top


def main_fit() -> None:
    stage = LearnedStage.load()
    rows = embedded(stage)
    y = np.array([r["y"] for r in rows])
    print(f"{len(rows)} positive training cases, {y.sum()} self_harm", file=sys.stderr)
    grid = []
    for C, cw in GRID:
        s = oof(rows, C, cw)
        grid.append(dict(C=C, class_weight=cw, auc=float(roc_auc_score(y, s)), scores=s))
        print(json.dumps({k: v for k, v in grid[-1].items() if k != "scores"}), file=sys.stderr)
    best = max(grid, key=lambda g: g["auc"])
    s = best["scores"]
    t = threshold_for(s[y == 0], OTHER_POSITIVES_BUDGET)
    report = dict(
        C=best["C"],
        class_weight=best["class_weight"],
        oof_auc=round(best["auc"], 4),
        threshold=t,
        budget_other_positives=OTHER_POSITIVES_BUDGET,
        oof_self_harm_tagged=round(float((s[y == 1] >= t).mean()), 3),
        oof_other_positives_tagged=round(float((s[y == 0] >= t).mean()), 3),
        trained_on=[f.name for f in TRAIN],
        cv_grid=[
            {k: (round(v, 4) if k == "auc" else v) for k, v in g.items() if k != "scores"} for g in grid
        ],
    )
    clf = fit(rows, list(range(len(rows))), best["C"], best["class_weight"])
    save_head(HEAD_FILE, clf, "svc", None)
    SETTINGS.write_text(json.dumps(dict(file=HEAD_FILE.name, **report), indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "cv_grid"}, indent=1))


def main_eval(files: list[str]) -> None:
    """Among the texts the combined verdict calls risk or danger: how many expected-self_harm
    ones carry the self_harm category, and how many others carry it wrongly, split by who
    found it (lexicon vs learned stage)."""
    from safety.second_stage import Classification, combine, stage_applies
    from safety.severity import Severity

    stage = LearnedStage.load()
    head, t = SvmHead.load(HEAD_FILE), float(json.loads(SETTINGS.read_text())["threshold"])

    def classify(text: str) -> Classification:
        c = stage.classify(text)
        if c.severity is Severity.NONE or float(head(stage.encoder.embed(text)).max()) < t:
            return c
        return Classification(c.severity, (CATEGORY,))

    for f in files:
        counts = dict(
            self_harm_cases_raised=0,
            tagged_by_lexicon=0,
            tagged_by_learned=0,
            untagged=0,
            others_raised=0,
            others_tagged_by_learned=0,
        )
        for r in load(Path(f)):
            lex = scan(r["text"])
            v = combine(lex, classify(r["text"]), source="learned") if stage_applies(lex, "learned") else lex
            if v.severity.rank < 2:
                continue
            expected = CATEGORY in r.get("categories", [])
            by_lex = CATEGORY in lex.categories
            by_learned = CATEGORY in v.categories and not by_lex
            if expected:
                counts["self_harm_cases_raised"] += 1
                key = "tagged_by_lexicon" if by_lex else "tagged_by_learned" if by_learned else "untagged"
                counts[key] += 1
            else:
                counts["others_raised"] += 1
                counts["others_tagged_by_learned"] += int(by_learned)
        print(json.dumps(dict(file=Path(f).name, **counts)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["fit"]:
        main_fit()
    elif sys.argv[1:2] == ["eval"]:
        main_eval(sys.argv[2:])
    else:
        sys.exit(__doc__)
