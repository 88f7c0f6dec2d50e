"""Ops that rewrite a graph's edges before message passing: self-loops and degree
normalization, as PyG's `gcn_norm`, `get_laplacian`, `add_(remaining_)self_loops` and
`remove_self_loops` compute them.

Edges keep a fixed count so that shapes stay symbolic (E, or E + V with the loops): an
edge that PyG *removes* (a self-loop already present) stays in place with weight 0 and
`keep` false. A weight-0 edge adds exactly 0 to a sum, and `edge_softmax` leaves edges
with `keep` false out, so the results are PyG's.

- ``self_loops(edge_index, like[, edge_weight])`` -> (edge_index, edge_weight, keep):
  `remove` zeroes the loops present; `add` (GAT) also appends one loop per node with
  weight `fill`; `add_remaining` (GCN) appends one loop per node whose weight is that of
  the node's existing loop if it has one, else `fill` (PyG's add_remaining_self_loops).
- ``edge_norm(edge_index, edge_weight, like)``: `sym` gives
  ``w * d[source]^-1/2 * d[target]^-1/2`` (``D^-1/2 A D^-1/2``), `rw` gives ``w / d``,
  the degree d summed at the edges' `degree_at` end; 1/0 is 0 (PyG's masked_fill of inf);
  the result is multiplied by `scale` (ChebNet's ``-2 / lambda_max``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    DType,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchExpr,
    TorchWriter,
    require,
)

from .graph_lowering import edge_end, filled_vector, row_count, scatter_helper, scatter_rows
from .message_passing import check_edge_index
from .sample_graphs import sample_graph


def _check_weight(weight: TensorType | None, edges: TensorType, what: str) -> None:
    if weight is not None:
        require(
            weight.dtype.is_float and weight.shape == (edges.shape[1],),
            f"{what}: edge_weight must be [E] floating point with E = {edges.shape[1]} "
            f"(edge_index {edges}), got {weight}",
        )


# -- self_loops --------------------------------------------------------------------------


class SelfLoopsAttrs(OpAttrs):
    mode: Literal["remove", "add", "add_remaining"] = "add"
    fill: float = 1.0


def _loops_infer(attrs: SelfLoopsAttrs, inputs: Sequence[TensorType | None]) -> list[TensorType]:
    edges = check_edge_index(inputs[0], "self_loops")
    like = inputs[1]
    require(like is not None and like.rank >= 1, "self_loops needs node features (for V) as input 2")
    assert like is not None
    weight = inputs[2] if len(inputs) > 2 else None
    _check_weight(weight, edges, "self_loops")
    dtype = weight.dtype if weight is not None else like.dtype
    count = edges.shape[1] if attrs.mode == "remove" else edges.shape[1] + like.shape[0]
    return [
        TensorType(DType.int64, (2, count)),
        TensorType(dtype, (count,)),
        TensorType(DType.bool, (count,)),
    ]


def _loops_onnx(b: OnnxBuilder, node: Node) -> None:
    edge_index, like, *rest = b.inputs(node)
    out_edges, out_weight, out_keep = b.outputs(node)
    dtype = node.outputs[1].type.dtype
    source = edge_end(b, edge_index, "source")
    is_loop = b.op("Equal", [source, edge_end(b, edge_index, "target")])[0]
    ones = None if rest and rest[0] else filled_vector(b, b.op("Shape", [source])[0], 1.0, dtype)
    weight = ones or rest[0]
    zero = b.constant(np.array(0, dtype=dtype.numpy), "zero")
    kept_weight = b.op("Where", [is_loop, zero, weight])[0]
    keep = b.op("Not", [is_loop])[0]
    if node.attrs.mode == "remove":
        b.op("Identity", [edge_index], [out_edges])
        b.op("Identity", [kept_weight], [out_weight])
        b.op("Identity", [keep], [out_keep])
        return
    nodes = row_count(b, like)  # [1]
    count = b.op("Squeeze", [nodes, b.int64s([0], "axes")])[0]
    start, step = (
        b.constant(np.array(0, dtype=np.int64), "start"),
        b.constant(np.array(1, dtype=np.int64), "step"),
    )
    loop = b.op("Unsqueeze", [b.op("Range", [start, count, step])[0], b.int64s([0], "axes")])[0]  # [1, V]
    loops = b.op("Concat", [loop, loop], axis=0)[0]
    b.op("Concat", [edge_index, loops], [out_edges], axis=1)
    if node.attrs.mode == "add_remaining":
        # One extra slot V takes the writes of the edges that are no loops; a node's last
        # loop wins, as PyG's `loop_attr[loop_nodes] = loop_weights` (ScatterElements
        # writes in order; ScatterND's writes race across threads).
        slots = b.op("Add", [nodes, b.int64s([1], "one")])[0]
        filled = filled_vector(b, slots, node.attrs.fill, dtype)
        target = b.op("Where", [is_loop, source, count])[0]
        written = b.op("ScatterElements", [filled, target, weight], axis=0)[0]
        loop_weight = b.op("Slice", [written, b.int64s([0], "starts"), nodes, b.int64s([0], "axes")])[0]
    else:
        loop_weight = filled_vector(b, nodes, node.attrs.fill, dtype)
    b.op("Concat", [kept_weight, loop_weight], [out_weight], axis=0)
    trues = b.op("Cast", [filled_vector(b, nodes, 1.0, DType.float32)], to=DType.bool.onnx)[0]
    b.op("Concat", [keep, trues], [out_keep], axis=0)


_SELF_LOOPS = '''
def self_loops(
    edge_index: torch.Tensor, num_nodes: int, edge_weight: torch.Tensor | None, fill: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Self-loops as PyG handles them, keeping the edge count fixed: loops already present
    get weight 0 and keep=False; `add` appends one loop per node of weight `fill`,
    `add_remaining` one whose weight is the node's existing loop's, else `fill`."""
    source, target = edge_index
    is_loop = source == target
    weight = torch.ones(source.shape, dtype=torch.float32) if edge_weight is None else edge_weight
    kept, keep = weight.masked_fill(is_loop, 0.0), ~is_loop
    if mode == "remove":
        return edge_index, kept, keep
    loop = torch.arange(num_nodes, device=edge_index.device)
    loop_weight = weight.new_full((num_nodes,), fill)
    if mode == "add_remaining":
        loop_weight[source[is_loop]] = weight[is_loop]
    return (
        torch.cat([edge_index, torch.stack([loop, loop])], dim=1),
        torch.cat([kept, loop_weight]),
        torch.cat([keep, torch.ones_like(loop, dtype=torch.bool)]),
    )
