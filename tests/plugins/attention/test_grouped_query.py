"""Grouped-query attention and additive biases of any broadcastable 4-D shape, against
torch's own `F.scaled_dot_product_attention` (`enable_gqa`, a float `attn_mask`): through
the API in ONNX Runtime (fused and portable) and the ejected torch module, and through the
CLI. Tolerance 1e-5 relative to the output scale (float32; the errors seen are ~1e-7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.language.parity import compile_text, ejected_outputs, write_spec

TOLERANCE = 1e-5
RNG = np.random.default_rng(23)
HEADS, HEAD_DIM = 6, 4


def sdpa_spec(
    kv_heads: int, bias_shape: list | None, causal: bool, queries: str = "T", keys: str = "S"
) -> str:
    bias_input = f"  bias: {{shape: {bias_shape}}}\n" if bias_shape else ""
    return f"""
dlc: 1
name: gqa
inputs:
  q: {{shape: [N, {queries}, {HEADS * HEAD_DIM}]}}
  k: {{shape: [N, {keys}, {kv_heads * HEAD_DIM}]}}
  v: {{shape: [N, {keys}, {kv_heads * HEAD_DIM}]}}
{bias_input}layers:
  - scaled_dot_product_attention: {{heads: {HEADS}, kv_heads: {kv_heads}, causal: {str(causal).lower()}}}
    in: [q, k, v{", bias" if bias_shape else ""}]
    id: attention
"""


def torch_reference(feeds: dict[str, np.ndarray], causal: bool) -> np.ndarray:
    """torch's GQA: heads [N, heads, T, d] against [N, kv_heads, S, d] with enable_gqa."""
    q, k, v = (torch.from_numpy(feeds[n]).unflatten(-1, (-1, HEAD_DIM)).transpose(1, 2) for n in "qkv")
    bias = torch.from_numpy(feeds["bias"]) if "bias" in feeds else None
    if causal:  # top-left aligned, as is_causal; written as a bias so it adds to a given one
        future = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).triu(1)
        causal_bias = torch.zeros(future.shape).masked_fill(future, float("-inf"))
        bias = causal_bias if bias is None else bias + causal_bias
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=True)
    return out.transpose(1, 2).flatten(2).numpy()


def feeds_for(kv_heads: int, bias_shape: list | None, batch: int, queries: int, keys: int) -> dict:
    feeds = {
        "q": RNG.standard_normal((batch, queries, HEADS * HEAD_DIM)).astype(np.float32),
        "k": RNG.standard_normal((batch, keys, kv_heads * HEAD_DIM)).astype(np.float32),
        "v": RNG.standard_normal((batch, keys, kv_heads * HEAD_DIM)).astype(np.float32),
    }
    if bias_shape:
        sizes = {"N": batch, "T": queries, "S": keys}
        shape = [sizes.get(d, d) for d in bias_shape]
        feeds["bias"] = (3 * RNG.standard_normal(shape)).astype(np.float32)
    return feeds


CASES = [  # (kv_heads, bias shape, causal): T5 / Swin / ALiBi shapes, GQA, MQA and MHA
    (2, None, True),
    (1, None, False),
    (6, ["N", HEADS, "T", "S"], False),
    (3, [1, HEADS, "T", "S"], True),
    (2, ["N", 1, "T", "S"], False),
    (3, [1, HEADS, 1, "S"], True),
    (1, [1, 1, "T", 1], False),
]


@pytest.mark.parametrize(("kv_heads", "bias_shape", "causal"), CASES, ids=[str(c) for c in CASES])
def test_attention_matches_torch_sdpa_with_gqa_and_a_float_bias(
    tmp_path, kv_heads, bias_shape, causal
) -> None:
    text = sdpa_spec(kv_heads, bias_shape, causal)
    for batch, queries, keys in ((2, 5, 5), (1, 3, 7), (3, 1, 1)):
        feeds = feeds_for(kv_heads, bias_shape, batch, queries, keys)
        if causal and queries > keys:  # a query with no key before it: NaN in every lowering
            continue
        expected = torch_reference(feeds, causal)
        for portable in (False, True):
            model = compile_text(text, portable=portable)
            actual = model.run(feeds, provider="cpu")["attention"]
            assert max_relative_error(expected, actual) <= TOLERANCE, (portable, batch, queries, keys)
        ejected = ejected_outputs(model, tmp_path / f"{batch}_{queries}", feeds)["attention"]
        assert max_relative_error(expected, ejected) <= TOLERANCE


