"""The learned stage: a fine-tuned sentence encoder and two heads that can only raise a verdict.

An all-MiniLM-L6-v2 encoder, its six layers fine-tuned on the project's cases together
with two linear heads (round twenty on, ``bench/learned_stage/finetune.py``; ONNX,
dynamic int8 quantisation, run by onnxruntime on one thread), embeds a message in windows of at
most 128 word pieces (stride 64); the heads score each window and a message's score is
the max over its windows (the rule it was trained with):

* ``pos`` (risk-or-danger vs none) - at or above ``t_pos`` the stage says ``risk``;
* ``danger`` (danger vs the rest) - at or above ``t_danger`` it says ``danger``.

Rounds one to nineteen served the published encoder, frozen, with two RBF-SVM heads;
settings.json's ``kind`` ("linear" or "svc") says which heads to load, and the bench
still scores the SVM heads of those rounds.

:meth:`LearnedStage.classify` returns a :class:`~safety.second_stage.Classification`
and the caller merges it with :func:`safety.second_stage.combine` (``source="learned"``),
so the raise-only rule lives in one place. Loaded with ``lowers=True`` (the service's
``COACH_SAFETY_LEARNED_LOWERS``, on by default since round thirty-eight) the stage also
marks a text it reads and scores below the lowering point of :data:`LOWERING_FILE` as ``clear``, which
:func:`safety.second_stage.lower` turns from a lexicon risk or danger into concern.
The stage predicts **no categories**: a raised verdict keeps the lexicon's categories
(often none), its signal is ``learned.<severity>`` with an empty category, and the coach
answers with the generic
``help.risk`` / ``help.danger`` message, which fits every kind of disclosure.

The trained layers (``data/learned/layers.npz``, float16), the heads and the thresholds
(set on a group of training files held out of training, at the pre-declared 2%
false-positive budget) are round thirty-seven's (round twenty-five's recipe on 135 case
files, the negation sets four times per epoch). ``python -m safety.learned_build`` builds
the int8 encoder (not committed: 23 MB) from the published weights with the trained layers
in their place, records the layers' sha256 in its manifest and checks the result against
reference embeddings; a stage whose encoder was built from other weights refuses to load.
Run time needs numpy, tokenizers, onnxruntime and threadpoolctl.

Loading the stage limits numpy's BLAS (OpenBLAS) to one thread for the whole process:
the heads' products are small, and OpenBLAS's extra threads spin after every call - in
the coach that burned 15-40 ms of CPU per turn (``idle_gaps`` in ``bench/safety_learned.py``).

When settings.json names an ``exit`` (rounds twenty-three and twenty-four; none since
round twenty-five, whose own exit let too few ordinary texts out) the encoder is built
cut after that layer and an :class:`ExitHead` there lets an ordinary text out early: when
it is sure (every window below its point, set on texts the encoder never trained on) the
stage answers ``none`` without the last layers or the heads. A caller that may lower the verdict asks for
the full score (``classify(text, full=True)``: lowering a lexicon alarm needs it);
``early_exit=False`` runs the whole encoder for every text (on eight fresh sets the exit
let out none that the whole stage raised; ``bench/learned_stage/RETRAIN.md``, rounds
twenty-three and twenty-four).

Texts under :data:`MIN_WORDS` words are not scored (``none``): the heads never saw
such short texts and fire on replies like "I don't know". Very long texts are bounded:
at most :data:`MAX_WINDOWS` windows are embedded - the first and last
:data:`EDGE_WINDOWS` and evenly spaced ones between (a 4000-character message, the
coach's limit, has about 15 windows and is embedded whole).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from safety.second_stage import Classification
from safety.severity import Severity

#: The heads and settings shipped with the package.
DATA_DIR = Path(__file__).resolve().parent / "data" / "learned"
#: Where ``python -m safety.learned_build`` puts the encoder unless told otherwise.
DEFAULT_MODEL_DIR = Path(
    os.environ.get("COACH_SAFETY_MODEL_DIR")
    or Path(__file__).resolve().parent.parent / ".cache" / "safety-model"
)
ENCODER_FILE = "encoder_int8.onnx"
#: the encoder cut after its exit layer (round twenty-three): the first layers, and the rest
FRONT_FILE, BACK_FILE = "encoder_front.onnx", "encoder_back.onnx"
#: the tensor the two halves pass between them: the exit layer's output, (windows, tokens, 384)
HIDDEN = "hidden"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "settings.json"
#: the lowering points (round twenty-two), read only when lowering is switched on
LOWERING_FILE = "lowering.json"
#: written last by ``python -m safety.learned_build``: what the encoder was built from
MANIFEST_FILE = "manifest.json"
#: The pre-declared operating point of the experiment (2% out-of-fold false positives),
#: used unless settings.json names another in ``operating_point``.
OPERATING_POINT = "0.02"
MAX_WINDOWS = 16
EDGE_WINDOWS = 4
#: Texts with fewer words are not scored: every training text had at least this many
#: words (the shortest ``none`` ones had 5), and on shorter replies - "I don't know",
#: "My mum", "Nothing really" - the heads are outside what they learned and fire
#: (``risk``). Short disclosures ("he choked me") are the lexicon's to catch.
MIN_WORDS = 5
SOURCE = "learned"

Array = npt.NDArray[np.float32]


class LearnedStageUnavailable(RuntimeError):
    """The encoder, tokenizer, heads or settings are missing or unreadable."""


@dataclass(frozen=True, slots=True)
class SvmHead:
    """An RBF-SVM decision function in plain numpy: sum_i alpha_i exp(-gamma |x - sv_i|^2) + b."""

    sv: Array
    alpha: Array
    b: float
    gamma: float
    sv_sq: Array

    @classmethod
    def load(cls, path: Path) -> SvmHead:
        with np.load(path, allow_pickle=False) as d:
            if str(d["kind"]) != "svc":
                raise LearnedStageUnavailable(f"{path.name}: not an RBF-SVM head")
            sv = np.ascontiguousarray(d["sv"], dtype=np.float32)
            alpha = np.asarray(d["alpha"], dtype=np.float32)
            b, gamma = float(d["b"]), float(d["gamma"])
        return cls(sv, alpha, b, gamma, (sv**2).sum(1))

    def __call__(self, x: Array) -> Array:
        d2 = (x**2).sum(1)[:, None] + self.sv_sq[None] - 2.0 * x @ self.sv.T
        out: Array = np.exp(-self.gamma * np.maximum(d2, 0.0)) @ self.alpha + self.b
        return out


@dataclass(frozen=True, slots=True)
class SharedSvmHeads:
    """RBF-SVM heads with one gamma, scored together over the union of their support
    vectors: one kernel row per window serves every head (a head's weight is 0 on the
    others' vectors). The pos and danger heads share 1,345 of their 4,396 vectors, so this
    reads less memory than two :class:`SvmHead` calls.

    The kernel is factorised, exp(-g|x-s|^2) = exp(-g|x|^2) exp(-g|s|^2) exp(2g x.s):
    the support vectors are stored scaled by 2g (transposed) and each weight times
    exp(-g|s|^2), so scoring is one product, one exp and one small product - two passes
    over the (windows x vectors) matrix instead of six, and fewer numpy calls (each one a
    chance to wait for the GIL in the server)."""

    sv_t: Array  # (dims, vectors): support vectors * 2 gamma, transposed
    alpha: Array  # (vectors, heads): weights * exp(-gamma |s|^2)
    b: Array  # (heads,)
    gamma: float

    @classmethod
    def of(cls, *heads: SvmHead) -> SharedSvmHeads:
        if len({h.gamma for h in heads}) != 1:
            raise LearnedStageUnavailable("heads with different gammas cannot share their support vectors")
        gamma = heads[0].gamma
        index: dict[bytes, int] = {}
        rows: list[Array] = []
        for head in heads:
            for v in head.sv:
                if index.setdefault(v.tobytes(), len(rows)) == len(rows):
                    rows.append(v)
        sv = np.stack(rows).astype(np.float64)
        alpha = np.zeros((len(rows), len(heads)), dtype=np.float64)
        for k, head in enumerate(heads):
            for v, a in zip(head.sv, head.alpha, strict=True):
                alpha[index[v.tobytes()], k] += a
        alpha *= np.exp(-gamma * (sv**2).sum(1))[:, None]
        b = np.array([h.b for h in heads], dtype=np.float32)
        sv_t = np.ascontiguousarray((2.0 * gamma * sv).T, dtype=np.float32)
        return cls(sv_t, alpha.astype(np.float32), b, gamma)

    def __call__(self, x: Array) -> Array:
        """Scores, shape (windows, heads)."""
        k = x @ self.sv_t
        np.exp(k, out=k)
        scale = np.exp(-self.gamma * np.einsum("ij,ij->i", x, x))
        out: Array = (k @ self.alpha) * scale[:, None] + self.b
        return out


@dataclass(frozen=True, slots=True)
class LinearHeads:
    """Linear heads on the embedding, trained together with the encoder (round twenty,
    ``bench/learned_stage/finetune.py``): scores = x @ w + b, one column per head."""

    w: Array  # (dims, heads): pos, danger
    b: Array  # (heads,)

    @classmethod
    def load(cls, path: Path) -> LinearHeads:
        with np.load(path, allow_pickle=False) as d:
            w = np.ascontiguousarray(d["w"], dtype=np.float32)
            b = np.asarray(d["b"], dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != 2 or b.shape != (2,):
            raise LearnedStageUnavailable(f"{path.name}: not a pos/danger linear head")
        return cls(w, b)

    def __call__(self, x: Array) -> Array:
        """Scores, shape (windows, heads)."""
        out: Array = x @ self.w + self.b
        return out


Heads = SharedSvmHeads | LinearHeads


def pick_windows(n: int, cap: int = MAX_WINDOWS, edge: int = EDGE_WINDOWS) -> list[int]:
    """Indices of the windows to embed out of ``n``: all when ``n <= cap``, else the first
    and last ``edge`` and ``cap - 2*edge`` evenly spaced between them."""
    if n <= cap:
        return list(range(n))
    middle = cap - 2 * edge
    inner = np.linspace(edge, n - edge - 1, middle + 2)[1:-1] if middle > 0 else np.array([])
    picked = {*range(edge), *range(n - edge, n), *(round(float(i)) for i in inner)}
    return sorted(picked)


#: onnxruntime graph fusions the served session leaves out: on this encoder they make a
#: classify slower (10-18 % more CPU, ``bench/learned_stage/session_cost.py``), and the
#: heads' verdicts were checked without them on a fresh set before the change (round nine,
#: ``bench/learned_stage/RETRAIN.md``). SkipLayerNormalization's fused kernel also rounds
#: differently, so ``data/learned/reference.json`` is embedded by this session.
DISABLED_FUSIONS: tuple[str, ...] = ("SkipLayerNormFusion", "GeluFusion")


def encoder_session(path: Path, disabled_optimizers: tuple[str, ...] = DISABLED_FUSIONS) -> Any:
    """An onnxruntime session on the encoder at ``path`` as served: one thread, without
    :data:`DISABLED_FUSIONS`. Other ``disabled_optimizers`` are for experiments
    (``bench/learned_stage/session_cost.py``; ``()`` is the all-fusions session of rounds
    one to eight)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled_optimizers)
    )


