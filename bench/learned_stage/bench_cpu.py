"""CPU and memory cost of the learned stage (run with OMP_NUM_THREADS=1 etc.: one core).

Per message: time.process_time_ns (CPU) and perf_counter_ns (wall) around
``LearnedStage.scores`` for a ~300-character and a ~3000-character message built from
training-set texts; also the lexicon's ``scan`` on the same text for reference. Model
load time and VmRSS added by importing numpy/tokenizers and by loading the stage.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def p99(v):
    s = sorted(v)
    return s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "svc"
    from safety import scan

    r0 = rss_mb()
    import numpy  # noqa: F401
    import tokenizers  # noqa: F401

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    r1 = rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    from stage import LearnedStage, StaticStage

    feat = os.environ.get("FEAT")
    if feat == "static":
        st = StaticStage(kind)
    elif feat == "int8w":
        st = LearnedStage(kind, tag="int8w_", onnx="/tmp/minilm_int8.onnx")
    elif feat == "fp32onnx":  # same heads as numpy (same embeddings to 1e-7)
        st = LearnedStage(kind, onnx="/tmp/minilm.onnx")
    else:
        st = LearnedStage(kind)
    st.scores("warm up")
    load_wall, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    r2 = rss_mb()
    texts = [
        json.loads(x)["text"]
        for x in Path("tests/safety_cases/train_b.jsonl").read_text().splitlines()
        if x.strip()
    ]
    blob = " ".join(texts)
    msgs = {300: blob[:300], 3000: blob[5000:8000]}
    out = dict(
        kind=kind,
        threads=os.environ.get("OMP_NUM_THREADS"),
        load_wall_s=round(load_wall, 2),
        load_cpu_s=round(load_cpu, 2),
        rss_base_mb=round(r0, 1),
        rss_numpy_tokenizers_mb=round(r1 - r0, 1),
        rss_stage_mb=round(r2 - r1, 1),
    )
    for n, text in msgs.items():
        runs = 300 if n == 300 else 60
        cpu, wall, lex = [], [], []
        st.scores(text)
        for _ in range(runs):
            c, w = time.process_time_ns(), time.perf_counter_ns()
            st.scores(text)
            cpu.append((time.process_time_ns() - c) / 1000)
            wall.append((time.perf_counter_ns() - w) / 1000)
            w = time.perf_counter_ns()
            scan(text)
            lex.append((time.perf_counter_ns() - w) / 1000)
        out[f"{n}ch"] = dict(
            chars=len(text),
            windows=len(st.model.windows(text)) if hasattr(st, "model") else 1,
            cpu_median_us=round(statistics.median(cpu)),
            cpu_p99_us=round(p99(cpu)),
            wall_median_us=round(statistics.median(wall)),
            wall_p99_us=round(p99(wall)),
            lexicon_wall_median_us=round(statistics.median(lex)),
            lexicon_wall_p99_us=round(p99(lex)),
        )
    out["rss_after_runs_mb"] = round(rss_mb() - r1, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