def test_gqa_costs_the_macs_of_multi_head_attention_with_fewer_weights() -> None:
    mha = compile_text(sdpa_spec(HEADS, None, True, "7", "7"))
    gqa = compile_text(sdpa_spec(2, None, True, "7", "7"))
    assert gqa.summary().macs == mha.summary().macs == HEADS * 7 * 7 * 2 * HEAD_DIM


MULTI_HEAD = """
dlc: 1
name: gqa_block
inputs:
  x: {shape: [N, T, 24]}
  bias: {shape: [1, 6, T, T]}
layers:
  - multi_head_attention: {heads: 6, kv_heads: 2, packed: false, causal: true}
    in: [x, bias]
    id: attention
"""


def test_multi_head_attention_block_with_kv_heads_projects_narrow_keys_and_values() -> None:
    model = compile_text(MULTI_HEAD, portable=True)
    shapes = {name: array.shape for name, array in model.weights().items()}
    assert shapes["attention.q_proj.weight"] == (24, 24)
    assert shapes["attention.k_proj.weight"] == shapes["attention.v_proj.weight"] == (8, 24)
    weights = {name: torch.from_numpy(array.copy()) for name, array in model.weights().items()}
    x = RNG.standard_normal((2, 5, 24)).astype(np.float32)
    bias = RNG.standard_normal((1, 6, 5, 5)).astype(np.float32)

    def project(name: str) -> torch.Tensor:
        out = F.linear(
            torch.from_numpy(x), weights[f"attention.{name}.weight"], weights[f"attention.{name}.bias"]
        )
        return out.unflatten(-1, (-1, 4)).transpose(1, 2)

    causal = torch.zeros(5, 5).masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
    heads = F.scaled_dot_product_attention(
        project("q_proj"),
        project("k_proj"),
        project("v_proj"),
        attn_mask=torch.from_numpy(bias) + causal,
        enable_gqa=True,
    )
    expected = F.linear(
        heads.transpose(1, 2).flatten(2),
        weights["attention.out_proj.weight"],
        weights["attention.out_proj.bias"],
    )
    actual = model.run({"x": x, "bias": bias}, provider="cpu")["attention"]
    assert max_relative_error(expected.numpy(), actual) <= TOLERANCE


def fused_ops(model) -> list[str]:
    return [n.op for n in model.graph if n.op.startswith("ort.") or n.op == "scaled_dot_product_attention"]


def test_a_full_bias_fuses_into_onnx_runtime_kernels_and_gqa_stays_standard() -> None:
    full = compile_text(sdpa_spec(HEADS, [1, HEADS, "T", "S"], False))
    assert fused_ops(full) == ["ort.multi_head_attention"]
    onnx_node = next(n for n in full.onnx_model().graph.node if n.op_type == "MultiHeadAttention")
    assert onnx_node.input[5] == "bias"  # attention_bias
    assert fused_ops(compile_text(sdpa_spec(2, None, False))) == ["scaled_dot_product_attention"]
    alibi = compile_text(sdpa_spec(HEADS, [1, HEADS, 1, "S"], False))  # broadcast over queries
    assert fused_ops(alibi) == ["scaled_dot_product_attention"]
    # causal with lengths that may differ: ONNX Runtime aligns to the last key, torch to the first
    assert fused_ops(compile_text(sdpa_spec(HEADS, None, True))) == ["scaled_dot_product_attention"]
    assert fused_ops(compile_text(sdpa_spec(HEADS, None, True, "T", "T"))) == ["ort.multi_head_attention"]


