"""Embed every window of every case in the given jsonl files and cache the lexicon verdict.

usage: featurise.py OUT.pkl WINDOW FILE...   (cache lives outside the repo, e.g. /tmp)

SERVING=1 (round eight on): each case is embedded exactly as the service embeds it -
``safety.learned.Encoder.embed`` on the built encoder in MINILM_DIR (default: the
service's), one text per call, at most MAX_WINDOWS windows, with the service's session
(since round nine round eight's candidate session, so this is how round eight's features
were made; until then that took SESSION=candidate). Without it, windows of
different cases are batched 32 at a time, and since the int8 encoder quantises each
product's input with one scale per batch, a case's embeddings then depend on the cases it
was batched with (what rounds one to seven did).
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


def lexicon_rows(files: list[str]) -> list[dict]:
    return [
        dict(
            file=Path(f).name,
            text=r["text"],
            expected=r["expected"],
            categories=r.get("categories", []),
            lex=scan(r["text"]).severity.value,
        )
        for f in files
        for r in load(f)
    ]


def serving(out: str, window: int, files: list[str]) -> None:
    import os

    from safety.learned import DEFAULT_MODEL_DIR, Encoder

    model_dir = Path(os.environ.get("MINILM_DIR") or DEFAULT_MODEL_DIR)
    enc = Encoder(model_dir, window=window, stride=window // 2)
    rows = lexicon_rows(files)
    t0 = time.perf_counter()
    for r in rows:
        r["emb"] = enc.embed(r["text"])
    n = sum(len(r["emb"]) for r in rows)
    print(f"{len(rows)} cases, {n} windows, {time.perf_counter() - t0:.1f}s (serving)", file=sys.stderr)
    with open(out, "wb") as fh:
        pickle.dump(rows, fh)


def main() -> None:
    out, window, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    import os

    if os.environ.get("SERVING"):
        serving(out, window, files)
        return
    if os.environ.get("ENCODER"):  # e.g. /tmp/minilm_int8.onnx (onnx_check.py)
        from onnx_check import OrtMiniLM

        m = OrtMiniLM(os.environ["ENCODER"], window=window)
    else:
        m = MiniLM(window=window)
    rows = lexicon_rows(files)
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
