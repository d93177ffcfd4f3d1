"""CPU cost of two sets of learned-stage heads, side by side in one process, same encoder.

Both data folders are in the service's layout (``settings.json``, ``head_pos.npz``,
``head_danger.npz``); the old one can come from git, e.g. ``git worktree add /tmp/base
<commit>`` and ``/tmp/base/safety/data/learned``. Reported per set: support vectors, the
heads alone on one window's embedding, and ``classify`` on a 300-character message
(encoder included), as medians of ``time.process_time_ns`` over interleaved rounds (A, B,
A, B...), so drift on the machine hits both alike. Run on one core:

    taskset -c 1 .venv/bin/python bench/learned_stage/heads_cost.py OLD_DIR NEW_DIR

Prints one JSON object. Not a test.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from bench.safety_scan import EVERYDAY, make_text  # noqa: E402
from safety.learned import DEFAULT_MODEL_DIR, LearnedStage  # noqa: E402

ROUNDS = 30
HEAD_CALLS = 200
CLASSIFY_CALLS = 20


def cpu_ns_per_call(fn: Callable[[], object], calls: int) -> float:
    t = time.process_time_ns()
    for _ in range(calls):
        fn()
    return (time.process_time_ns() - t) / calls


def main() -> None:
    old_dir, new_dir = (Path(a) for a in sys.argv[1:3])
    stages = {
        "old": LearnedStage.load(DEFAULT_MODEL_DIR, data_dir=old_dir),
        "new": LearnedStage.load(DEFAULT_MODEL_DIR, data_dir=new_dir),
    }
    text = make_text(300, random.Random(7), EVERYDAY)
    emb = stages["old"].encoder.embed(text)
    heads_us: dict[str, list[float]] = {k: [] for k in stages}
    classify_ms: dict[str, list[float]] = {k: [] for k in stages}
    for s in stages.values():  # warm-up
        s.classify(text)
        s.heads(emb)
    for _ in range(ROUNDS):
        for name, s in stages.items():
            heads_us[name].append(cpu_ns_per_call(lambda s=s: s.heads(emb), HEAD_CALLS) / 1e3)
            classify_ms[name].append(cpu_ns_per_call(lambda s=s: s.classify(text), CLASSIFY_CALLS) / 1e6)
    out: dict[str, dict[str, float]] = {
        name: {
            "support_vectors": int(s.heads.sv_t.shape[1]),
            "heads_cpu_median_us": round(statistics.median(heads_us[name]), 1),
            "classify_300ch_cpu_median_ms": round(statistics.median(classify_ms[name]), 3),
        }
        for name, s in stages.items()
    }
    out["ratio_new_over_old"] = {
        k: round(out["new"][k] / out["old"][k], 2)
        for k in ("support_vectors", "heads_cpu_median_us", "classify_300ch_cpu_median_ms")
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
