"""Scaled dot-product attention: the `scaled_dot_product_attention` op and block, and the
`multi_head_attention` block (projections + attention + output projection).

The op works on the model-dim layout that projections produce: query ``[N, S, heads*d]``,
key ``[N, L, kv_heads*d]``, value ``[N, L, kv_heads*dv]`` -> ``[N, S, heads*dv]``; it splits
and merges the heads itself. Per head::

    softmax(scale * q k^T + bias) v          scale = 1/sqrt(d) unless given

Grouped-query attention (Ainslie et al. 2023): with `kv_heads` < `heads`, query head ``h``
attends with key/value head ``h // (heads / kv_heads)``, as HF's ``repeat_kv`` and torch's
``enable_gqa``. The ONNX lowering never copies keys or values: it folds each group of
``heads / kv_heads`` query heads into the query length (``[N, kv_heads, group*S, d]``), so
one batched matmul per key/value head does the work.

`bias` comes from an optional fourth input: a key padding mask ``[N, L]`` (nonzero: attend,
zero: padding, which becomes the most negative float, as in HF transformers, so a row with
every key padded attends uniformly instead of producing NaN) or an additive float bias
broadcastable to ``[N, heads, S, L]`` (``[N|1, heads|1, S|1, L|1]``: T5's relative bias, Swin's
shifted-window mask, ALiBi). `causal` masks keys after the query's position
(-inf, top-left aligned, as ``is_causal`` in torch). MACs: ``N*heads*S*L*(d + dv)`` for
``q k^T`` and the weighted sum of values (GQA does the same work on fewer weights).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    FLOAT32_LOWEST,
    BlockConfig,
    BlockContext,
    BlockType,
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
    format_shape,
    init,
    require,
)

FLOAT32_MIN = FLOAT32_LOWEST


class AttentionAttrs(OpAttrs):
    heads: int = Field(ge=1)
    kv_heads: int | None = Field(None, ge=1)  # None: heads (multi-head attention)
    causal: bool = False
    scale: float | None = None  # None: 1 / sqrt(head dim)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # on the attention weights, training only


def key_value_heads(attrs: AttentionAttrs) -> int:
    return attrs.kv_heads if attrs.kv_heads is not None else attrs.heads


def head_dims(node: Node) -> tuple[int, int]:
    """(d, dv): the per-head widths of queries/keys and of values."""
    d = int(node.inputs[0].type.shape[-1]) // node.attrs.heads
    return d, int(node.inputs[2].type.shape[-1]) // key_value_heads(node.attrs)


def attention_scale(node: Node) -> float:
    scale = node.attrs.scale
    return scale if scale is not None else 1.0 / math.sqrt(head_dims(node)[0])


def _infer(attrs: AttentionAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(
        len(inputs) in (3, 4), "scaled_dot_product_attention takes query, key, value and an optional mask"
    )
    query, key, value = inputs[0], inputs[1], inputs[2]
    require(query is not None and key is not None and value is not None, "query, key and value are required")
    assert query is not None and key is not None and value is not None
    for name, t in (("query", query), ("key", key), ("value", value)):
        require(t.rank == 3, f"attention: {name} must be [N, T, features], got {t}")
        require(
            t.dtype == query.dtype and t.dtype.is_float, f"attention: {name} must be {query.dtype}, got {t}"
        )
    require(
        query.shape[0] == key.shape[0] == value.shape[0],
        f"attention: batch dims differ: {query}, {key}, {value}",
    )
    require(key.shape[1] == value.shape[1], f"attention: key {key} and value {value} have different lengths")
    heads, kv_heads = attrs.heads, key_value_heads(attrs)
    require(
        heads % kv_heads == 0,
        f"attention: kv_heads {kv_heads} does not divide heads {heads} (each key/value head serves "
        "an equal group of query heads)",
    )
    for name, features, count in (
        ("query", query.shape[2], heads),
        ("key", key.shape[2], kv_heads),
        ("value", value.shape[2], kv_heads),
    ):
        require(
            isinstance(features, int) and features % count == 0,
            f"attention: {name} features {features} do not split into {count} heads",
        )
    require(
        int(query.shape[2]) // heads == int(key.shape[2]) // kv_heads,
        f"attention: query {query} and key {key} have different features per head"
        + (f" ({heads} query heads, {kv_heads} key/value heads)" if kv_heads != heads else ""),
    )
    batch, length = query.shape[0], key.shape[1]
    mask = inputs[3] if len(inputs) > 3 else None
    if mask is not None:
        if mask.rank == 2:
            require(
                mask.shape == (batch, length),
                f"attention: a key padding mask must be [{batch}, {length}], got {mask}",
            )
        else:
            require(
                mask.rank == 4 and mask.dtype == query.dtype,
                f"attention: a bias must be 4-D {query.dtype}, got {mask}",
            )
            full = (batch, heads, query.shape[1], length)
            require(
                all(dim in (1, size) for dim, size in zip(mask.shape, full, strict=True)),
                f"attention: the bias {format_shape(mask.shape)} does not broadcast to the scores "
                f"{format_shape(full)} (each dim must be 1 or the scores' dim: [N|1, heads|1, S|1, L|1])",
            )
    return TensorType(query.dtype, (batch, query.shape[1], heads * (int(value.shape[2]) // kv_heads)))


def _macs(node: Node) -> Dim:
    query, key = node.inputs[0].type, node.inputs[1].type
    d, dv = head_dims(node)
    return query.shape[0] * query.shape[1] * key.shape[1] * node.attrs.heads * (d + dv)


# -- ONNX: the standard decomposition -------------------------------------------------------


def padding_bias(b: OnnxBuilder, mask: Value) -> str:
    """[N, L] keep-mask -> [N, 1, 1, L] additive float bias (0 or the most negative float)."""
    keep = b.name(mask)
    if mask.type.dtype is not DType.bool:
        keep = b.op("Cast", [keep], to=DType.bool.onnx)[0]
    zero = b.constant(np.array(0.0, np.float32), "zero")
    lowest = b.constant(np.array(FLOAT32_MIN, np.float32), "lowest")
    bias = b.op("Where", [keep, zero, lowest])[0]
    return b.op("Unsqueeze", [bias, b.int64s([1, 2], "axes")])[0]


def causal_bias(b: OnnxBuilder, scores: str) -> str:
    """[S, L] additive bias: -inf above the diagonal (keys after the query), 0 elsewhere."""
    from onnx import helper

    size = b.op("Shape", [scores], start=-2)[0]
    minus_infinity = helper.make_tensor("value", DType.float32.onnx, [1], [-np.inf])
    filled = b.op("ConstantOfShape", [size], value=minus_infinity)[0]
    return b.op("Trilu", [filled, b.int64s([1], "k")], upper=1)[0]  # keeps the part above the diagonal


def _to_onnx(b: OnnxBuilder, node: Node) -> None:
    heads, kv_heads = node.attrs.heads, key_value_heads(node.attrs)
    d, dv = head_dims(node)
    query, key, value = b.inputs(node)[:3]

    def split_heads(name: str, count: int, width: int, perm: list[int]) -> str:
        grouped = b.op("Reshape", [name, b.int64s([0, 0, count, width])])[0]
        return b.op("Transpose", [grouped], perm=perm)[0]

    def regroup(name: str, shape: list[int]) -> str:
        """GQA: [N, heads, S, x] <-> [N, kv_heads, group * S, x] (a free reshape)."""
        return name if kv_heads == heads else b.op("Reshape", [name, b.int64s(shape)])[0]

    q = split_heads(query, heads, d, [0, 2, 1, 3])  # [N, heads, S, d]
    k = split_heads(key, kv_heads, d, [0, 2, 3, 1])  # [N, kv_heads, d, L]
    v = split_heads(value, kv_heads, dv, [0, 2, 1, 3])  # [N, kv_heads, L, dv]
    scores = b.op("MatMul", [regroup(q, [0, kv_heads, -1, d]), k])[0]  # [N, kv_heads, group*S, L]
    # Scaled before regrouping: ONNX Runtime folds a Mul right after a MatMul into it.
    scores = b.op("Mul", [scores, b.constant(np.array(attention_scale(node), np.float32), "scale")])[0]
    scores = regroup(scores, [0, heads, -1, 0])  # [N, heads, S, L]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    if mask is not None:
        bias = padding_bias(b, mask) if mask.type.rank == 2 else b.name(mask)
        scores = b.op("Add", [scores, bias])[0]
    if node.attrs.causal:
        scores = b.op("Add", [scores, causal_bias(b, scores)])[0]
    weights = b.op("Softmax", [scores], axis=-1)[0]
    context = b.op("MatMul", [regroup(weights, [0, kv_heads, -1, 0]), v])[0]
    context = regroup(context, [0, heads, -1, dv])  # [N, heads, S, dv]
    merged = b.op("Transpose", [context], perm=[0, 2, 1, 3])[0]
    b.op("Reshape", [merged, b.int64s([0, 0, heads * dv])], b.outputs(node))


# -- torch ----------------------------------------------------------------------------------

ATTENTION_HELPER = '''
def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    heads: int,
    padding_mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
    dropout: float = 0.0,
    kv_heads: int | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention over `heads` heads: query [N, S, heads * d], key
    [N, L, kv_heads * d], value [N, L, kv_heads * dv] -> [N, S, heads * dv]. `padding_mask`
    [N, L] is nonzero for keys to attend to; `bias` is added to the scores. With fewer
    `kv_heads` than `heads`, each key/value head serves heads // kv_heads query heads."""
    kv_heads = kv_heads or heads
    q = query.unflatten(-1, (heads, -1)).transpose(1, 2)  # [N, heads, S, d]
    k = key.unflatten(-1, (kv_heads, -1)).transpose(1, 2)  # [N, kv_heads, L, d]
    v = value.unflatten(-1, (kv_heads, -1)).transpose(1, 2)  # [N, kv_heads, L, dv]
    if padding_mask is not None:  # padded keys get the most negative float, as in HF transformers
        keep = padding_mask.bool()[:, None, None, :]
        padding_bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device)
        padding_bias = padding_bias.masked_fill(~keep, torch.finfo(q.dtype).min)
        bias = padding_bias if bias is None else bias + padding_bias
    if causal:  # no attention to later positions
        future = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).triu(1)
        future_bias = torch.zeros(future.shape, dtype=q.dtype, device=q.device)
        future_bias = future_bias.masked_fill(future, float("-inf"))
        bias = future_bias if bias is None else bias + future_bias
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=bias, dropout_p=dropout, scale=scale, enable_gqa=kv_heads != heads
    )
    return out.transpose(1, 2).flatten(2)  # [N, S, heads * dv]