SELF_ATTENTION_WITH_BIAS = """
dlc: 1
name: t5ish
inputs:
  x: {shape: [N, T, 24]}
  bias: {shape: [1, 6, T, T]}
layers:
  - linear: 24
    id: q
    in: x
  - linear: 24
    id: k
    in: x
  - linear: 24
    id: v
    in: x
  - scaled_dot_product_attention: {heads: 6, causal: true}
    in: [q, k, v, bias]
    id: attention
"""


def test_self_attention_with_a_relative_bias_fuses_and_matches_portable(tmp_path) -> None:
    fused, portable = (
        compile_text(SELF_ATTENTION_WITH_BIAS),
        compile_text(SELF_ATTENTION_WITH_BIAS, portable=True),
    )
    assert fused_ops(fused) == ["ort.attention"]
    feeds = {
        "x": RNG.standard_normal((2, 7, 24)).astype(np.float32),
        "bias": RNG.standard_normal((1, 6, 7, 7)).astype(np.float32),
    }
    expected = portable.run(feeds, provider="cpu")["attention"]
    assert max_relative_error(expected, fused.run(feeds, provider="cpu")["attention"]) <= TOLERANCE
    ejected = ejected_outputs(fused, tmp_path / "fused", feeds)["attention"]
    assert max_relative_error(expected, ejected) <= TOLERANCE


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (sdpa_spec(2, None, False), "grouped-query attention (6 query heads, 2 key/value heads)"),
        (sdpa_spec(HEADS, [1, HEADS, 1, "S"], False), "broadcasts over queries or keys"),
        (sdpa_spec(HEADS, None, True), "ONNX Runtime aligns the causal mask to the last key"),
    ],
    ids=["gqa", "query-broadcast-bias", "causal-lengths"],
)
def test_check_says_why_such_attention_does_not_fuse(text: str, reason: str) -> None:
    from dlc.plugins.attention.fusion import _unfused_reason

    model = compile_text(text, opt_level=0)
    node = next(n for n in model.graph if n.op == "scaled_dot_product_attention")
    assert reason in (_unfused_reason(node) or "")


def test_cli_runs_a_gqa_spec_with_a_bias_as_torch_does(tmp_path) -> None:
    path = write_spec(tmp_path, sdpa_spec(2, [1, HEADS, "T", "S"], True))
    feeds = feeds_for(2, [1, HEADS, "T", "S"], 2, 3, 5)
    np.savez(tmp_path / "inputs.npz", **feeds)
    result = run_cli(
        "run", str(path), "--inputs", str(tmp_path / "inputs.npz"), "--output", str(tmp_path / "out.npz")
    )
    assert result.code == 0, result.output
    actual = np.load(tmp_path / "out.npz")["attention"]
    assert max_relative_error(torch_reference(feeds, causal=True), actual) <= TOLERANCE


TEMPLATE = """
dlc: 1
name: template
inputs:
  x: {shape: [N, T, 24]}
layers:
  - grouped_query_attention: {dim: 24, heads: 6, rotary: false, causal: false, bias: true}
    id: mha
    in: x
  - grouped_query_attention: {dim: 24, heads: 6, kv_heads: 2, theta: 100.0}
    id: gqa
    in: x
outputs: [mha, gqa]
"""


