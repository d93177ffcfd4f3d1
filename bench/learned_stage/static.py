"""Cheapest option (model2vec-style, no distillation): a text's embedding is the mean of
all-MiniLM-L6-v2's *input* word-piece embeddings (no transformer layers), L2-normalised.
Writes /tmp/ls_train_static0.pkl in featurise.py's format (one "window" per text) so
cv.py can run on it (FEAT=static WINDOWS=0).

usage: static.py OUT.pkl FILE...
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed import DEFAULT_DIR  # noqa: E402


class StaticEmbed:
    def __init__(self, model_dir=DEFAULT_DIR):
        w = load_file(str(Path(model_dir) / "model.safetensors"))
        self.table = w["embeddings.word_embeddings.weight"].astype(np.float32)
        self.tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.tok.no_truncation()
        self.tok.no_padding()

    def __call__(self, text: str) -> np.ndarray:
        ids = self.tok.encode(text, add_special_tokens=False).ids or [0]
        v = self.table[ids].mean(0)
        return (v / max(float(np.linalg.norm(v)), 1e-12))[None]


def main() -> None:
    from safety import scan

    out, files = sys.argv[1], sys.argv[2:]
    m = StaticEmbed()
    rows = []
    for f in files:
        for x in Path(f).read_text(encoding="utf-8").splitlines():
            if x.strip():
                r = json.loads(x)
                rows.append(
                    dict(
                        file=Path(f).name,
                        text=r["text"],
                        expected=r["expected"],
                        lex=scan(r["text"]).severity.value,
                        emb=m(r["text"]),
                    )
                )
    pickle.dump(rows, open(out, "wb"))


if __name__ == "__main__":
    main()
