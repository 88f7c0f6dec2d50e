"""ONNX Runtime's fused attention kernels as IR ops (contrib domain ``com.microsoft``), which
the fusion passes (`fusion.py`) put in place of `scaled_dot_product_attention` when the
output is for ONNX Runtime (not `portable`). Available in onnxruntime >= 1.17 on the CPU
and CUDA execution providers; dlc pins and tests 1.31.1.

- `ort.attention` -> ``Attention``: self-attention with its query/key/value projection
  inside: one [E_in, 3E] matmul, then the heads. Inputs: x [N, S, E_in], the projection
  weight [3E, E_in] in nn.Linear's layout (rows: queries, keys, values), its bias [3E],
  an optional key padding mask [N, S] and an optional additive bias [N|1, heads|1, S, S]
  (``attention_bias``).
- `ort.multi_head_attention` -> ``MultiHeadAttention``: the attention of already projected
  queries, keys and values (cross-attention too), with an optional key padding mask [N, L]
  and an optional additive bias [N|1, heads|1, S, L].
- `ort.group_query_attention` -> ``GroupQueryAttention``: causal grouped-query
  self-attention of projected queries [N, S, heads*d], keys and values [N, S, kv_heads*d],
  with no past (a whole prompt), so its causal mask (aligned to the last key) is torch's.

Both set ``mask_filter_value`` to the most negative float, the additive bias dlc uses for
padding, so fully padded rows attend uniformly, as in the standard lowering. ONNX Runtime
gives causally masked scores that value too (dlc: -inf), which differs when every earlier
key is padded, so these ops take a padding mask or `causal`, not both. The torch lowering
is the same `attention()` helper the standard op uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    Dim,
    DType,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    Value,
    require,
)

from .attention import ATTENTION_HELPER, FLOAT32_MIN, AttentionAttrs
from .attention import _infer as attention_infer
from .attention import _samples as attention_samples

MICROSOFT = "com.microsoft"


class FusedAttentionAttrs(OpAttrs):
    heads: int = Field(ge=1)
    causal: bool = False
    scale: float | None = None


def _mask_index(b: OnnxBuilder, node: Node, index: int) -> str:
    """The key padding mask as ONNX Runtime's int32 ``mask_index`` (1: attend, 0: padding)."""
    mask = node.inputs[index] if len(node.inputs) > index else None
    if mask is None:
        return ""
    return b.op("Cast", [b.op("Cast", [b.name(mask)], to=DType.bool.onnx)[0]], to=DType.int32.onnx)[0]


def _contrib_attributes(node: Node) -> dict:
    attributes = {"num_heads": node.attrs.heads, "mask_filter_value": FLOAT32_MIN}
    if node.attrs.causal:
        attributes["unidirectional"] = 1
    if node.attrs.scale is not None:
        attributes["scale"] = node.attrs.scale
    return attributes


def _optional_input(node: Node, index: int) -> Value | None:
    return node.inputs[index] if len(node.inputs) > index else None


def _attention_bias(b: OnnxBuilder, node: Node, index: int, gap: int) -> list[str]:
    """The trailing ONNX inputs for an optional additive bias: `gap` empty inputs (Attention's
    ``past`` comes between its mask and ``attention_bias``), then the bias."""
    bias = _optional_input(node, index)
    return [] if bias is None else [""] * gap + [b.name(bias)]


def _check_bias(bias: TensorType | None, batch: Dim, heads: int, queries: Dim, keys: Dim, op: str) -> None:
    if bias is None:
        return
    require(
        bias.rank == 4
        and bias.dtype is DType.float32
        and bias.shape[0] in (batch, 1)
        and bias.shape[1] in (heads, 1)
        and bias.shape[2:] == (queries, keys),
        f"{op}: the attention bias must be float32[{batch}|1, {heads}|1, {queries}, {keys}], got {bias}",
    )


