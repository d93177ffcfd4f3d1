"""Benchmark the learned safety stage: CPU per message (tokenise, encode, both heads) by length.

Time is ``time.process_time`` per ``LearnedStage.classify`` call (CPU of this process:
onnxruntime runs on one thread; numpy's BLAS may use more for the heads, and that counts
too). Messages are everyday couple talk (``bench/safety_scan.py``'s ``EVERYDAY``) cut to
300 / 1000 / 3000 / 4000 (the coach's limit) / 20000 characters; 20000 shows the window
cap (:data:`safety.learned.MAX_WINDOWS`). Also the load time and the RSS it adds.

Run: ``taskset -c 1 .venv/bin/python bench/safety_learned.py`` (writes
bench/results/safety_learned.json). Needs ``make model``. Not a test.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.safety_scan import EVERYDAY, make_text  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    import numpy  # noqa: F401  (imported before the RSS baseline, as the service has it)
    import tokenizers  # noqa: F401

    from safety.learned import DEFAULT_MODEL_DIR, LearnedStage

    before = rss_mb()
    t0 = time.perf_counter()
    stage = LearnedStage.load(DEFAULT_MODEL_DIR)
    load_s = time.perf_counter() - t0
    rng = random.Random(7)
    out: dict[str, object] = {
        "load_s": round(load_s, 2),
        "rss_added_mb": round(rss_mb() - before, 1),
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
    }
    rows = {}
    for n_chars, runs in ((300, 300), (1000, 100), (3000, 40), (4000, 30), (20000, 20)):
        texts = [make_text(n_chars, rng, EVERYDAY) for _ in range(5)]
        stage.classify(texts[0])  # warm-up
        cpu: list[float] = []
        for i in range(runs):
            text = texts[i % len(texts)]
            c = time.process_time_ns()
            stage.classify(text)
            cpu.append((time.process_time_ns() - c) / 1e6)
        cpu.sort()
        rows[f"{n_chars}ch"] = {
            "windows": len(stage.encoder.windows(texts[0])),
            "all_windows": len(stage.encoder.all_windows(texts[0])),
            "cpu_median_ms": round(statistics.median(cpu), 2),
            "cpu_p99_ms": round(cpu[min(len(cpu) - 1, round(0.99 * (len(cpu) - 1)))], 2),
            "runs": runs,
        }
    out["per_message"] = rows
    text = json.dumps(out, indent=1)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "safety_learned.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
