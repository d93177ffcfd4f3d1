"""A lexicon change measured the way the service runs it: the lexicon of the checkout this
runs from, with and without the served learned stage, on the given sets. Aggregates only
(RETRAIN.md, sixteenth round): run it once from each checkout, before and after.

usage: <checkout>/.venv/bin/python <checkout>/bench/learned_stage/lexicon_eval.py LABEL OUT.json FILE...
    -> one JSON line per file and a pooled line; writes OUT.json

It measures the checkout it is run from (``retrain_eval`` puts that checkout first on
``sys.path``), whatever ``PYTHONPATH`` says: run the copy in each checkout (a ``git
worktree``). The policy version it prints first tells the two runs apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from retrain_eval import figures  # noqa: E402

from safety import POLICY_VERSION  # noqa: E402
from safety.learned import LearnedStage  # noqa: E402

COUNTS = ("false_alarms", "missed", "missed_danger")


def main() -> None:
    label, out_path, files = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    print(json.dumps({"label": label, "policy": POLICY_VERSION}), flush=True)
    stages = {"lexicon": None, "system": LearnedStage.load()}
    rows = []
    for f in files:
        row = {"file": Path(f).name, **{k: figures(s, f) for k, s in stages.items()}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    pooled = {k: {c: sum(r[k][c] for r in rows) for c in COUNTS} for k in stages}
    print(json.dumps({"pooled": pooled}))
    result = dict(label=label, policy=POLICY_VERSION, files=rows, pooled=pooled)
    out_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