def _helper_call(t: TorchWriter, node: Node, sequences: str, mask_index: int) -> str:
    helper = t.helper("attention", ATTENTION_HELPER)
    args = [sequences, f"heads={node.attrs.heads}"]
    mask = _optional_input(node, mask_index)
    if mask is not None:
        args.append(f"padding_mask={t.var(mask)}")
    bias = _optional_input(node, mask_index + 1)
    if bias is not None:
        args.append(f"bias={t.var(bias)}")
    if node.attrs.causal:
        args.append("causal=True")
    if node.attrs.scale is not None:
        args.append(f"scale={node.attrs.scale!r}")
    return f"{helper}({', '.join(args)})"


# -- ort.attention --------------------------------------------------------------------------


def _attention_infer(attrs: FusedAttentionAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x, weight = inputs[0], inputs[1]
    require(x is not None and weight is not None, "ort.attention needs an input and a projection weight")
    assert x is not None and weight is not None
    require(x.rank == 3 and x.dtype is DType.float32, f"ort.attention expects float32 [N, S, E], got {x}")
    require(
        weight.rank == 2 and weight.shape[1] == x.shape[2] and int(weight.shape[0]) % 3 == 0,
        f"ort.attention: the projection weight must be [3 * dim, {x.shape[2]}], got {weight}",
    )
    width = int(weight.shape[0]) // 3
    require(width % attrs.heads == 0, f"ort.attention: width {width} does not split into {attrs.heads} heads")
    bias = inputs[2] if len(inputs) > 2 else None
    if bias is not None:
        require(
            bias.shape == (weight.shape[0],),
            f"ort.attention: the bias must be [{weight.shape[0]}], got {bias}",
        )
    mask = inputs[3] if len(inputs) > 3 else None
    if mask is not None:
        require(mask.shape == x.shape[:2], f"ort.attention: the padding mask must be [N, S], got {mask}")
        require(not attrs.causal, "ort.attention takes a padding mask or `causal`, not both")
    bias = inputs[4] if len(inputs) > 4 else None
    _check_bias(bias, x.shape[0], attrs.heads, x.shape[1], x.shape[1], "ort.attention")
    return TensorType(x.dtype, (x.shape[0], x.shape[1], width))


def _attention_macs(node: Node) -> Dim:
    x, weight = node.inputs[0].type, node.inputs[1].type
    width = int(weight.shape[0]) // 3
    projection = x.shape[0] * x.shape[1] * x.shape[2] * weight.shape[0]
    return projection + x.shape[0] * x.shape[1] * x.shape[1] * 2 * width


def _attention_onnx(b: OnnxBuilder, node: Node) -> None:
    x, weight = b.inputs(node)[:2]
    bias = b.name(node.inputs[2]) if len(node.inputs) > 2 else ""
    if not bias:  # the CPU kernel reads the bias unconditionally (it crashes without one)
        bias = b.constant(np.zeros(int(node.inputs[1].type.shape[0]), np.float32), "zero_bias")
    projection = b.op("Transpose", [weight], perm=[1, 0])[0]  # [E_in, 3E], folded at load
    inputs = [x, projection, bias, _mask_index(b, node, 3), *_attention_bias(b, node, 4, gap=1)]
    b.op("Attention", inputs, b.outputs(node), domain=MICROSOFT, **_contrib_attributes(node))


def _attention_torch(t: TorchWriter, node: Node) -> str:
    x, weight = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    projected = f"F.linear({t.var(x)}, {t.var(weight)}, {t.var(bias)})"
    return _helper_call(t, node, f"*{projected}.chunk(3, dim=-1)", 3)


def _attention_samples() -> list[OpSample]:
    rng = np.random.default_rng(63)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    padding = np.ones((2, 5), np.int64)
    padding[0, 3:] = 0
    padding[1, :] = 0  # every key padded: uniform attention, as the standard lowering
    symbols = {0: {0: "N", 1: "S"}, 3: {0: "N", 1: "S"}}
    return [
        OpSample((arr(2, 5, 6), arr(24, 6), arr(24)), {"heads": 2}, params=frozenset({1, 2}), name="bias"),
        OpSample(
            (arr(2, 5, 6), arr(12, 6), None, padding),
            {"heads": 1, "scale": 0.2},
            symbols=symbols,
            name="mask",
        ),
        OpSample(
            (arr(2, 7, 8), arr(24, 8), arr(24)),
            {"heads": 4, "causal": True},
            symbols={0: {1: "S"}},
            name="causal",
        ),
        OpSample(
            (arr(2, 5, 8), arr(24, 8), arr(24), None, arr(1, 4, 5, 5)),
            {"heads": 4, "causal": True},
            params=frozenset({1, 2}),
            symbolic_batch=False,
            name="causal-bias-shared-by-the-batch",
        ),
        OpSample(
            (arr(2, 5, 6), arr(12, 6), None, padding, arr(2, 1, 5, 5)),
            {"heads": 2},
            symbolic_batch=False,
            name="mask-and-bias-shared-by-the-heads",
        ),
    ]


# -- ort.multi_head_attention -----------------------------------------------------------------


def _multi_head_infer(attrs: FusedAttentionAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    mask = inputs[3] if len(inputs) > 3 else None
    require(
        mask is None or mask.rank == 2,
        f"ort.multi_head_attention takes a key padding mask [N, L], got {mask}",
    )
    require(
        mask is None or not attrs.causal,
        "ort.multi_head_attention takes a padding mask or `causal`, not both",
    )
    query, key = inputs[0], inputs[1]
    require(
        not attrs.causal or query is None or key is None or query.shape[1] == key.shape[1],
        "ort.multi_head_attention: `causal` needs as many queries as keys (ONNX Runtime aligns "
        "the causal mask to the last key)",
    )
    result = attention_infer(
        AttentionAttrs(heads=attrs.heads, causal=attrs.causal, scale=attrs.scale), inputs[:4]
    )
    bias = inputs[4] if len(inputs) > 4 else None
    if query is not None and key is not None:
        _check_bias(
            bias, query.shape[0], attrs.heads, query.shape[1], key.shape[1], "ort.multi_head_attention"
        )
    return result


def _multi_head_macs(node: Node) -> Dim:
    query, key, value = (v.type for v in node.inputs[:3])
    return query.shape[0] * query.shape[1] * key.shape[1] * (query.shape[2] + value.shape[2])


def _multi_head_onnx(b: OnnxBuilder, node: Node) -> None:
    query, key, value = b.inputs(node)[:3]
    inputs = [query, key, value, "", _mask_index(b, node, 3), *_attention_bias(b, node, 4, gap=0)]
    b.op("MultiHeadAttention", inputs, b.outputs(node), domain=MICROSOFT, **_contrib_attributes(node))


def _multi_head_torch(t: TorchWriter, node: Node) -> str:
    return _helper_call(t, node, ", ".join(t.var(v) for v in node.inputs[:3]), 3)


def _multi_head_samples() -> list[OpSample]:
    """The standard op's samples that the kernel takes: no dropout or GQA, a 4-D bias moved
    to its own input when it is [N|1, heads|1, S, L], causal only with as many queries as keys."""
    samples = []
    for sample in attention_samples():
        attrs = {k: v for k, v in sample.attrs.items() if k != "dropout"}
        query, key = sample.inputs[0], sample.inputs[1]
        mask = sample.inputs[3] if len(sample.inputs) > 3 else None
        symbols = sample.symbols or {}
        lengths_differ = query.shape[1] != key.shape[1] or symbols.get(0, {}).get(1) != symbols.get(
            1, {}
        ).get(1)
        if "kv_heads" in attrs or (attrs.get("causal") and lengths_differ):
            continue
        if mask is not None and mask.ndim == 4:
            if mask.shape[2:] != (query.shape[1], key.shape[1]):
                continue
            inputs = (*sample.inputs[:3], None, mask)
        elif mask is not None and attrs.get("causal"):
            continue
        else:
            inputs = sample.inputs
        samples.append(
            OpSample(
                inputs, attrs, symbols=sample.symbols, symbolic_batch=sample.symbolic_batch, name=sample.name
            )
        )
    return samples


# -- ort.group_query_attention ---------------------------------------------------------------


class GroupQueryAttrs(OpAttrs):
    heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    scale: float | None = None


def _group_query_infer(attrs: GroupQueryAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) == 3, "ort.group_query_attention takes query, key and value")
    query, key = inputs[0], inputs[1]
    require(query is not None and key is not None, "ort.group_query_attention needs queries and keys")
    assert query is not None and key is not None
    require(
        query.dtype is DType.float32 and query.shape[1] == key.shape[1],
        f"ort.group_query_attention: causal self-attention of float32 queries and keys of one length, "
        f"got {query} and {key}",
    )
    result = attention_infer(
        AttentionAttrs(heads=attrs.heads, kv_heads=attrs.kv_heads, causal=True, scale=attrs.scale), inputs
    )
    require(
        inputs[2] is not None and inputs[2].shape[2] == key.shape[2],
        "ort.group_query_attention: values must be as wide as keys",
    )
    require(
        int(query.shape[2]) // attrs.heads % 8 == 0,
        "ort.group_query_attention: ONNX Runtime's kernel needs a head size that is a multiple of 8",
    )
    return result


def _group_query_macs(node: Node) -> Dim:
    query = node.inputs[0].type
    return query.shape[0] * query.shape[1] * query.shape[1] * 2 * query.shape[2]


def _group_query_onnx(b: OnnxBuilder, node: Node) -> None:
    """No past: ``seqlens_k`` is S - 1 for every sequence, ``total_sequence_length`` S."""
    query, key, value = b.inputs(node)
    length = b.op("Cast", [b.op("Shape", [query], start=1, end=2)[0]], to=DType.int32.onnx)[0]
    total = b.op("Squeeze", [length])[0]
    last = b.op("Sub", [length, b.constant(np.array([1], np.int32), "one")])[0]
    seqlens = b.op("Expand", [last, b.op("Shape", [query], start=0, end=1)[0]])[0]  # [N]
    attributes = {"num_heads": node.attrs.heads, "kv_num_heads": node.attrs.kv_heads}
    if node.attrs.scale is not None:
        attributes["scale"] = node.attrs.scale
    outputs = [*b.outputs(node), b.fresh("present_key"), b.fresh("present_value")]
    b.op(
        "GroupQueryAttention",
        [query, key, value, "", "", seqlens, total],
        outputs,
        domain=MICROSOFT,
        **attributes,
    )


def _group_query_torch(t: TorchWriter, node: Node) -> str:
    helper = t.helper("attention", ATTENTION_HELPER)
    args = [*(t.var(v) for v in node.inputs), f"heads={node.attrs.heads}", "causal=True"]
    if node.attrs.scale is not None:
        args.append(f"scale={node.attrs.scale!r}")
    return f"{helper}({', '.join(args)}, kv_heads={node.attrs.kv_heads})"


def _group_query_samples() -> list[OpSample]:
    rng = np.random.default_rng(65)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    lengths = {index: {0: "N", 1: "S"} for index in range(3)}
    return [
        OpSample((arr(2, 6, 32), arr(2, 6, 16), arr(2, 6, 16)), {"heads": 4, "kv_heads": 2}, symbols=lengths),
        OpSample(
            (arr(1, 5, 24), arr(1, 5, 8), arr(1, 5, 8)),
            {"heads": 3, "kv_heads": 1, "scale": 0.2},
            symbols=lengths,
            name="multi-query-scale",
        ),
    ]


OPS = [
    OpDef(
        "ort.attention",
        _attention_infer,
        _attention_onnx,
        _attention_torch,
        _attention_samples,
        FusedAttentionAttrs,
        OpGroup.CONTRACTION,
        macs=_attention_macs,
        doc="ONNX Runtime's Attention: the q/k/v projection and multi-head attention, fused.",
    ),
    OpDef(
        "ort.multi_head_attention",
        _multi_head_infer,
        _multi_head_onnx,
        _multi_head_torch,
        _multi_head_samples,
        FusedAttentionAttrs,
        OpGroup.CONTRACTION,
        macs=_multi_head_macs,
        doc="ONNX Runtime's MultiHeadAttention on projected queries, keys and values.",
    ),
    OpDef(
        "ort.group_query_attention",
        _group_query_infer,
        _group_query_onnx,
        _group_query_torch,
        _group_query_samples,
        GroupQueryAttrs,
        OpGroup.CONTRACTION,
        macs=_group_query_macs,
        doc="ONNX Runtime's GroupQueryAttention: causal grouped-query self-attention, no past.",
    ),
]
