"""CPU of the encoder session with every onnxruntime fusion (as served in rounds one to
eight) against the candidate session (:data:`CANDIDATE_FUSIONS` left out), interleaved on
the same texts.

Round eight (RETRAIN.md) tried the candidate session with heads trained on it and refused
them; round nine tested the session on its own with the served heads and adopted it, so the
candidate is now the service's session (``safety.learned.DISABLED_FUSIONS``) and the
all-fusions session the experiment. Both sessions here load the same built encoder and the
service's heads; each text is classified by one, then the other, alternating which goes
first, so machine drift falls on both. Texts: the bench's 75-character message (``bench/load.py``) and everyday talk
cut to 300 and 1000 characters. Prints CPU medians per classify and their ratio.

``--flips``: instead, every case text of five words or more in ``tests/safety_cases/`` and
the shared dev set classified by both sessions, with each verdict that differs (about 4
minutes on one core).

usage: taskset -c 1 .venv/bin/python bench/learned_stage/session_cost.py [ROUNDS | --flips]
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
from safety.evaluation import load_cases  # noqa: E402


#: The fusions the candidate session leaves out (served since round nine).
CANDIDATE_FUSIONS = learned.DISABLED_FUSIONS


def set_session(
    encoder: learned.Encoder,
    fusions: tuple[str, ...] = CANDIDATE_FUSIONS,
    model_dir: Path = learned.DEFAULT_MODEL_DIR,
) -> None:
    """Rebuild ``encoder``'s onnxruntime session (on ``model_dir``'s encoder) without ``fusions``."""
    encoder.session = learned.encoder_session(model_dir / learned.ENCODER_FILE, fusions)


def flips(fused: learned.LearnedStage, candidate: learned.LearnedStage) -> dict[str, object]:
    files = [
        *sorted((ROOT / "tests/safety_cases").glob("*.jsonl")),
        ROOT.parent / "shared/eval/safety_dev.jsonl",
    ]
    scored, changed = 0, []
    for path in files:
        for text in (case.text for case in load_cases(path)):
            if len(text.split()) < learned.MIN_WORDS:
                continue
            scored += 1
            a, b = fused.classify(text).severity, candidate.classify(text).severity
            if a != b:
                changed.append(f"{path.name}: {a.value} -> {b.value}: {text[:70]}")
    return {"scored": scored, "changed": len(changed), "changes": changed}


def main() -> None:
    fused = learned.LearnedStage.load()
    set_session(fused.encoder, ())
    candidate = learned.LearnedStage.load()  # the served session: CANDIDATE_FUSIONS left out
    if sys.argv[1:] == ["--flips"]:
        print(json.dumps(flips(fused, candidate), indent=1))
        return
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = random.Random(8)
    sets = {"75ch": [TEXT], "300ch": [make_text(300, rng, EVERYDAY) for _ in range(5)]}
    sets["1000ch"] = [make_text(1000, rng, EVERYDAY) for _ in range(3)]
    out: dict[str, object] = {"disabled_fusions": list(CANDIDATE_FUSIONS)}
    for name, texts in sets.items():
        n = rounds if name != "1000ch" else max(20, rounds // 5)
        cpu: dict[str, list[float]] = {"all_fusions": [], "candidate": []}
        for stage in (fused, candidate):
            stage.classify(texts[0])  # warm-up
        for i in range(n):
            text = texts[i % len(texts)]
            order = [("all_fusions", fused), ("candidate", candidate)]
            for label, stage in order if i % 2 else order[::-1]:
                c = time.process_time_ns()
                stage.classify(text)
                cpu[label].append((time.process_time_ns() - c) / 1e6)
        med = {k: statistics.median(v) for k, v in cpu.items()}
        out[name] = {
            "all_fusions_cpu_median_ms": round(med["all_fusions"], 3),
            "candidate_cpu_median_ms": round(med["candidate"], 3),
            "ratio": round(med["candidate"] / med["all_fusions"], 3),
            "runs": n,
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
