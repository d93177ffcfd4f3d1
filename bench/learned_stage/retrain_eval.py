"""Step 3 of RETRAIN.md: the shipped heads and the retrained ones (``dec03/``), each with
the lexicon as it is, scored once on the given sets with ``safety.evaluation.evaluate``
(the figures ``coach safety eval --learned`` prints). Aggregates only.

Run once, before the adoption; since then ``safety/data/learned/`` holds the retrained
heads, so "old" and "new" are the same heads when it is run today (``results.json`` is
the record of that one run).

usage: retrain_eval.py FILE...   -> one JSON line per file; writes dec03/results.json
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from safety.evaluation import evaluate, load_cases  # noqa: E402
from safety.learned import DATA_DIR, LearnedStage  # noqa: E402


def dec03_data_dir(tmp: Path) -> Path:
    """The retrained heads in the service's layout (settings.json, head_pos/danger.npz)."""
    cv = json.loads((HERE / "dec03/int8w_settings.json").read_text(encoding="utf-8"))["svc"]
    shutil.copy(HERE / "dec03/head_int8w_svc_pos.npz", tmp / "head_pos.npz")
    shutil.copy(HERE / "dec03/head_int8w_svc_danger.npz", tmp / "head_danger.npz")
    settings = dict(
        window=cv["window"],
        stride=cv["stride"],
        kind=cv["kind"],
        heads=dict(pos="head_pos.npz", danger="head_danger.npz"),
        operating_points={
            b: dict(t_pos=op["t_pos"], t_danger=op["t_danger"]) for b, op in cv["operating_points"].items()
        },
    )
    (tmp / "settings.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
    return tmp


def figures(stage: LearnedStage | None, path: str) -> dict[str, float]:
    cases = load_cases(path)
    classes = {c.text: stage.classify(c.text) for c in cases} if stage else None
    r = evaluate(cases, classifications=classes, second_stage_name="learned stage" if stage else "")
    neg = sum(1 for c in cases if c.expected.value == "none")
    return dict(
        recall=round(r.recall_risk_or_danger, 3),
        danger_recall=round(r.recall_danger, 3),
        fpr=round(r.false_positive_rate, 3),
        false_alarms=round(r.false_positive_rate * neg),
    )


def main() -> None:
    out = []
    with tempfile.TemporaryDirectory() as d:
        stages = {
            "lexicon": None,
            "old": LearnedStage.load(data_dir=DATA_DIR),
            "new": LearnedStage.load(data_dir=dec03_data_dir(Path(d))),
        }
        for f in sys.argv[1:]:
            row = {"file": Path(f).name, **{k: figures(s, f) for k, s in stages.items()}}
            print(json.dumps(row), flush=True)
            out.append(row)
    (HERE / "dec03/results.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
