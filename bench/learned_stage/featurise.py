"""Embed every window of every case in the given jsonl files and cache the lexicon verdict.

usage: featurise.py OUT.pkl WINDOW FILE...   (cache lives outside the repo, e.g. /tmp)
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed import MiniLM  # noqa: E402

from safety import scan  # noqa: E402


def load(path: str) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]


def main() -> None:
    out, window, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    import os

    if os.environ.get("ENCODER"):  # e.g. /tmp/minilm_int8.onnx (onnx_check.py)
        from onnx_check import OrtMiniLM

        m = OrtMiniLM(os.environ["ENCODER"], window=window)
    else:
        m = MiniLM(window=window)
    rows = []
    for f in files:
        for r in load(f):
            v = scan(r["text"])
            rows.append(
                dict(
                    file=Path(f).name,
                    text=r["text"],
                    expected=r["expected"],
                    categories=r.get("categories", []),
                    lex=v.severity.value,
                )
            )
    # all windows, batched by length for speed
    wins = []  # (row index, ids)
    for i, r in enumerate(rows):
        for ids in m.windows(r["text"]):
            wins.append((i, ids))
    order = sorted(range(len(wins)), key=lambda j: len(wins[j][1]))
    embs = np.zeros((len(wins), 384), dtype=np.float32)
    t0 = time.perf_counter()
    bs = 32
    for s in range(0, len(order), bs):
        idx = order[s : s + bs]
        embs[idx] = m.forward([wins[j][1] for j in idx])
    print(f"{len(rows)} cases, {len(wins)} windows, {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    for i, r in enumerate(rows):
        r["emb"] = embs[[j for j, (k, _) in enumerate(wins) if k == i]]
    with open(out, "wb") as fh:
        pickle.dump(rows, fh)


if __name__ == "__main__":
    main()