class Encoder:
    """all-MiniLM-L6-v2 (int8 ONNX): word-piece windows in, L2-normalised embeddings out.

    Built whole (:data:`ENCODER_FILE`) or cut after its exit layer (:data:`FRONT_FILE`
    and :data:`BACK_FILE`, when settings.json names an ``exit``): :meth:`front` runs the
    first part and :meth:`finish` the rest, so a caller can stop in between."""

    def __init__(self, model_dir: Path, *, window: int, stride: int, max_windows: int = MAX_WINDOWS) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        tok.no_padding()
        tok.no_truncation()
        self.tok = tok
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise LearnedStageUnavailable("tokenizer.json has no [CLS]/[SEP]")
        self.cls_id: int = cls_id
        self.sep_id: int = sep_id
        self.window, self.stride, self.max_windows = window, stride, max_windows
        split = (model_dir / FRONT_FILE).is_file()
        #: the whole encoder, or its first part when it was built cut
        self.session = encoder_session(model_dir / (FRONT_FILE if split else ENCODER_FILE))
        self.back = encoder_session(model_dir / BACK_FILE) if split else None

    def all_windows(self, text: str) -> list[list[int]]:
        """Word-piece ids of ``text`` in overlapping windows, each with [CLS]/[SEP]."""
        ids: list[int] = self.tok.encode(text, add_special_tokens=False).ids
        n, step = self.window, max(1, self.stride)
        cls_id, sep_id = self.cls_id, self.sep_id
        if len(ids) <= n:
            return [[cls_id, *ids, sep_id]]
        out = []
        start = 0
        while True:
            out.append([cls_id, *ids[start : start + n], sep_id])
            if start + n >= len(ids):
                return out
            start += step

    def windows(self, text: str) -> list[list[int]]:
        """The windows actually embedded: at most ``max_windows`` (see :func:`pick_windows`)."""
        every = self.all_windows(text)
        return [every[i] for i in pick_windows(len(every), self.max_windows)]

    def front(self, batch: list[list[int]]) -> tuple[Array, Array]:
        """(out, mask): the exit layer's output when the encoder was built cut, else the
        embeddings; ``mask`` marks the real tokens of each (padded) window."""
        width = max(len(x) for x in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.float32)
        for i, x in enumerate(batch):
            ids[i, : len(x)] = x
            mask[i, : len(x)] = 1.0
        feeds = {"input_ids": ids, "position_ids": np.arange(width, dtype=np.int64), "mask": mask}
        out: Array = self.session.run([HIDDEN if self.back is not None else "emb"], feeds)[0]
        return out, mask

    def finish(self, out: Array, mask: Array) -> Array:
        """The embeddings from :meth:`front`'s answer (the rest of the layers, if any)."""
        if self.back is None:
            return out
        emb: Array = self.back.run(["emb"], {HIDDEN: out, "mask": mask})[0]
        return emb

    def forward(self, batch: list[list[int]]) -> Array:
        return self.finish(*self.front(batch))

    def embed(self, text: str) -> Array:
        """One embedding per embedded window of ``text``, shape (windows, 384)."""
        return self.forward(self.windows(text))