'''


def _loops_torch(t: TorchWriter, node: Node) -> TorchExpr:
    edge_index, like = (t.var(v) for v in node.inputs[:2])
    weight = t.var(node.inputs[2]) if len(node.inputs) > 2 else "None"
    name = t.helper("self_loops", _SELF_LOOPS)
    attrs = node.attrs
    code = f"{name}({edge_index}, {like}.size(0), {weight}, {attrs.fill!r}, {attrs.mode!r})"
    return TorchExpr(code, "{0}, {1}, {2}")


def _loops_samples() -> list[OpSample]:
    x, edge_index, weight = sample_graph(seed=9, nodes=6, edges=10, features=2)
    edge_index[:, 3] = [4, 4]  # a second self-loop (on another node)
    graph = {0: {1: "E"}, 1: {0: "V"}, 2: {0: "E"}}
    return [
        OpSample((edge_index, x, weight), {"mode": mode, "fill": 2.0}, symbols=graph, name=mode)
        for mode in ("remove", "add", "add_remaining")
    ] + [OpSample((edge_index, x), {"mode": "add_remaining"}, symbols=graph, name="unweighted")]


# -- edge_norm ---------------------------------------------------------------------------


class EdgeNormAttrs(OpAttrs):
    normalization: Literal["sym", "rw"] = "sym"
    degree_at: Literal["source", "target"] = "target"
    scale: float = 1.0


def _norm_infer(attrs: EdgeNormAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    edges = check_edge_index(inputs[0], "edge_norm")
    weight, like = inputs[1], inputs[2]
    _check_weight(weight, edges, "edge_norm")
    require(like is not None and like.rank >= 1, "edge_norm needs node features (for V) as input 3")
    assert like is not None
    return weight if weight is not None else TensorType(like.dtype, (edges.shape[1],))


def _norm_onnx(b: OnnxBuilder, node: Node) -> None:
    edge_index, weight, like = b.inputs(node)
    attrs, dtype = node.attrs, node.outputs[0].type.dtype
    source, target = edge_end(b, edge_index, "source"), edge_end(b, edge_index, "target")
    if not weight:  # no weights: every edge weighs 1
        weight = filled_vector(b, b.op("Shape", [source])[0], 1.0, dtype)
    at = target if attrs.degree_at == "target" else source
    degree = scatter_rows(b, weight, at, row_count(b, like), "sum", dtype, 1)
    exponent = -0.5 if attrs.normalization == "sym" else -1.0
    inverse = b.op("Pow", [degree, b.constant(np.array(exponent, dtype=dtype.numpy), "exponent")])[0]
    zero = b.constant(np.array(0, dtype=dtype.numpy), "zero")
    inverse = b.op("Where", [b.op("IsInf", [inverse])[0], zero, inverse])[0]
    if attrs.normalization == "sym":
        norm = b.op("Mul", [b.op("Gather", [inverse, source], axis=0)[0], weight])[0]
        norm = b.op("Mul", [norm, b.op("Gather", [inverse, target], axis=0)[0]])[0]
    else:
        norm = b.op("Mul", [b.op("Gather", [inverse, at], axis=0)[0], weight])[0]
    if attrs.scale == 1.0:
        b.op("Identity", [norm], b.outputs(node))
    else:
        scale = b.constant(np.array(attrs.scale, dtype=dtype.numpy), "scale")
        b.op("Mul", [norm, scale], b.outputs(node))


_EDGE_NORM = '''
def edge_norm(
    edge_index: torch.Tensor,
    edge_weight: torch.Tensor | None,
    num_nodes: int,
    normalization: str,
    degree_at: str,
) -> torch.Tensor:
    """Degree-normalized edge weights: `sym` w / sqrt(d_source d_target), `rw` w / d (1/0 is 0)."""
    source, target = edge_index
    if edge_weight is None:
        edge_weight = torch.ones(source.shape, dtype=torch.float32)
    at = target if degree_at == "target" else source
    degree = scatter_sum(edge_weight, at, num_nodes)
    if normalization == "sym":
        inverse = degree.pow(-0.5)
        inverse = inverse.masked_fill(inverse.isinf(), 0.0)
        return inverse[source] * edge_weight * inverse[target]
    inverse = degree.pow(-1.0)
    return inverse.masked_fill(inverse.isinf(), 0.0)[at] * edge_weight
