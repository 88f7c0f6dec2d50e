"""Graph convolution blocks with PyTorch Geometric 2.8's options and parameter names, so a
PyG `state_dict` loads as it is (`conv1.lin.weight`, `conv1.bias`, `lins.0.weight`,
`att_src`, `lin_l.weight`, `nn.0.weight`, `eps`, ...).

Each is built from the message passing ops (`gather_edges`, `scatter_edges`,
`edge_softmax`) and the edge rewrites (`self_loops`, `edge_norm`):

- `gcn_conv` (Kipf & Welling): ``D^-1/2 (A + I) D^-1/2 (x W^T) + b``, PyG's `gcn_norm`.
- `cheb_conv` (Defferrard et al.): ``sum_k T_k(L~) x W_k^T + b`` with the Chebyshev
  recurrence ``T_k = 2 L~ T_{k-1} - T_{k-2}`` and ``L~ = 2 L / lambda_max - I``.
- `gat_conv` (Velickovic et al.): attention ``softmax_j(leaky_relu(a_s . W x_j + a_d . W x_i))``.
- `sage_conv` (Hamilton et al.): ``W_l aggr_j x_j + W_r x_i``.
- `gin_conv` (Xu et al.): ``nn((1 + eps) x_i + sum_j x_j)``, `nn` a template or block.

Dense transforms are `linear` ops (their MACs are counted, V x in x out as the reference
counts them); the per-edge work is reported by `dlc summary` separately.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ValidationError

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import BlockConfig, BlockContext, BlockType, Value, init

from .graph_inputs import graph_inputs


def _glorot(fan_in: int, fan_out: int) -> init.Init:
    """PyG's default `glorot` initialization: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    return init.uniform(math.sqrt(6.0 / (fan_in + fan_out)))


def _linear(ctx: BlockContext, name: str, x: Value, features: int, out: int, bias: bool = False) -> Value:
    """A PyG `Linear(features, out)` named `name` (`name.weight`, `name.bias`)."""
    with ctx.sub_scope(name):
        weight = ctx.param("weight", (out, features), _glorot(features, out))
        offset = ctx.param("bias", (out,), init.fan_in_uniform(features)) if bias else None
        return ctx.op("linear", x, weight, offset)


def _add_bias(ctx: BlockContext, out: Value, size: int) -> Value:
    return ctx.op("add", out, ctx.param("bias", (size,), init.zeros()))


def _propagate(ctx: BlockContext, x: Value, edges: Value, weight: Value | None, reduce: str = "sum") -> Value:
    """Messages x_j (times the edge weight) from every source j, reduced at each target i."""
    messages = ctx.op("gather_edges", x, edges, *([weight] if weight is not None else []))
    return ctx.op("scatter_edges", messages, edges, x, reduce=reduce)


# -- gcn_conv ----------------------------------------------------------------------------


class GcnConfig(BlockConfig):
    out: int = Field(gt=0, description="Output features per node.")
    improved: bool = Field(False, description="Self-loops weigh 2 (A + 2I).")
    cached: bool = Field(False, description="PyG's cache of the normalized graph; rejected (see below).")
    add_self_loops: bool = Field(True, description="Add a self-loop to every node (PyG: remaining ones).")
    normalize: bool = Field(True, description="Symmetric normalization D^-1/2 (A + I) D^-1/2.")
    bias: bool = Field(True, description="A learned bias added after aggregation.")


def _gcn(ctx: BlockContext, config: GcnConfig, inputs: list[Value]) -> Value:
    if config.cached:
        raise ctx.error(
            "`cached: true` caches one graph's normalization across calls, which a compiled model "
            "that serves every graph cannot do",
            hint="remove `cached` (the normalization is computed from edge_index on each run)",
        )
    x, features, edges, weight = graph_inputs(ctx, inputs, weighted=True)
    h = _linear(ctx, "lin", x, features, config.out)
    if config.normalize:
        if config.add_self_loops:
            # PyG 2.8 applies `improved` (loops of weight 2) only with edge weights: without
            # them, add_remaining_self_loops gets no weights and every edge weighs 1.
            fill = 2.0 if config.improved and weight is not None else 1.0
            edges, weight, _ = ctx.ops("self_loops", [edges, x, weight], mode="add_remaining", fill=fill)
        weight = ctx.op("edge_norm", edges, weight, x, normalization="sym", degree_at="target")
    out = _propagate(ctx, h, edges, weight)
    return _add_bias(ctx, out, config.out) if config.bias else out