torch.fx.wrap("attention")  # one call in torch.fx graphs
'''


def _to_torch(t: TorchWriter, node: Node) -> str:
    helper = t.helper("attention", ATTENTION_HELPER)
    a = node.attrs
    args = [t.var(v) for v in node.inputs[:3]] + [f"heads={a.heads}"]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    if mask is not None:
        args.append(f"{'padding_mask' if mask.type.rank == 2 else 'bias'}={t.var(mask)}")
    if a.causal:
        args.append("causal=True")
    if a.scale is not None:
        args.append(f"scale={a.scale!r}")
    if a.dropout:
        args.append(f"dropout={a.dropout!r} if self.training else 0.0")
    if key_value_heads(a) != a.heads:
        args.append(f"kv_heads={a.kv_heads}")
    return f"{helper}({', '.join(args)})"


def _samples() -> list[OpSample]:
    rng = np.random.default_rng(60)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    padding = np.ones((2, 5), np.int64)
    padding[0, 3:] = 0
    padding[1, :] = 0  # every key padded: uniform attention, not NaN
    sequence_dims = {0: {0: "N", 1: "S"}, 1: {0: "N", 1: "L"}, 2: {0: "N", 1: "L"}}
    return [
        OpSample((arr(2, 5, 8), arr(2, 5, 8), arr(2, 5, 8)), {"heads": 2}, name="self"),
        OpSample((arr(2, 3, 8), arr(2, 5, 8), arr(2, 5, 12)), {"heads": 4}, name="cross-wider-values"),
        OpSample(
            (arr(2, 6, 8), arr(2, 6, 8), arr(2, 6, 8)),
            {"heads": 2, "causal": True},
            symbols=sequence_dims,
            name="causal-symbolic-lengths",
        ),
        OpSample(
            (arr(2, 4, 6), arr(2, 5, 6), arr(2, 5, 6), padding),
            {"heads": 3, "scale": 0.3},
            symbols={**sequence_dims, 3: {0: "N", 1: "L"}},
            name="padding-mask-scale",
        ),
        OpSample(
            (arr(2, 5, 8), arr(2, 5, 8), arr(2, 5, 8), padding.astype(bool)),
            {"heads": 1, "causal": True},
            name="bool-mask-causal",
        ),
        OpSample(
            (arr(2, 4, 8), arr(2, 5, 8), arr(2, 5, 8), arr(1, 2, 4, 5)),
            {"heads": 2, "dropout": 0.1},
            symbolic_batch=False,
            name="additive-bias",
        ),
        OpSample(  # ALiBi's shape: one row of slopes * distances per head, shared by queries
            (arr(2, 4, 8), arr(2, 5, 8), arr(2, 5, 8), arr(1, 4, 1, 5)),
            {"heads": 4},
            symbolic_batch=False,
            name="bias-broadcast-over-queries",
        ),
        OpSample(  # Swin's shape: one mask per window (batch), shared by the heads
            (arr(3, 4, 8), arr(3, 4, 8), arr(3, 4, 8), arr(3, 1, 4, 4)),
            {"heads": 2, "causal": True},
            name="bias-per-batch-causal",
        ),
        OpSample(
            (arr(2, 6, 16), arr(2, 6, 8), arr(2, 6, 8)),
            {"heads": 4, "kv_heads": 2, "causal": True},
            symbols=sequence_dims,
            name="grouped-query-causal",
        ),
        OpSample(
            (arr(2, 3, 12), arr(2, 5, 4), arr(2, 5, 6), arr(2, 3, 3, 5)),
            {"heads": 3, "kv_heads": 1, "scale": 0.4},
            symbolic_batch=False,
            name="multi-query-bias-wider-values",
        ),
        OpSample(
            (arr(2, 4, 8), arr(2, 5, 4), arr(2, 5, 4), padding),
            {"heads": 2, "kv_heads": 1},
            symbols={**sequence_dims, 3: {0: "N", 1: "L"}},
            name="multi-query-padding-mask",
        ),
    ]


OPS = [
    OpDef(
        "scaled_dot_product_attention",
        _infer,
        _to_onnx,
        _to_torch,
        _samples,
        AttentionAttrs,
        OpGroup.CONTRACTION,
        macs=_macs,
        doc="Multi-head softmax(scale q k^T + bias) v on [N, T, heads*d] inputs.",
    )
]


# -- blocks ---------------------------------------------------------------------------------


class AttentionConfig(BlockConfig):
    heads: int = Field(ge=1, description="Number of (query) heads; the feature dims must divide by it.")
    kv_heads: int | None = Field(
        None,
        ge=1,
        description="Key/value heads for grouped-query attention (must divide `heads`); default `heads`.",
    )
    causal: bool = Field(False, description="Mask keys after each query's position.")
    scale: float | None = Field(None, gt=0, description="Score scale; default 1/sqrt(head dim).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the attention weights (training).")


def check_kv_heads(ctx: BlockContext, config: AttentionConfig) -> None:
    if config.kv_heads is not None and config.heads % config.kv_heads:
        raise ctx.error(
            f"kv_heads {config.kv_heads} does not divide heads {config.heads}",
            hint="each key/value head serves an equal group of query heads: "
            f"choose kv_heads among {_divisors(config.heads)}",
        )


def _divisors(count: int) -> list[int]:
    """The divisors of `count`, found up to its square root (a count may be 2^31 - 1)."""
    small = [k for k in range(1, math.isqrt(count) + 1) if count % k == 0]
    return sorted({*small, *(count // k for k in small)})


def split_mask(
    ctx: BlockContext, inputs: list[Value], *, allow_bias: bool = False
) -> tuple[list[Value], Value | None]:
    """Separate a trailing key padding mask ([N, L]: rank 2), or with `allow_bias` an
    additive bias ([N|1, heads|1, S, L]: rank 4), from the sequences (rank 3)."""
    if len(inputs) > 1 and (inputs[-1].type.rank == 2 or (allow_bias and inputs[-1].type.rank == 4)):
        sequences, mask = inputs[:-1], inputs[-1]
    else:
        sequences, mask = inputs, None
    for value in sequences:
        if value.type.rank != 3:
            extra = " or an additive bias [N|1, heads|1, S, L]" if allow_bias else ""
            raise ctx.error(
                "takes sequences [N, T, features] and an optional key padding mask [N, T]"
                f"{extra}, got {value.type}"
            )
    return sequences, mask


def _attention_block(ctx: BlockContext, config: AttentionConfig, inputs: list[Value]) -> Value:
    sequences, mask = split_mask(ctx, inputs, allow_bias=True)
    if len(sequences) != 3:
        raise ctx.error(
            f"takes `in: [query, key, value]` and an optional mask or bias, got {len(sequences)} sequences"
        )
    check_kv_heads(ctx, config)
    return ctx.op("scaled_dot_product_attention", *sequences, mask, **config.model_dump())


class MultiHeadAttentionConfig(AttentionConfig):
    dim: int | None = Field(
        None, ge=1, description="Width of queries, keys and values; default: the query's."
    )
    bias: bool = Field(True, description="Biases in the input and output projections.")
    packed: bool = Field(
        True,
        description="One input projection `in_proj_weight` [3*dim, dim] as nn.MultiheadAttention; "
        "false: separate `q_proj`, `k_proj`, `v_proj` linears (needed when key/value widths differ).",
    )


def _linear(ctx: BlockContext, x: Value, weight: Value, bias: Value | None) -> Value:
    return ctx.op("linear", x, weight, *([bias] if bias is not None else []))


def _packed_projections(
    ctx: BlockContext, config: MultiHeadAttentionConfig, query: Value, memory: Value | None, dim: int
) -> tuple[Value, Value, Value]:
    """nn.MultiheadAttention's layout: `in_proj_weight` [3*dim, dim] holds the query, key and
    value projections; one matmul for self-attention, two (query; key and value) for cross."""
    features = query.type.shape[-1]
    if features != dim or (memory is not None and memory.type.shape[-1] != dim):
        widths = f"query {query.type}" + (f", key/value {memory.type}" if memory is not None else "")
        raise ctx.error(
            f"packed projections need every input {dim} wide ({widths})", hint="set `packed: false`"
        )
    bound = math.sqrt(6.0 / (dim + 3 * dim))  # xavier_uniform_ on [3*dim, dim], as torch
    weight = ctx.param("in_proj_weight", (3 * dim, dim), init.uniform(bound))
    bias = ctx.param("in_proj_bias", (3 * dim,), init.zeros()) if config.bias else None
    if memory is None:
        packed = _linear(ctx, query, weight, bias)
        q, k, v = ctx.ops("split", [packed], axis=-1, sizes=(dim, dim, dim))
        return q, k, v

    def rows(value: Value, start: int, end: int | None) -> Value:
        return ctx.op("slice", value, axis=0, start=start, end=end)

    q = _linear(ctx, query, rows(weight, 0, dim), rows(bias, 0, dim) if bias else None)
    kv = _linear(ctx, memory, rows(weight, dim, None), rows(bias, dim, None) if bias else None)
    k, v = ctx.ops("split", [kv], axis=-1, sizes=(dim, dim))
    return q, k, v


def _separate_projections(
    ctx: BlockContext, config: MultiHeadAttentionConfig, query: Value, memory: Value | None, dim: int
) -> tuple[Value, Value, Value]:
    """q_proj [dim] and, for grouped-query attention, narrower k_proj and v_proj
    [kv_heads * dim / heads], as HF's LlamaAttention."""
    source = memory if memory is not None else query
    kv_dim = dim // config.heads * (config.kv_heads or config.heads)
    q = ctx.block_call("linear", {"out": dim, "bias": config.bias}, [query], name="q_proj")
    k = ctx.block_call("linear", {"out": kv_dim, "bias": config.bias}, [source], name="k_proj")
    v = ctx.block_call("linear", {"out": kv_dim, "bias": config.bias}, [source], name="v_proj")
    return q, k, v


def multi_head_attention(ctx: BlockContext, config: MultiHeadAttentionConfig, inputs: list[Value]) -> Value:
    sequences, mask = split_mask(ctx, inputs, allow_bias=True)
    if len(sequences) not in (1, 2):
        raise ctx.error(
            "takes `in: [x]` (self-attention) or `in: [x, memory]` (cross-attention), each optionally "
            f"followed by a key padding mask or an additive bias, got {len(sequences)} sequences"
        )
    check_kv_heads(ctx, config)
    if config.packed and config.kv_heads not in (None, config.heads):
        raise ctx.error(
            f"grouped-query attention (kv_heads {config.kv_heads} < heads {config.heads}) has "
            "narrower key/value projections than the packed in_proj_weight holds",
            hint="set `packed: false`: separate q_proj, k_proj and v_proj, the latter two "
            "kv_heads * head dim wide",
        )
    query = sequences[0]
    memory = sequences[1] if len(sequences) == 2 else None
    dim = config.dim or query.type.shape[-1]
    if not isinstance(dim, int):
        raise ctx.error(f"the query's feature dim must be static, got {query.type}")
    if dim % config.heads:
        raise ctx.error(f"dim {dim} does not split into {config.heads} heads")
    project = _packed_projections if config.packed else _separate_projections
    q, k, v = project(ctx, config, query, memory, dim)
    attended = ctx.op(
        "scaled_dot_product_attention",
        q,
        k,
        v,
        mask,
        heads=config.heads,
        kv_heads=config.kv_heads,
        causal=config.causal,
        scale=config.scale,
        dropout=config.dropout,
    )
    with ctx.sub_scope("out_proj"):  # nn.MultiheadAttention zeroes this bias; nn.Linear does not
        weight = ctx.param("weight", (dim, dim), init.fan_in_uniform(dim))
        bias_init = init.zeros() if config.packed else init.fan_in_uniform(dim)
        bias = ctx.param("bias", (dim,), bias_init) if config.bias else None
        return _linear(ctx, attended, weight, bias)


BLOCKS = [
    BlockType(
        "scaled_dot_product_attention",
        AttentionConfig,
        _attention_block,
        "softmax(q k^T / sqrt(d) + bias) v over heads (grouped-query with `kv_heads`); "
        "`in: [query, key, value]` (+ a key padding mask [N, L] or an additive bias [N|1, heads|1, S, L]).",
        inputs=(3, 4),
        shorthand="heads",
    ),
    BlockType(
        "multi_head_attention",
        MultiHeadAttentionConfig,
        multi_head_attention,
        "Multi-head attention with projections (nn.MultiheadAttention); `in: [x]`, `in: [x, memory]`, "
        "each optionally followed by a key padding mask [N, L] or an additive bias [N|1, heads|1, S, L].",
        inputs=(1, 3),
        shorthand="heads",
    ),
]
