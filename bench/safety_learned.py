"""Benchmark the learned safety stage: CPU per message (tokenise, encode, both heads) by length.

Time is ``time.process_time`` per ``LearnedStage.classify`` call (CPU of this process:
onnxruntime runs on one thread; numpy's BLAS may use more for the heads, and that counts
too). Messages are everyday couple talk (``bench/safety_scan.py``'s ``EVERYDAY``) cut to
300 / 1000 / 3000 / 4000 (the coach's limit) / 20000 characters; 20000 shows the window
cap (:data:`safety.learned.MAX_WINDOWS`). Also the load time and the RSS it adds.

``idle_gaps`` is what a server sees: the bench's 75-character message classified 100
times with 20 ms of idle between calls, process CPU (every thread) per call, with numpy's
BLAS at one thread (what ``LearnedStage.load`` sets) and at one per core (numpy's
default, whose idle threads spin after each call).

Run: ``taskset -c 1 .venv/bin/python bench/safety_learned.py`` (writes
bench/results/safety_learned.json); the ``idle_gaps`` rows need both cores, so run it
without ``taskset`` for them. Needs ``make model``. Not a test. With a directory argument
(a candidate of ``bench/learned_stage/finetune.py``: its int8 encoder, tokenizer, linear
head and settings) it measures that encoder instead and writes
bench/results/safety_learned_<dir name>.json.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.safety_scan import EVERYDAY, make_text  # noqa: E402

if TYPE_CHECKING:
    from safety.learned import LearnedStage


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def idle_gaps(stage: LearnedStage, calls: int = 100, gap_s: float = 0.02) -> dict[str, float]:
    """CPU per classify of a short message with ``gap_s`` idle between calls, for one
    BLAS thread and for one per core."""
    from threadpoolctl import threadpool_limits

    from bench.load import TEXT

    out = {}
    for label, limit in (("blas_1_thread", 1), (f"blas_{os.cpu_count()}_threads", os.cpu_count())):
        with threadpool_limits(limits=limit, user_api="blas"):
            stage.classify(TEXT)
            c = time.process_time()
            for _ in range(calls):
                stage.classify(TEXT)
                time.sleep(gap_s)
            out[f"{label}_cpu_ms_per_call"] = round((time.process_time() - c) * 1000 / calls, 2)
    return out


def load(candidate: Path | None) -> LearnedStage:
    """The served stage, or a fine-tuning candidate's encoder and linear head (as
    ``bench/learned_stage/finetune.py`` scores it)."""
    from safety.learned import DEFAULT_MODEL_DIR, LearnedStage

    if candidate is None:
        return LearnedStage.load(DEFAULT_MODEL_DIR)
    from bench.learned_stage.finetune import candidate as fine_tuned

    return fine_tuned(candidate)


def main(argv: list[str]) -> None:
    import numpy  # noqa: F401  (imported before the RSS baseline, as the service has it)
    import tokenizers  # noqa: F401

    candidate = Path(argv[0]) if argv else None
    before = rss_mb()
    t0 = time.perf_counter()
    stage = load(candidate)
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
    out["idle_gaps"] = idle_gaps(stage)
    text = json.dumps(out, indent=1)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    name = f"safety_learned_{candidate.name}.json" if candidate else "safety_learned.json"
    (results / name).write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