# -- cheb_conv ---------------------------------------------------------------------------


class ChebConfig(BlockConfig):
    out: int = Field(gt=0, description="Output features per node.")
    K: int = Field(gt=0, le=64, description="Chebyshev terms T_0 .. T_{K-1} (K = 1: a plain linear map).")
    normalization: Literal["sym", "rw"] = Field(
        "sym", description="Laplacian: sym I - D^-1/2 A D^-1/2, rw I - D^-1 A."
    )
    lambda_max: float = Field(2.0, gt=0, description="Largest eigenvalue of the Laplacian (PyG's default 2).")
    bias: bool = Field(True, description="A learned bias added to the sum.")


def _cheb(ctx: BlockContext, config: ChebConfig, inputs: list[Value]) -> Value:
    x, features, edges, weight = graph_inputs(ctx, inputs, weighted=True)
    out = _linear(ctx, "lins.0", x, features, config.out)
    if config.K > 1:
        # L~ = 2 L / lambda_max - I with L = I - (normalized A): off-diagonal entries
        # -2 A_norm / lambda_max, diagonal 2 / lambda_max - 1 (0 for the default 2).
        edges, weight, _ = ctx.ops("self_loops", [edges, x, weight], mode="remove")
        norm = ctx.op(
            "edge_norm",
            edges,
            weight,
            x,
            normalization=config.normalization,
            degree_at="source",
            scale=-2.0 / config.lambda_max,
        )
        if config.lambda_max != 2.0:
            diagonal = 2.0 / config.lambda_max - 1.0
            edges, norm, _ = ctx.ops("self_loops", [edges, x, norm], mode="add", fill=diagonal)
        previous, current = x, _propagate(ctx, x, edges, norm)
        out = ctx.op("add", out, _linear(ctx, "lins.1", current, features, config.out))
        for k in range(2, config.K):
            doubled = ctx.op("scale", _propagate(ctx, current, edges, norm), factor=2.0)
            previous, current = current, ctx.op("sub", doubled, previous)
            out = ctx.op("add", out, _linear(ctx, f"lins.{k}", current, features, config.out))
    return _add_bias(ctx, out, config.out) if config.bias else out


# -- gat_conv ----------------------------------------------------------------------------


class GatConfig(BlockConfig):
    out: int = Field(gt=0, description="Output features per head.")
    heads: int = Field(1, gt=0, description="Attention heads.")
    concat: bool = Field(True, description="Concatenate the heads (heads * out features), else average them.")
    negative_slope: float = Field(0.2, description="LeakyReLU slope of the attention logits.")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Attention dropout (training only: removed here)."
    )
    add_self_loops: bool = Field(True, description="Replace self-loops by one per node before attending.")
    bias: bool = Field(True, description="A learned bias after concatenating or averaging.")
    residual: bool = Field(False, description="PyG's residual projection; not supported.")


def _gat(ctx: BlockContext, config: GatConfig, inputs: list[Value]) -> Value:
    if config.residual:
        raise ctx.error("`residual: true` is not supported", hint="add a residual with `add` layers instead")
    x, features, edges, _ = graph_inputs(ctx, inputs, weighted=False)
    heads, size, nodes = config.heads, config.out, x.type.shape[0]
    h = _linear(ctx, "lin", x, features, heads * size)
    per_head = ctx.op("reshape", h, h, shape=(nodes, heads, size))
    glorot = _glorot(heads, size)
    att_src = ctx.param("att_src", (1, heads, size), glorot)
    att_dst = ctx.param("att_dst", (1, heads, size), glorot)
    score_src = ctx.op("reduce_sum", ctx.op("mul", per_head, att_src), axes=(2,))  # [V, heads]
    score_dst = ctx.op("reduce_sum", ctx.op("mul", per_head, att_dst), axes=(2,))
    keep = None
    if config.add_self_loops:
        edges, _, keep = ctx.ops("self_loops", [edges, x], mode="add")
    logits = ctx.op(
        "add",
        ctx.op("gather_edges", score_src, edges),
        ctx.op("gather_edges", score_dst, edges, end="target"),
    )
    logits = ctx.op("leaky_relu", logits, negative_slope=config.negative_slope)
    attention = ctx.op("edge_softmax", logits, edges, x, keep)  # [E, heads]
    out = _propagate(ctx, per_head, edges, attention)  # [V, heads, out]
    if config.concat:
        out, width = ctx.op("reshape", out, out, shape=(nodes, heads * size)), heads * size
    else:
        out, width = ctx.op("reduce_mean", out, axes=(1,)), size
    return _add_bias(ctx, out, width) if config.bias else out


