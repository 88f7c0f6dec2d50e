"""The fused-attention passes: where they fire and why not elsewhere, numerical parity of
the fused model with the portable one in ONNX Runtime (1e-5, relative to the output
scale), a golden IR, and portable output staying standard ONNX."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import dlc
from dlc.passes.manager import PassContext, PassManager, build_pipeline
from dlc.registry import default_registry
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.conftest import SPECS
from tests.passes.test_passes import check_golden

SPEC = """
dlc: 1
name: attention_shapes
inputs:
  x: {shape: [N, T, 16]}
  memory: {shape: [N, S, 16]}
  keep: {shape: [N, T], dtype: int64, range: [0, 2]}
layers:
  - linear: 16        # BERT: three projections of one input, with a padding mask
    id: query
    in: x
  - linear: 16
    id: key
    in: x
  - linear: 16
    id: value
    in: x
  - scaled_dot_product_attention: 4
    in: [query, key, value, keep]
    id: bert
  - linear: 48        # GPT-2: one packed projection, split, causal
    id: c_attn
  - split: {sizes: [16, 16, 16]}
    id: qkv
  - scaled_dot_product_attention: {heads: 4, causal: true}
    in: [qkv.0, qkv.1, qkv.2]
    id: gpt
  - multi_head_attention: 2   # cross-attention: MultiHeadAttention
    in: [gpt, memory]
    id: cross
outputs: [cross]
"""


def compile_text(**kwargs) -> dlc.CompiledModel:
    return dlc.compile(load_spec("attention_shapes.yaml", text=textwrap.dedent(SPEC)), **kwargs)


def feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    keep = np.ones((2, 6), np.int64)
    keep[1, 2:] = 0
    return {
        "x": rng.standard_normal((2, 6, 16)).astype(np.float32),
        "memory": rng.standard_normal((2, 4, 16)).astype(np.float32),
        "keep": keep,
    }


def test_self_attention_fuses_into_attention_and_cross_attention_into_multi_head_attention() -> None:
    model = compile_text()
    ops = [n.op for n in model.graph]
    assert ops.count("ort.attention") == 2 and ops.count("ort.multi_head_attention") == 1
    assert "scaled_dot_product_attention" not in ops
    assert not {"query", "key", "value", "c_attn", "qkv"} & {n.layer for n in model.graph if n.op == "linear"}
    records = {r.name: r.modified for r in model.pass_records}
    assert records["fuse-self-attention"] and records["use-multi-head-attention"]
    onnx_ops = {(n.domain, n.op_type) for n in model.onnx_model().graph.node}
    assert {("com.microsoft", "Attention"), ("com.microsoft", "MultiHeadAttention")} <= onnx_ops


def test_fused_model_matches_the_portable_one_and_torch() -> None:
    fused, portable = compile_text(), compile_text(portable=True)
    expected = portable.run(feeds(), provider="cpu")["cross"]
    assert max_relative_error(expected, fused.run(feeds(), provider="cpu")["cross"]) <= 1e-5
    import torch

    with torch.no_grad():
        ejected = fused.torch_module()(*(torch.from_numpy(feeds()[k]) for k in ("x", "memory", "keep")))
    assert max_relative_error(expected, ejected.numpy()) <= 1e-5


def test_portable_output_is_standard_onnx() -> None:
    model = compile_text(portable=True)
    assert not any(
        r.modified
        for r in model.pass_records
        if r.name in ("fuse-self-attention", "use-multi-head-attention")
    )
    assert {n.domain for n in model.onnx_model().graph.node} == {""}
    assert [o.domain for o in model.onnx_model().opset_import] == [""]


def run_fusion(text: str):
    spec = load_spec("t.yaml", text=textwrap.dedent(text))
    model = dlc.compile(spec, passes=["identity-removal"])
    registry = default_registry()
    (info,) = build_pipeline(registry, 2, ["fuse-self-attention"])
    fusion = info.factory(PassContext(registry))
    manager = PassManager([fusion], registry, verify=True)
    node = next(n for n in model.graph if n.op == "scaled_dot_product_attention")
    return fusion.check(model.graph, node), manager.run(model.graph.copy())


@pytest.mark.parametrize(
    ("layers", "reason"),
    [
        (
            "- linear: 8\n  id: q\n  in: x\n- linear: 8\n  id: k\n  in: y\n- linear: 8\n  id: v\n  in: y\n"
            "- scaled_dot_product_attention: 2\n  in: [q, k, v]\n",
            "projected from different inputs (not self-attention)",
        ),
        (
            "- linear: 8\n  id: q\n  in: x\n- linear: 8\n  id: k\n  in: x\n- linear: 8\n  id: v\n  in: x\n"
            "- scaled_dot_product_attention: 2\n  in: [q, k, v]\n  id: a\n- add:\n  in: [a, q]\n",
            "a projection has other users",
        ),
        (
            "- linear: 8\n  id: q\n  in: x\n- linear: 8\n  id: k\n  in: x\n- linear: 8\n  id: v\n  in: x\n"
            "- scaled_dot_product_attention: {heads: 2, causal: true}\n  in: [q, k, v, m]\n",
            "mask future keys with the padding value",
        ),
        (
            "- scaled_dot_product_attention: 2\n  in: [x, x, x]\n",
            "not three linears of one input, nor one linear split in three",
        ),
        (
            "- linear: 8\n  id: q\n  in: x\n- linear: 8\n  id: k\n  in: x\n- linear: 4\n  id: v\n  in: x\n"
            "- scaled_dot_product_attention: 2\n  in: [q, k, v]\n",
            "different widths",
        ),
    ],
    ids=["cross", "shared-projection", "causal-and-mask", "no-projections", "narrow-values"],
)
def test_check_says_why_attention_does_not_fuse(layers: str, reason: str) -> None:
    header = "dlc: 1\nname: t\ninputs:\n  x: {shape: [N, T, 8]}\n  y: {shape: [N, T, 8]}\n"
    header += "  m: {shape: [N, T], dtype: bool}\nlayers:\n"
    found, after = run_fusion(header + textwrap.indent(layers, "  "))
    assert isinstance(found, str) and reason in found
    assert "ort.attention" not in {n.op for n in after}


GOLDEN_SPEC = """
dlc: 1
name: packed_self_attention
inputs: {x: {shape: [N, T, 8]}}
layers:
  - linear: 24
    id: c_attn
  - split: {sizes: [8, 8, 8]}
    id: qkv
  - scaled_dot_product_attention: {heads: 2, causal: true}
    in: [qkv.0, qkv.1, qkv.2]
  - linear: 8
    id: c_proj
"""


def test_fuse_self_attention_golden_ir() -> None:
    found, after = run_fusion(GOLDEN_SPEC)
    assert not isinstance(found, str)
    check_golden("pass-fuse-self-attention", str(after))


def test_fusion_gives_the_zoo_the_same_outputs_as_portable_onnx() -> None:
    sizes = {"vocab": 100, "context": 16, "dim": 32, "heads": 4, "layers": 1}
    fused = dlc.compile(SPECS / "attention" / "gpt2_small.yaml", overrides=sizes)
    portable = dlc.compile(SPECS / "attention" / "gpt2_small.yaml", overrides=sizes, portable=True)
    ids = {"input_ids": np.random.default_rng(2).integers(0, 100, (2, 9))}
    assert [n.op for n in fused.graph].count("ort.attention") == 1
    error = max_relative_error(portable.run(ids, "cpu")["logits"], fused.run(ids, "cpu")["logits"])
    assert error <= 1e-5
