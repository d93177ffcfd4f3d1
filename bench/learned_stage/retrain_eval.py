"""Step 3 of RETRAIN.md: the shipped heads ("old") and a retrained set ("new", a folder
written by cv.py: ``dec03/`` for round one, ``exercises/`` for round two), each with the
lexicon as it is, scored once on the given sets with ``safety.evaluation.evaluate`` (the
figures ``coach safety eval --learned`` prints). Aggregates only.

Each round is run once, before its adoption decision (``<folder>/results.json`` is the
record of that run); after an adoption ``safety/data/learned/`` holds the new heads, so
"old" and "new" then coincide.

From round seven on, each set of heads is also scored at its 1% operating point
(``old@0.01``, ``new@0.01``; RETRAIN.md, seventh round).

Both sets of heads are scored on the service's encoder session, which since round nine
leaves out ``safety.learned.DISABLED_FUSIONS`` (round eight's candidate session).
OLD_SESSION=fused scores the old heads on the all-fusions session served in rounds one to
eight instead: that is how round eight (``dec08/``: its new heads on the candidate
session, round seven's on the fused one) and round nine's session test (``dec09/``: round
seven's heads on both) were run, and it reproduces both results files.

usage: retrain_eval.py FOLDER FILE...   -> one JSON line per file; writes FOLDER/results.json
unless it exists (a round's record is never overwritten by a later run)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from safety.evaluation import evaluate, load_cases  # noqa: E402
from safety.learned import DATA_DIR, LearnedStage  # noqa: E402


def service_layout(folder: Path, tmp: Path) -> Path:
    """cv.py's heads in ``folder`` in the service's layout (settings.json, head_pos/danger.npz)."""
    cv = json.loads((folder / "int8w_settings.json").read_text(encoding="utf-8"))["svc"]
    shutil.copy(folder / "head_int8w_svc_pos.npz", tmp / "head_pos.npz")
    shutil.copy(folder / "head_int8w_svc_danger.npz", tmp / "head_danger.npz")
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
    return dict(
        recall=round(r.recall_risk_or_danger, 3),
        danger_recall=round(r.recall_danger, 3),
        fpr=round(r.false_positive_rate, 3),
        false_alarms=round(r.false_positive_rate * r.negatives),
        missed=round((1 - r.recall_risk_or_danger) * r.positives),
        missed_danger=round((1 - r.recall_danger) * r.dangers),
    )


def main() -> None:
    folder = HERE / sys.argv[1]
    out = []
    with tempfile.TemporaryDirectory() as d:
        new_dir = service_layout(folder, Path(d))
        from session_cost import set_session

        def old_stage(**kw: str) -> LearnedStage:
            stage = LearnedStage.load(data_dir=DATA_DIR, **kw)
            if os.environ.get("OLD_SESSION") == "fused":
                set_session(stage.encoder, ())
            return stage

        stages = {
            "lexicon": None,
            "old": old_stage(),
            "new": LearnedStage.load(data_dir=new_dir),
            "old@0.01": old_stage(operating_point="0.01"),
            "new@0.01": LearnedStage.load(data_dir=new_dir, operating_point="0.01"),
        }
        for f in sys.argv[2:]:
            row = {"file": Path(f).name, **{k: figures(s, f) for k, s in stages.items()}}
            print(json.dumps(row), flush=True)
            out.append(row)
    record = folder / "results.json"
    if record.exists():
        # the round's record of its one run before the decision: a later run never replaces it
        print(f"{record.relative_to(HERE)} exists (the round's record); not overwritten", file=sys.stderr)
        return
    record.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