# -- sage_conv ---------------------------------------------------------------------------


class SageConfig(BlockConfig):
    out: int = Field(gt=0, description="Output features per node.")
    aggr: Literal["mean", "max", "sum", "add"] = Field("mean", description="Neighbour aggregation.")
    normalize: bool = Field(False, description="L2-normalize the output rows.")
    root_weight: bool = Field(True, description="Add W_r x_i (lin_r) for the node itself.")
    bias: bool = Field(True, description="lin_l has a bias.")
    project: bool = Field(False, description="PyG's input projection; not supported.")


def _sage(ctx: BlockContext, config: SageConfig, inputs: list[Value]) -> Value:
    if config.project:
        raise ctx.error("`project: true` is not supported", hint="add a linear + relu layer before it")
    x, features, edges, _ = graph_inputs(ctx, inputs, weighted=False)
    reduce = "sum" if config.aggr == "add" else config.aggr
    out = _linear(ctx, "lin_l", _propagate(ctx, x, edges, None, reduce), features, config.out, config.bias)
    if config.root_weight:
        out = ctx.op("add", out, _linear(ctx, "lin_r", x, features, config.out))
    if config.normalize:  # F.normalize(out, p=2, dim=-1): out / max(||out||, 1e-12)
        norm = ctx.op("sqrt", ctx.op("reduce_sum", ctx.op("mul", out, out), axes=(1,), keepdims=True))
        floor = ctx.constant(np.array(1e-12, dtype=np.float32), "eps")
        out = ctx.op("div", out, ctx.op("maximum", norm, floor))
    return out


# -- gin_conv ----------------------------------------------------------------------------


class GinConfig(BlockConfig):
    nn: str = Field(description="The template (or block) applied after aggregation: PyG's `nn`.")
    options: dict[str, Any] = Field(default_factory=dict, description="Its arguments, as a mapping.")
    eps: float = Field(0.0, description="Initial epsilon: (1 + eps) x_i + sum_j x_j.")
    train_eps: bool = Field(False, description="eps is a parameter (else a buffer, as in PyG).")


def _gin(ctx: BlockContext, config: GinConfig, inputs: list[Value]) -> Value:
    x, _, edges, _ = graph_inputs(ctx, inputs, weighted=False)
    eps = ctx.param("eps", (1,), init.constant(config.eps), trainable=config.train_eps)
    one = ctx.constant(np.ones(1, dtype=np.float32), "one")
    combined = ctx.op("add", _propagate(ctx, x, edges, None), ctx.op("mul", ctx.op("add", eps, one), x))
    try:
        return ctx.block_call(config.nn, config.options, [combined], name="nn")
    except KeyError:
        raise ctx.error(f"unknown block or template '{config.nn}' for `nn`") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in error.errors()
        )
        raise ctx.error(f"invalid options for '{config.nn}': {problems}") from None


BLOCKS = [
    BlockType(
        "gcn_conv",
        GcnConfig,
        _gcn,
        "`in: [x, edge_index(, edge_weight)]`: D^-1/2 (A + I) D^-1/2 x W^T + b (PyG GCNConv).",
        inputs=(2, 3),
        shorthand="out",
    ),
    BlockType(
        "cheb_conv",
        ChebConfig,
        _cheb,
        "`in: [x, edge_index(, edge_weight)]`: Chebyshev graph convolution of order K (PyG ChebConv).",
        inputs=(2, 3),
    ),
    BlockType(
        "gat_conv",
        GatConfig,
        _gat,
        "`in: [x, edge_index]`: graph attention, multi-head, concatenated or averaged (PyG GATConv).",
        inputs=(2, 2),
        shorthand="out",
    ),
    BlockType(
        "sage_conv",
        SageConfig,
        _sage,
        "`in: [x, edge_index]`: GraphSAGE, mean/max/sum neighbour aggregation + root weight (PyG SAGEConv).",
        inputs=(2, 2),
        shorthand="out",
    ),
    BlockType(
        "gin_conv",
        GinConfig,
        _gin,
        "`in: [x, edge_index]`: nn((1 + eps) x + sum of neighbours) (PyG GINConv).",
        inputs=(2, 2),
        shorthand="nn",
    ),
]