@dataclass(frozen=True, slots=True)
class ExitHead:
    """The early exit (round twenty-three): a linear head on the mean-pooled,
    L2-normalised output of the encoder's first ``layer`` layers. A text whose every
    window scores below ``point`` is ordinary enough that the rest of the encoder and the
    heads are not run (``bench/learned_stage/exit_head.py`` fits it and sets the point
    on texts the encoder never trained on)."""

    w: Array  # (dims,)
    b: float
    point: float
    layer: int

    @classmethod
    def load(cls, path: Path, *, point: float, layer: int) -> ExitHead:
        with np.load(path, allow_pickle=False) as d:
            w = np.ascontiguousarray(d["w"], dtype=np.float32).reshape(-1)
            b = float(d["b"])
        return cls(w, b, point, layer)

    def score(self, hidden: Array, mask: Array) -> float:
        """The highest window score of :func:`pooled` ``hidden``."""
        return float((pooled(hidden, mask) @ self.w).max()) + self.b

    def exits(self, hidden: Array, mask: Array) -> bool:
        return self.score(hidden, mask) < self.point


def pooled(hidden: Array, mask: Array) -> Array:
    """Mean over each window's real tokens, L2-normalised: (windows, dims). The sum is
    taken as one product with the mask, and not divided by the count: the norm does
    that (half the numpy time of the plain mean for the bench's message)."""
    out: Array = np.matmul(mask[:, None, :], hidden)[:, 0]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


