"""Cross-check and speed: the same encoder as an ONNX graph built from the safetensors
weights, run with onnxruntime (1 thread); fp32 and dynamic int8 quantisation.

Prints max |numpy - ort| over some embeddings and per-message CPU for ~300 chars.
Requires the ``onnx`` package (build time only). Writes /tmp/minilm*.onnx (not shipped).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed import MiniLM  # noqa: E402


def build(m: MiniLM, path: str) -> None:
    inits, nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, outs=None, **kw):
        outs = outs or [f"{op}_{len(nodes)}"]
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    init("word", m.word)
    init("pos", m.pos)
    init("tt", m.tok_type)
    init("eg", m.emb_ln[0])
    init("eb", m.emb_ln[1])
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
    # mask bias (B,1,1,T)
    bias = node("Mul", [node("Sub", ["one", "mask"]), "neg"])
    bias = node("Unsqueeze", [bias, "ax12"])
    for i, L in enumerate(m.layers):
        p = f"l{i}_"
        for k in ("qkv_w", "qkv_b", "o_w", "o_b", "i_w", "i_b", "f_w", "f_b"):
            init(p + k, L[k])
        init(p + "g1", L["ln1"][0])
        init(p + "b1", L["ln1"][1])  # noqa: E702
        init(p + "g2", L["ln2"][0])
        init(p + "b2", L["ln2"][1])  # noqa: E702
        qkv = node("Add", [node("MatMul", [h, p + "qkv_w"]), p + "qkv_b"])
        q, k, v = (f"{p}q", f"{p}k", f"{p}v")
        nodes.append(helper.make_node("Split", [qkv], [q, k, v], axis=-1, num_outputs=3))
        heads = []
        for t in (q, k, v):
            heads.append(node("Transpose", [node("Reshape", [t, "shape_bthd"])], perm=[0, 2, 1, 3]))
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
    m3 = node(
        "Unsqueeze",
        ["mask", node("Constant", [], value=numpy_helper.from_array(np.array([2], dtype=np.int64)))],
    )
    summed = node("ReduceSum", [node("Mul", [h, m3]), "ax1"], keepdims=0)
    cnt = node("ReduceSum", ["mask", "ax1"], keepdims=1)
    pooled = node("Div", [summed, cnt])
    norm = node(
        "ReduceL2",
        [pooled, node("Constant", [], value=numpy_helper.from_array(np.array([1], dtype=np.int64)))],
        keepdims=1,
    )
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
    onnx.save(model, path)


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run(sess, ids_list):
    T = max(len(x) for x in ids_list)
    ids = np.zeros((len(ids_list), T), dtype=np.int64)
    mask = np.zeros((len(ids_list), T), dtype=np.float32)
    for i, x in enumerate(ids_list):
        ids[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return sess.run(["emb"], {"input_ids": ids, "position_ids": np.arange(T, dtype=np.int64), "mask": mask})[
        0
    ]


def main() -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    m = MiniLM()
    build(m, "/tmp/minilm.onnx")
    quantize_dynamic("/tmp/minilm.onnx", "/tmp/minilm_int8.onnx", weight_type=QuantType.QInt8)
    texts = [
        json.loads(x)["text"]
        for x in Path("tests/safety_cases/train_b.jsonl").read_text().splitlines()
        if x.strip()
    ]
    sample = [m.windows(t)[0] for t in texts[:100]]
    ref = np.vstack([m.forward([s]) for s in sample])
    out = {}
    blob = " ".join(texts)[:300]
    w300 = m.windows(blob)
    for name in ("minilm", "minilm_int8"):
        sess = session(f"/tmp/{name}.onnx")
        e = np.vstack([run(sess, [s]) for s in sample])
        cpu = []
        for _ in range(300):
            c = time.process_time_ns()
            run(sess, [m.windows(blob)[0]])
            cpu.append((time.process_time_ns() - c) / 1000)
        cpu.sort()
        out[name] = dict(
            size_mb=round(Path(f"/tmp/{name}.onnx").stat().st_size / 1e6, 1),
            max_abs_diff_vs_numpy=float(np.abs(e - ref).max()),
            min_cosine_vs_numpy=float((e * ref).sum(1).min()),
            cpu_median_us_300ch=round(statistics.median(cpu)),
            cpu_p99_us_300ch=round(cpu[round(0.99 * 299)]),
        )
    cpu = []
    for _ in range(100):
        c = time.process_time_ns()
        m.forward([m.windows(blob)[0]])
        cpu.append((time.process_time_ns() - c) / 1000)
    out["numpy"] = dict(cpu_median_us_300ch=round(statistics.median(cpu)), tokens=len(w300[0]))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()


class OrtMiniLM:
    """Same interface as embed.MiniLM (windows, forward, embed_windows) on an ONNX file
    written by this script (/tmp/minilm.onnx or /tmp/minilm_int8.onnx)."""

    def __init__(self, onnx_path: str, window: int = 128, stride: int | None = None, model_dir=None):
        from tokenizers import Tokenizer

        from embed import DEFAULT_DIR

        self.tok = Tokenizer.from_file(str(Path(model_dir or DEFAULT_DIR) / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.no_truncation()
        self.cls_id, self.sep_id = self.tok.token_to_id("[CLS]"), self.tok.token_to_id("[SEP]")
        self.window, self.stride = window, (stride if stride is not None else window // 2)
        self.sess = session(onnx_path)

    windows = MiniLM.windows

    def forward(self, batch):
        return run(self.sess, batch)

    def embed_windows(self, text):
        return self.forward(self.windows(text))