'''


def _norm_torch(t: TorchWriter, node: Node) -> str:
    edge_index, weight, like = (t.var(v) for v in node.inputs)
    source = _EDGE_NORM.replace("scatter_sum(", f"{scatter_helper(t, 'sum')}(")
    name = t.helper("edge_norm", source)
    attrs = node.attrs
    call = f"{name}({edge_index}, {weight}, {like}.size(0), {attrs.normalization!r}, {attrs.degree_at!r})"
    return call if attrs.scale == 1.0 else f"{call} * {attrs.scale!r}"


def _norm_samples() -> list[OpSample]:
    x, edge_index, weight = sample_graph(seed=10, nodes=7, edges=12, features=2, isolated=2)
    graph = {0: {1: "E"}, 1: {0: "E"}, 2: {0: "V"}}
    return [
        OpSample((edge_index, weight, x), symbols=graph, name="sym-target"),
        OpSample(
            (edge_index, weight, x),
            {"degree_at": "source", "scale": -1.0},
            symbols=graph,
            name="sym-source-scaled",
        ),
        OpSample(
            (edge_index, weight, x), {"normalization": "rw", "degree_at": "source"}, symbols=graph, name="rw"
        ),
    ]


OPS = [
    OpDef(
        "self_loops",
        _loops_infer,
        _loops_onnx,
        _loops_torch,
        _loops_samples,
        SelfLoopsAttrs,
        OpGroup.OTHER,
        outputs=("edge_index", "edge_weight", "keep"),
        doc="Remove or add self-loops (PyG semantics) at a fixed edge count: removed edges get weight 0.",
    ),
    OpDef(
        "edge_norm",
        _norm_infer,
        _norm_onnx,
        _norm_torch,
        _norm_samples,
        EdgeNormAttrs,
        OpGroup.NORMALIZATION,
        doc="Degree-normalized edge weights: sym D^-1/2 A D^-1/2 or rw D^-1 A.",
    ),
]