class LearnedStage:
    """``classify(text)``: ``risk`` / ``danger`` when a head's max window score passes its
    threshold, else ``none``; never any categories. Thread-safe (onnxruntime sessions are)."""

    def __init__(
        self,
        encoder: Encoder,
        heads: Heads,
        t_pos: float,
        t_danger: float,
        version: str = "unversioned",
        t_lower: float | None = None,
        exit: ExitHead | None = None,
    ) -> None:
        self.encoder = encoder
        #: the pos and danger heads, scored together (columns 0 and 1)
        self.heads = heads
        #: which heads and thresholds judged: a digest of settings.json and the head files
        self.version = version
        self.t_pos = t_pos
        self.t_danger = t_danger
        #: below this pos score a text is ``clear`` (lowering on), else None (never)
        self.t_lower = t_lower
        #: the early exit, or None (off)
        self.exit = exit

    @classmethod
    def load(
        cls,
        model_dir: Path | str = DEFAULT_MODEL_DIR,
        *,
        data_dir: Path = DATA_DIR,
        max_windows: int = MAX_WINDOWS,
        operating_point: str | None = None,
        lowers: bool = False,
        early_exit: bool = True,
    ) -> LearnedStage:
        """Load the built encoder from ``model_dir`` and the heads from ``data_dir``; any
        problem is a :class:`LearnedStageUnavailable` naming what is wrong.
        ``operating_point`` (a key of settings.json's ``operating_points``, e.g. "0.01")
        overrides the one the settings name, for experiments. ``lowers`` reads the
        lowering point from :data:`LOWERING_FILE` (and the version digest covers it).
        ``early_exit``: use the exit settings.json names, if any; the encoder must have
        been built cut at its layer either way."""
        model_dir = Path(model_dir)
        cut = (model_dir / FRONT_FILE).is_file()
        for name in ((FRONT_FILE, BACK_FILE) if cut else (ENCODER_FILE,)) + (TOKENIZER_FILE,):
            if not (model_dir / name).is_file():
                raise LearnedStageUnavailable(
                    f"{model_dir / name} is missing: run `python -m safety.learned_build {model_dir}`"
                )
        # one BLAS thread: the heads' products are small and idle OpenBLAS threads spin
        threadpool_limits(limits=1, user_api="blas")
        try:
            settings: dict[str, Any] = json.loads((data_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
            name = operating_point or settings.get("operating_point", OPERATING_POINT)
            point = settings["operating_points"][name]
            encoder = Encoder(
                model_dir,
                window=int(settings["window"]),
                stride=int(settings["stride"]),
                max_windows=max_windows,
            )
            heads, files = load_heads(settings, data_dir)
            layers = settings.get("layers")
            exit_settings = settings.get("exit")
            if layers is not None:
                cut_at = int(exit_settings["layer"]) if exit_settings else None
                check_built_from(model_dir, data_dir / layers, cut_at)
                files = (*files, layers)
            exit_head = None
            if exit_settings and early_exit:
                exit_head = ExitHead.load(
                    data_dir / exit_settings["head"],
                    point=float(exit_settings["point"]),
                    layer=int(exit_settings["layer"]),
                )
                files = (*files, exit_settings["head"])
            t_lower = None
            if lowers:
                lowering = json.loads((data_dir / LOWERING_FILE).read_text(encoding="utf-8"))
                t_lower = float(lowering["points"][lowering["point"]])
                files = (*files, LOWERING_FILE)
            digest = hashlib.sha256(b"".join((data_dir / f).read_bytes() for f in files)).hexdigest()
            return cls(
                encoder,
                heads,
                float(point["t_pos"]),
                float(point["t_danger"]),
                version=digest[:10],
                t_lower=t_lower,
                exit=exit_head,
            )
        except LearnedStageUnavailable:
            raise
        except Exception as exc:
            raise LearnedStageUnavailable(f"the learned stage could not load: {exc}") from exc

    def scores(self, text: str) -> tuple[float, float]:
        """(pos, danger): each head's highest score over the text's embedded windows."""
        return self._scores(*self.encoder.front(self.encoder.windows(text)))

    def _scores(self, out: Array, mask: Array) -> tuple[float, float]:
        top = self.heads(self.encoder.finish(out, mask)).max(0)
        return float(top[0]), float(top[1])

    def severity_of(self, scores: tuple[float, float]) -> Severity:
        if scores[1] >= self.t_danger:
            return Severity.DANGER
        if scores[0] >= self.t_pos:
            return Severity.RISK
        return Severity.NONE

    def classify(self, text: str, *, full: bool = False) -> Classification:
        """The stage's severity for ``text``, with no categories (see the module doc);
        ``none`` without scoring for a text under :data:`MIN_WORDS` words. With a lowering
        point, a scored ``none`` whose pos score is below it is ``clear``
        (:func:`safety.second_stage.lower`). With an early exit, a text it lets out after
        its layer is ``none`` without the rest of the encoder or the heads - unless
        ``full`` (:func:`safety.second_stage.needs_full_score`: a verdict it may lower).
        A text scored in full is answered by :meth:`classification_of`."""
        if len(text.split()) < MIN_WORDS:
            return Classification(Severity.NONE)
        out, mask = self.encoder.front(self.encoder.windows(text))
        if self.exit is not None and not full and self.exit.exits(out, mask):
            return Classification(Severity.NONE)
        return self.classification_of(self._scores(out, mask))

    def classification_of(self, scores: tuple[float, float]) -> Classification:
        """The answer for a text scored in full: its severity and, with a lowering point,
        whether it is ``clear`` (a scored ``none`` whose pos score is below that point)."""
        severity = self.severity_of(scores)
        clear = self.t_lower is not None and severity is Severity.NONE and scores[0] < self.t_lower
        return Classification(severity, clear=clear)


def load_heads(settings: dict[str, Any], data_dir: Path) -> tuple[Heads, tuple[str, ...]]:
    """The heads settings.json names, and the files they and the settings were read from:
    ``kind`` "linear" (one file, trained with the encoder) or "svc" (an RBF-SVM per head)."""
    kind = settings.get("kind", "svc")
    if kind == "linear":
        name = settings["heads"]["linear"]
        return LinearHeads.load(data_dir / name), (SETTINGS_FILE, name)
    if kind == "svc":
        pos, danger = settings["heads"]["pos"], settings["heads"]["danger"]
        heads = SharedSvmHeads.of(SvmHead.load(data_dir / pos), SvmHead.load(data_dir / danger))
        return heads, (SETTINGS_FILE, pos, danger)
    raise LearnedStageUnavailable(f"settings.json: unknown head kind {kind!r}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_built_from(model_dir: Path, layers: Path, exit_layer: int | None = None) -> None:
    """The encoder in ``model_dir`` must have been built with the trained ``layers`` the
    heads were trained with (its manifest records their sha256): an encoder built from
    other weights would score every message wrongly without any error. And it must be cut
    where settings.json's exit is (``exit_layer``; whole when there is none)."""
    try:
        manifest = json.loads((model_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LearnedStageUnavailable(f"{model_dir / MANIFEST_FILE}: {exc}") from exc
    if manifest.get("layers_sha256") != sha256_file(layers):
        raise LearnedStageUnavailable(
            f"the encoder in {model_dir} was not built with {layers.name}: "
            f"run `python -m safety.learned_build --force {model_dir}`"
        )
    if manifest.get("exit_layer") != exit_layer:
        raise LearnedStageUnavailable(
            f"the encoder in {model_dir} was cut at layer {manifest.get('exit_layer')}, settings.json's "
            f"exit is at {exit_layer}: run `python -m safety.learned_build --force {model_dir}`"
        )
