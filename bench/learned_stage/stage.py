"""The learned stage as it would run in the service: numpy only (no scikit-learn at run time).

``LearnedStage.scores(text)`` -> (pos score, danger score), each the max over the text's
windows; ``raise_severity(lexicon_severity, scores, op)`` raises (never lowers) the
lexicon's severity to ``risk`` / ``danger`` when a score passes its threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from embed import DEFAULT_DIR, MiniLM

HERE = Path(__file__).resolve().parent
# the int8 SVM heads the service ships moved to safety/data/learned/ (same bytes)
SHIPPED = HERE.parent.parent / "safety" / "data" / "learned"


def head_path(tag: str, kind: str, which: str) -> Path:
    if tag == "int8w_" and kind == "svc":
        return SHIPPED / f"head_{which}.npz"
    return HERE / f"head_{tag}{kind}_{which}.npz"


RANK = {"none": 0, "concern": 1, "risk": 2, "danger": 3}
NAMES = ["none", "concern", "risk", "danger"]


class Head:
    def __init__(self, path: Path):
        d = np.load(path)
        self.kind = str(d["kind"])
        if self.kind == "svc":
            self.sv, self.alpha, self.b, self.gamma = d["sv"], d["alpha"], float(d["b"]), float(d["gamma"])
            self.sv_sq = (self.sv**2).sum(1)
        else:
            self.w, self.b = d["w"], float(d["b"])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "svc":
            d2 = (X**2).sum(1)[:, None] + self.sv_sq[None] - 2.0 * X @ self.sv.T
            return np.exp(-self.gamma * np.maximum(d2, 0.0)) @ self.alpha + self.b
        return 1.0 / (1.0 + np.exp(-(X @ self.w + self.b)))


class LearnedStage:
    def __init__(
        self,
        kind: str | None = None,
        model_dir: Path | str = DEFAULT_DIR,
        tag: str = "",
        onnx: str | None = None,
    ):
        settings = json.loads((HERE / f"{tag}settings.json").read_text())
        self.kind = kind or settings["primary_kind"]
        self.cfg = settings[self.kind]
        if onnx:
            from onnx_check import OrtMiniLM

            self.model = OrtMiniLM(onnx, window=self.cfg["window"], stride=self.cfg["stride"])
        else:
            self.model = MiniLM(model_dir, window=self.cfg["window"], stride=self.cfg["stride"])
        self.pos = Head(head_path(tag, self.kind, "pos"))
        self.danger = Head(head_path(tag, self.kind, "danger"))

    def scores(self, text: str) -> tuple[float, float]:
        E = self.model.embed_windows(text)
        return float(self.pos(E).max()), float(self.danger(E).max())

    def op(self, budget: str) -> dict:
        return self.cfg["operating_points"][budget]


def raise_severity(lexicon: str, scores: tuple[float, float], op: dict) -> str:
    r = RANK[lexicon]
    if scores[0] >= op["t_pos"]:
        r = max(r, 2)
    if scores[1] >= op["t_danger"]:
        r = max(r, 3)
    return NAMES[r]


class StaticStage(LearnedStage):
    """model2vec-style: mean of MiniLM's input word-piece embeddings, no transformer layers."""

    def __init__(self, kind: str | None = None, model_dir: Path | str = DEFAULT_DIR):
        from static import StaticEmbed

        settings = json.loads((HERE / "static_settings.json").read_text())
        self.kind = kind or settings["primary_kind"]
        self.cfg = settings[self.kind]
        self.embed = StaticEmbed(model_dir)
        self.pos = Head(HERE / f"head_static_{self.kind}_pos.npz")
        self.danger = Head(HERE / f"head_static_{self.kind}_danger.npz")

    def scores(self, text: str) -> tuple[float, float]:
        E = self.embed(text)
        return float(self.pos(E).max()), float(self.danger(E).max())