def test_one_template_is_multi_head_and_grouped_query_attention(tmp_path) -> None:
    """kv_heads defaults to heads (multi-head attention); `rotary: false` skips the rotary
    layers through `if:`, so they create no nodes."""
    model = compile_text(TEMPLATE, portable=True)
    shapes = {name: array.shape for name, array in model.weights().items()}
    assert shapes["mha.k_proj.weight"] == shapes["mha.q_proj.weight"] == (24, 24)
    assert shapes["mha.k_proj.bias"] == (24,) and "mha.o_proj.bias" not in shapes
    assert shapes["gqa.k_proj.weight"] == shapes["gqa.v_proj.weight"] == (8, 24)
    rotary_layers = {n.layer for n in model.graph if n.op == "rotary_embedding"}
    assert rotary_layers == {"gqa.q_rotated", "gqa.k_rotated"}
    weights = {name: torch.from_numpy(array.copy()) for name, array in model.weights().items()}
    x = RNG.standard_normal((2, 5, 24)).astype(np.float32)

    def heads(name: str) -> torch.Tensor:
        out = F.linear(torch.from_numpy(x), weights[f"mha.{name}.weight"], weights[f"mha.{name}.bias"])
        return out.unflatten(-1, (6, 4)).transpose(1, 2)

    attended = F.scaled_dot_product_attention(heads("q_proj"), heads("k_proj"), heads("v_proj"))
    expected = F.linear(attended.transpose(1, 2).flatten(2), weights["mha.o_proj.weight"])
    outputs = model.run({"x": x}, provider="cpu")
    assert max_relative_error(expected.numpy(), outputs["mha"]) <= TOLERANCE
    ejected = ejected_outputs(compile_text(TEMPLATE), tmp_path, {"x": x})
    for name in ("mha", "gqa"):
        assert max_relative_error(outputs[name], ejected[name]) <= TOLERANCE


def gqa_spec_8(causal: bool = True, keys: str = "T", extra: str = "") -> str:
    return f"""
dlc: 1
name: gqa8
inputs:
  q: {{shape: [N, T, 32]}}
  k: {{shape: [N, {keys}, 16]}}
  v: {{shape: [N, {keys}, 16]}}
layers:
  - scaled_dot_product_attention: {{heads: 4, kv_heads: 2, causal: {str(causal).lower()}{extra}}}
    in: [q, k, v]
    id: attention
"""


def test_causal_gqa_self_attention_uses_onnx_runtime_group_query_attention(tmp_path) -> None:
    for extra in ("", ", scale: 0.3"):
        fused = compile_text(gqa_spec_8(extra=extra))
        assert fused_ops(fused) == ["ort.group_query_attention"]
        assert "GroupQueryAttention" in {n.op_type for n in fused.onnx_model().graph.node}
        for batch, length in ((2, 7), (1, 1), (3, 16)):
            feeds = {
                "q": RNG.standard_normal((batch, length, 32)).astype(np.float32),
                "k": RNG.standard_normal((batch, length, 16)).astype(np.float32),
                "v": RNG.standard_normal((batch, length, 16)).astype(np.float32),
            }
            q, k, v = (torch.from_numpy(feeds[n]).unflatten(-1, (-1, 8)).transpose(1, 2) for n in "qkv")
            scale = 0.3 if extra else None
            expected = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True, scale=scale)
            expected = expected.transpose(1, 2).flatten(2).numpy()
            assert max_relative_error(expected, fused.run(feeds, provider="cpu")["attention"]) <= TOLERANCE
        ejected = ejected_outputs(fused, tmp_path / str(len(extra)), feeds)["attention"]
        assert max_relative_error(expected, ejected) <= TOLERANCE


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (gqa_spec_8(causal=False), "GroupQueryAttention is causal only"),
        (gqa_spec_8(keys="S"), "T queries over S keys"),
        (sdpa_spec(2, None, True, "T", "T"), "head size 4: ONNX Runtime's kernel needs a multiple of 8"),
        (sdpa_spec(2, ["N", HEADS, "T", "T"], True, "T", "T"), "takes no key padding mask or additive bias"),
        (sdpa_spec(HEADS, None, True, "T", "T"), "not grouped-query attention"),
    ],
    ids=["not-causal", "cross", "head-size", "bias", "multi-head"],
)
def test_group_query_fusion_says_why_it_does_not_apply(text: str, reason: str) -> None:
    from dlc.plugins.attention.fusion import _group_query_reason

    model = compile_text(text, opt_level=0)
    node = next(n for n in model.graph if n.op == "scaled_dot_product_attention")
    assert reason in (_group_query_reason(node) or "")
    assert "ort.group_query_attention" not in fused_ops(compile_text(text))
