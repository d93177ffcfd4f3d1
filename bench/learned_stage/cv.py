"""Choose every setting of the learned stage by leave-one-file-out CV on the training sets only.

usage: [JOBS=2] [SVC_C=3,10] cv.py   (reads /tmp/ls_train_w{64,128}.pkl written by featurise.py)

Two logistic-regression heads on the window embeddings:
  * ``pos``:    risk-or-danger vs none
  * ``danger``: danger vs (none, risk)
A text's score is the max over its windows. Training windows carry their text's label.

The lexicon was tuned on these very files, so in CV it already finds (almost) every
positive: CV cannot show the recall the learned stage adds on unseen text. What CV can
show honestly is the learned stage's own out-of-fold behaviour on a file it never saw
(grouped by file), so the thresholds are set on that: ``t_pos`` is the lowest threshold
whose pooled out-of-fold FPR (none cases scored >= t) is within the budget, and
``t_danger`` the lowest whose none->danger rate is within 1% and risk->danger rate within
10%. Classifier C, class weighting and window size are picked by out-of-fold recall at
the primary FPR budget. Several budgets are written out (all fixed before any holdout is
looked at); PRIMARY_BUDGET is the pre-registered operating point.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.svm import SVC

HERE = Path(__file__).resolve().parent
FEAT = os.environ.get("FEAT", "w")  # "w": transformer windows; "static": static.py features
WINDOWS = tuple(int(x) for x in os.environ.get("WINDOWS", "128,64").split(","))
TAG = "" if FEAT == "w" else f"{FEAT}_"
BUDGETS = (0.01, 0.02, 0.03, 0.05)
PRIMARY_BUDGET = 0.02
DANGER_NONE_BUDGET = 0.01
DANGER_RISK_BUDGET = 0.10
RANK = {"none": 0, "concern": 1, "risk": 2, "danger": 3}


def fit(X, y, kind, C, cw):
    if kind == "svc":
        clf = SVC(C=C, kernel="rbf", gamma="scale", class_weight=cw)
        clf.fit(X, y)
        clf.score_windows = clf.decision_function
    else:
        clf = LogisticRegression(C=C, class_weight=cw, max_iter=5000)
        clf.fit(X, y)
        clf.score_windows = lambda Z: clf.predict_proba(Z)[:, 1]
    return clf


def window_arrays(rows, idx):
    X, ypos, ydan = [], [], []
    for i in idx:
        r = rows[i]
        for e in r["emb"]:
            X.append(e)
            ypos.append(int(r["expected"] != "none"))
            ydan.append(int(r["expected"] == "danger"))
    return np.asarray(X), np.asarray(ypos), np.asarray(ydan)


def text_scores(clf, rows, idx):
    return np.array([clf.score_windows(rows[i]["emb"]).max() for i in idx])


def file_folds(rows, k):
    """The out-of-fold groups: one per case file (``k`` = 0, leave-one-file-out, every round
    so far), or ``k`` groups of whole files, balanced by case count (largest file first into
    the smallest group; deterministic)."""
    sizes = {}
    for r in rows:
        sizes[r["file"]] = sizes.get(r["file"], 0) + 1
    if not k:
        return [{f} for f in sorted(sizes)]
    groups = [set() for _ in range(k)]
    load = [0] * k
    for f in sorted(sizes, key=lambda f: (-sizes[f], f)):
        j = load.index(min(load))
        groups[j].add(f)
        load[j] += sizes[f]
    return groups


def oof(rows, kind, C, cw):
    sp = np.zeros(len(rows))
    sd = np.zeros(len(rows))
    for group in file_folds(rows, FOLDS):
        tr = [i for i, r in enumerate(rows) if r["file"] not in group]
        te = [i for i, r in enumerate(rows) if r["file"] in group]
        X, yp, yd = window_arrays(rows, tr)
        sp[te] = text_scores(fit(X, yp, kind, C, cw), rows, te)
        sd[te] = text_scores(fit(X, yd, kind, C, cw), rows, te)
    return sp, sd


def threshold_for(scores_neg: np.ndarray, budget: float) -> float:
    """Lowest threshold t (among observed scores, plus 1.0) with mean(scores_neg >= t) <= budget."""
    top = float(scores_neg.max()) + 1e-6
    cands = np.unique(np.concatenate([scores_neg, [top]]))
    for t in cands:
        if (scores_neg >= t).mean() <= budget:
            return float(t)
    return top


def combined(lex, sp, sd, tp, td):
    out = []
    for l, p, d in zip(lex, sp, sd):
        r = RANK[l]
        if p >= tp:
            r = max(r, 2)
        if d >= td:
            r = max(r, 3)
        out.append(r)
    return np.array(out)


def figures(expected, pred_rank):
    exp = np.array([RANK[e] for e in expected])
    pos, dang, neg = exp >= 2, exp == 3, exp == 0
    return dict(
        recall=float((pred_rank[pos] >= 2).mean()),
        danger_recall=float((pred_rank[dang] == 3).mean()),
        fpr=float((pred_rank[neg] >= 2).mean()),
    )


def save_head(path, clf, kind, X):
    """Plain arrays: score(x) = w.x + b (lr, then sigmoid) or sum_i a_i exp(-g|x-sv_i|^2) + b (svc)."""
    if kind == "svc":
        g = clf._gamma
        np.savez(
            path,
            kind="svc",
            sv=clf.support_vectors_.astype(np.float32),
            alpha=clf.dual_coef_[0].astype(np.float32),
            b=np.float32(clf.intercept_[0]),
            gamma=np.float32(g),
        )
    else:
        np.savez(path, kind="lr", w=clf.coef_[0].astype(np.float32), b=np.float32(clf.intercept_[0]))


SVC_C = tuple(float(x) for x in os.environ.get("SVC_C", "1,3,10").split(","))
JOBS = int(os.environ.get("JOBS", "1"))  # grid points run in parallel processes; same results
#: 0: leave one case file out (the rule of rounds one to eight); k: k groups of whole files
FOLDS = int(os.environ.get("FOLDS", "0"))
_ROWS: list = []


def _grid_point(point):
    W, kind, C, cw = point
    rows = _ROWS[WINDOWS.index(W)]
    exp = np.array([r["expected"] for r in rows])
    sp, sd = oof(rows, kind, C, cw)
    tp = threshold_for(sp[exp == "none"], PRIMARY_BUDGET)
    rec = float((sp[exp != "none"] >= tp).mean())
    auc = roc_auc_score(exp != "none", sp)
    auc_d = roc_auc_score(exp == "danger", sd)
    result = dict(
        window=W, kind=kind, C=C, class_weight=cw, auc_pos=auc, auc_danger=auc_d, oof_recall_at_primary=rec
    )
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result, (sp, sd)


def main() -> None:
    _ROWS[:] = [pickle.load(open(f"/tmp/ls_train_{FEAT}{W}.pkl", "rb")) for W in WINDOWS]
    grid = [("lr", C, cw) for C in (0.3, 1.0, 3.0, 10.0, 30.0) for cw in (None, "balanced")]
    grid += [("svc", C, cw) for C in SVC_C for cw in (None, "balanced")]
    points = [(W, kind, C, cw) for W in WINDOWS for kind, C, cw in grid]
    if JOBS > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(JOBS) as pool:
            done = pool.map(_grid_point, points, chunksize=1)
    else:
        done = [_grid_point(p) for p in points]
    results = [r for r, _ in done]
    cache = {p: scores for p, (_, scores) in zip(points, done)}
    best_overall = max(results, key=lambda r: (r["oof_recall_at_primary"], r["auc_pos"]))
    settings = dict(primary_kind=best_overall["kind"], primary_budget=PRIMARY_BUDGET, cv_grid=results)
    for kind_ in ("svc", "lr"):
        settings[kind_] = choose(kind_, results, cache)
    (HERE / f"{TAG}settings.json").write_text(json.dumps(settings, indent=1))
    print(json.dumps({k: v for k, v in settings.items() if k != "cv_grid"}, indent=1))


def choose(kind_, results, cache):
    best = max(
        (r for r in results if r["kind"] == kind_), key=lambda r: (r["oof_recall_at_primary"], r["auc_pos"])
    )
    W, kind, C, cw = best["window"], best["kind"], best["C"], best["class_weight"]
    # the danger head: pick its C / weighting separately by danger AUC (same window and kind)
    best_d = max(
        (r for r in results if r["window"] == W and r["kind"] == kind), key=lambda r: r["auc_danger"]
    )
    Cd, cwd = best_d["C"], best_d["class_weight"]
    rows = pickle.load(open(f"/tmp/ls_train_{FEAT}{W}.pkl", "rb"))
    exp = np.array([r["expected"] for r in rows])
    lex = [r["lex"] for r in rows]
    sp = cache[(W, kind, C, cw)][0]
    sd = cache[(W, kind, Cd, cwd)][1]
    # danger threshold: none->danger <= 1% and risk->danger <= 10% out of fold
    td = max(
        threshold_for(sd[exp == "none"], DANGER_NONE_BUDGET),
        threshold_for(sd[exp == "risk"], DANGER_RISK_BUDGET),
    )
    ops = {}
    for b in BUDGETS:
        tp = threshold_for(sp[exp == "none"], b)
        ops[str(b)] = dict(
            t_pos=tp,
            t_danger=td,
            oof_learned_alone=figures(exp, combined(["none"] * len(rows), sp, sd, tp, td)),
            oof_combined=figures(exp, combined(lex, sp, sd, tp, td)),
        )
    lex_fig = figures(exp, np.array([RANK[x] for x in lex]))
    X, yp, yd = window_arrays(rows, range(len(rows)))
    hp, hd = fit(X, yp, kind, C, cw), fit(X, yd, kind, Cd, cwd)
    save_head(HERE / f"head_{TAG}{kind}_pos.npz", hp, kind, X)
    save_head(HERE / f"head_{TAG}{kind}_danger.npz", hd, kind, X)
    return dict(
        window=W,
        stride=W // 2,
        kind=kind,
        pos_head=dict(C=C, class_weight=cw),
        danger_head=dict(C=Cd, class_weight=cwd),
        operating_points=ops,
        oof_lexicon_alone=lex_fig,
    )


if __name__ == "__main__":
    main()
