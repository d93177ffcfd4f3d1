"""One-shot evaluation on unseen sets with the settings fixed by cv.py (never re-tuned here).

usage: final_eval.py FILE...   -> prints a JSON object per file and writes results_<name>.json
Figures as safety/evaluation.py defines them (recall risk-or-danger, recall danger, FPR =
expected none predicted risk/danger), for the lexicon alone and lexicon+learned stage
(raise only) at every pre-registered operating point.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import RANK, LearnedStage, StaticStage, raise_severity  # noqa: E402

from safety import scan  # noqa: E402

HERE = Path(__file__).resolve().parent


def figures(expected, predicted):
    exp = np.array([RANK[e] for e in expected])
    got = np.array([RANK[p] for p in predicted])
    pos, dang, neg = exp >= 2, exp == 3, exp == 0
    return dict(
        recall=round(float((got[pos] >= 2).mean()), 3),
        danger_recall=round(float((got[dang] == 3).mean()), 3),
        fpr=round(float((got[neg] >= 2).mean()), 3),
        fp=int((got[neg] >= 2).sum()),
        missed=int((got[pos] < 2).sum()),
    )


def main() -> None:
    import os

    static = os.environ.get("FEAT") == "static"
    int8 = os.environ.get("FEAT") == "int8w"
    if static:
        stages = {k: StaticStage(k) for k in ("svc", "lr")}
    elif int8:
        stages = {k: LearnedStage(k, tag="int8w_", onnx="/tmp/minilm_int8.onnx") for k in ("svc", "lr")}
    else:
        stages = {k: LearnedStage(k) for k in ("svc", "lr")}
    for f in sys.argv[1:]:
        rows = [json.loads(x) for x in Path(f).read_text(encoding="utf-8").splitlines() if x.strip()]
        exp = [r["expected"] for r in rows]
        lex = [scan(r["text"]).severity.value for r in rows]
        out = dict(
            file=Path(f).name,
            n=len(rows),
            positives=sum(e != "none" for e in exp),
            dangers=sum(e == "danger" for e in exp),
            lexicon=figures(exp, lex),
        )
        for kind, st in stages.items():
            sc = [st.scores(r["text"]) for r in rows]
            for b in st.cfg["operating_points"]:
                op = st.op(b)
                out[f"{kind}@{b}"] = figures(exp, [raise_severity(l, s, op) for l, s in zip(lex, sc)])
        print(json.dumps(out))
        (HERE / f"results_{'static_' if static else 'int8_' if int8 else ''}{Path(f).stem}.json").write_text(
            json.dumps(out, indent=1)
        )


if __name__ == "__main__":
    main()
