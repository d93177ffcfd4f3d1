"""CPU of the encoder session with every onnxruntime fusion against the service's session
(``safety.learned.DISABLED_FUSIONS`` left out), interleaved on the same texts.

Round eight (RETRAIN.md) left SkipLayerNormalization and Gelu fusion out of the encoder's
session. Both sessions load the same built encoder and the same heads; each text is
classified by one, then the other, alternating which goes first, so machine drift falls
on both. Texts: the bench's 75-character message (``bench/load.py``) and everyday talk
cut to 300 and 1000 characters. Prints CPU medians per classify and their ratio.

usage: taskset -c 1 .venv/bin/python bench/learned_stage/session_cost.py [ROUNDS]
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import safety.learned as learned  # noqa: E402
from bench.load import TEXT  # noqa: E402
from bench.safety_scan import EVERYDAY, make_text  # noqa: E402


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    current = learned.DISABLED_FUSIONS
    learned.DISABLED_FUSIONS = ()
    fused = learned.LearnedStage.load()
    learned.DISABLED_FUSIONS = current
    service = learned.LearnedStage.load()
    rng = random.Random(8)
    sets = {"75ch": [TEXT], "300ch": [make_text(300, rng, EVERYDAY) for _ in range(5)]}
    sets["1000ch"] = [make_text(1000, rng, EVERYDAY) for _ in range(3)]
    out: dict[str, object] = {"disabled_fusions": list(current)}
    for name, texts in sets.items():
        n = rounds if name != "1000ch" else max(20, rounds // 5)
        cpu: dict[str, list[float]] = {"all_fusions": [], "service": []}
        for stage in (fused, service):
            stage.classify(texts[0])  # warm-up
        for i in range(n):
            text = texts[i % len(texts)]
            order = [("all_fusions", fused), ("service", service)]
            for label, stage in order if i % 2 else order[::-1]:
                c = time.process_time_ns()
                stage.classify(text)
                cpu[label].append((time.process_time_ns() - c) / 1e6)
        med = {k: statistics.median(v) for k, v in cpu.items()}
        out[name] = {
            "all_fusions_cpu_median_ms": round(med["all_fusions"], 3),
            "service_cpu_median_ms": round(med["service"], 3),
            "ratio": round(med["service"] / med["all_fusions"], 3),
            "runs": n,
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
