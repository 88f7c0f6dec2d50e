"""Message passing ops over a graph in PyG's convention: `edge_index` [2, E] int64, row 0
the source j, row 1 the target i; messages flow j -> i. V (nodes) and E (edges) stay
symbolic, so one ONNX file serves every graph.

- ``gather_edges(x, edge_index[, weight])``: ``x[edge_index[end]]``, one row per edge,
  optionally scaled by a per-edge weight ([E] or [E, H], broadcast over the trailing dims).
- ``scatter_edges(src, edge_index, like)``: rows of `src` [E, ...] reduced (sum, mean, max)
  into one row per node (``like`` gives V: its dim 0); a node without incoming edges gets 0.
- ``edge_softmax(logits, edge_index, like[, keep])``: softmax over the incoming edges of each
  target, shifted by the per-target maximum (numerically stable) and divided by the sum
  plus 1e-16, as PyG's `softmax`; edges with `keep` false take no part.
- ``graph_pool(x[, batch])``: one row per graph (sum, mean, max over the nodes whose
  `batch` entry is the graph's index); the number of graphs is ``max(batch) + 1``, as PyG
  computes it, a symbolic dim (`G`) of the output.
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
    Sym,
    TensorType,
    TorchWriter,
    product,
    require,
)

from .graph_lowering import edge_end, row_count, scatter_helper, scatter_rows, static_width
from .sample_graphs import sample_graph

End = Literal["source", "target"]
Reduce = Literal["sum", "mean", "max"]


def check_edge_index(edge_index: TensorType | None, what: str) -> TensorType:
    """`edge_index` must be [2, E] int64 (PyG's convention)."""
    require(edge_index is not None, f"{what} needs an edge_index")
    assert edge_index is not None
    require(
        edge_index.dtype is DType.int64 and edge_index.rank == 2 and edge_index.shape[0] == 2,
        f"{what}: edge_index must be [2, E] int64, got {edge_index}",
    )
    return edge_index


def _float_input(value: TensorType | None, name: str, what: str, min_rank: int = 1) -> TensorType:
    require(value is not None, f"{what} needs {name}")
    assert value is not None
    require(
        value.dtype.is_float and value.rank >= min_rank,
        f"{what}: {name} must be a floating-point tensor of rank >= {min_rank}, got {value}",
    )
    return value


# -- gather_edges ------------------------------------------------------------------------


class GatherEdgesAttrs(OpAttrs):
    end: End = "source"


def _gather_infer(attrs: GatherEdgesAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = _float_input(inputs[0], "node features x", "gather_edges")
    edges = check_edge_index(inputs[1], "gather_edges")
    weight = inputs[2] if len(inputs) > 2 else None
    if weight is not None:
        require(
            weight.dtype == x.dtype
            and 1 <= weight.rank <= x.rank
            and weight.shape[0] == edges.shape[1]
            and tuple(weight.shape[1:]) == tuple(x.shape[1 : weight.rank]),
            f"gather_edges: the edge weight {weight} must be [E, ...] with E = {edges.shape[1]}, "
            f"and its other dims leading dims of the node features {x}",
        )
    return TensorType(x.dtype, (edges.shape[1], *x.shape[1:]))


def _gather_onnx(b: OnnxBuilder, node: Node) -> None:
    x, edge_index, *rest = b.inputs(node)
    index = edge_end(b, edge_index, node.attrs.end)
    if not rest or not rest[0]:
        b.op("Gather", [x, index], b.outputs(node), axis=0)
        return
    rows = b.op("Gather", [x, index], axis=0)[0]
    weight, weight_rank = rest[0], node.inputs[2].type.rank
    rank = node.inputs[0].type.rank
    if rank > weight_rank:
        weight = b.op("Unsqueeze", [weight, b.int64s(list(range(weight_rank, rank)), "axes")])[0]
    b.op("Mul", [rows, weight], b.outputs(node))


def _gather_torch(t: TorchWriter, node: Node) -> str:
    x, edge_index = (t.var(v) for v in node.inputs[:2])
    row = 0 if node.attrs.end == "source" else 1
    rows = f"{x}.index_select(0, {edge_index}[{row}])"
    if len(node.inputs) < 3 or node.inputs[2] is None:
        return rows
    weight = t.var(node.inputs[2])
    extra = node.inputs[0].type.rank - node.inputs[2].type.rank
    return f"{rows} * {weight}{'[..., None]' * extra}"


def _gather_samples() -> list[OpSample]:
    x, edge_index, weight = sample_graph(seed=1, nodes=6, edges=11, features=4)
    heads = np.random.default_rng(2).standard_normal((11, 2)).astype(np.float32)
    x3 = np.random.default_rng(3).standard_normal((6, 2, 3)).astype(np.float32)
    graph = {0: {0: "V"}, 1: {1: "E"}, 2: {0: "E"}}
    return [
        OpSample((x, edge_index), symbols=graph, name="source"),
        OpSample((x, edge_index), {"end": "target"}, symbols=graph, name="target"),
        OpSample((x, edge_index, weight), symbols=graph, name="weighted"),
        OpSample((x3, edge_index, heads), symbols=graph, name="per-head-weight"),
    ]


# -- scatter_edges -----------------------------------------------------------------------


class ScatterEdgesAttrs(OpAttrs):
    reduce: Reduce = "sum"
    end: End = "target"


def _scatter_infer(attrs: ScatterEdgesAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    src = _float_input(inputs[0], "per-edge rows", "scatter_edges")
    edges = check_edge_index(inputs[1], "scatter_edges")
    like = inputs[2]
    require(like is not None and like.rank >= 1, "scatter_edges needs node features (for V) as input 3")
    assert like is not None
    require(
        src.shape[0] == edges.shape[1],
        f"scatter_edges: {src} has {src.shape[0]} rows, edge_index {edges} has {edges.shape[1]} edges",
    )
    return TensorType(src.dtype, (like.shape[0], *src.shape[1:]))


def _scatter_onnx(b: OnnxBuilder, node: Node) -> None:
    src, edge_index, like = b.inputs(node)
    source = node.inputs[0].type
    index = edge_end(b, edge_index, node.attrs.end)
    rows, output = row_count(b, like), b.outputs(node)[0]
    width = static_width(source.shape)
    scatter_rows(b, src, index, rows, node.attrs.reduce, source.dtype, source.rank, output, width)


def _scatter_torch(t: TorchWriter, node: Node) -> str:
    src, edge_index, like = (t.var(v) for v in node.inputs)
    row = 0 if node.attrs.end == "source" else 1
    return f"{scatter_helper(t, node.attrs.reduce)}({src}, {edge_index}[{row}], {like}.size(0))"


def _scatter_message_macs(node: Node) -> object:
    """One multiply-accumulate per message element: E x features (E counts added loops)."""
    return product(node.inputs[0].type.shape)


def _scatter_samples() -> list[OpSample]:
    # 7 nodes, node 6 isolated (no incoming edge): its row must come out 0 for every reduce.
    x, edge_index, _ = sample_graph(seed=4, nodes=7, edges=12, features=3, isolated=1)
    messages = np.random.default_rng(5).standard_normal((12, 3)).astype(np.float32) - 2.0
    graph = {0: {0: "E"}, 1: {1: "E"}, 2: {0: "V"}}
    return [
        OpSample((messages, edge_index, x), {"reduce": reduce}, symbols=graph, name=reduce)
        for reduce in ("sum", "mean", "max")
    ] + [OpSample((messages, edge_index, x), {"end": "source"}, symbols=graph, name="to-source")]


# -- edge_softmax ------------------------------------------------------------------------


def _softmax_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    logits = _float_input(inputs[0], "per-edge logits", "edge_softmax")
    edges = check_edge_index(inputs[1], "edge_softmax")
    require(inputs[2] is not None, "edge_softmax needs node features (for V) as input 3")
    require(
        logits.shape[0] == edges.shape[1],
        f"edge_softmax: logits {logits} must have one row per edge ({edges.shape[1]})",
    )
    keep = inputs[3] if len(inputs) > 3 else None
    if keep is not None:
        require(
            keep.dtype is DType.bool and keep.shape == (edges.shape[1],),
            f"edge_softmax: keep must be [E] bool, got {keep}",
        )
    return logits


def _softmax_onnx(b: OnnxBuilder, node: Node) -> None:
    logits, edge_index, like, *rest = b.inputs(node)
    kind = node.inputs[0].type
    target = edge_end(b, edge_index, "target")
    rows = row_count(b, like)
    if rest and rest[0]:
        keep = rest[0]
        if kind.rank > 1:
            keep = b.op("Unsqueeze", [keep, b.int64s(list(range(1, kind.rank)), "axes")])[0]
        lowest = b.constant(np.array(-np.inf, dtype=kind.dtype.numpy), "minus_inf")
        logits = b.op("Where", [keep, logits, lowest])[0]
    width = static_width(kind.shape)
    peak = scatter_rows(b, logits, target, rows, "max", kind.dtype, kind.rank, width=width)
    shifted = b.op("Sub", [logits, b.op("Gather", [peak, target], axis=0)[0]])[0]
    exponent = b.op("Exp", [shifted])[0]
    total = scatter_rows(b, exponent, target, rows, "sum", kind.dtype, kind.rank, width=width)
    tiny = b.constant(np.array(1e-16, dtype=kind.dtype.numpy), "tiny")  # PyG's guard
    total = b.op("Add", [total, tiny])[0]
    b.op("Div", [exponent, b.op("Gather", [total, target], axis=0)[0]], b.outputs(node))


_EDGE_SOFTMAX = '''
def edge_softmax(
    logits: torch.Tensor, target: torch.Tensor, size: int, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax of the logits of the edges that enter each node (PyG's `softmax`); edges
    whose `keep` is False take no part."""
    if keep is not None:
        logits = logits.masked_fill(~keep.view(-1, *[1] * (logits.dim() - 1)), float("-inf"))
    shifted = (logits - scatter_max(logits, target, size)[target]).exp()
    return shifted / (scatter_sum(shifted, target, size) + 1e-16)[target]
'''


def _softmax_torch(t: TorchWriter, node: Node) -> str:
    logits, edge_index, like = (t.var(v) for v in node.inputs[:3])
    helper_source = _EDGE_SOFTMAX.replace("scatter_max(", f"{scatter_helper(t, 'max')}(")
    helper_source = helper_source.replace("scatter_sum(", f"{scatter_helper(t, 'sum')}(")
    name = t.helper("edge_softmax", helper_source)
    keep = f", {t.var(node.inputs[3])}" if len(node.inputs) > 3 and node.inputs[3] is not None else ""
    return f"{name}({logits}, {edge_index}[1], {like}.size(0){keep})"


def _softmax_samples() -> list[OpSample]:
    x, edge_index, _ = sample_graph(seed=6, nodes=6, edges=14, features=2, isolated=1)
    rng = np.random.default_rng(7)
    logits = (rng.standard_normal((14, 3)) * 30).astype(np.float32)  # large: needs the shift
    keep = rng.random(14) < 0.7
    graph = {0: {0: "E"}, 1: {1: "E"}, 2: {0: "V"}, 3: {0: "E"}}
    return [
        OpSample((logits, edge_index, x), symbols=graph, name="heads"),
        OpSample((logits[:, 0], edge_index, x), symbols=graph, name="single"),
        OpSample((logits, edge_index, x, keep), symbols=graph, name="kept-edges"),
    ]


# -- graph_pool --------------------------------------------------------------------------


class GraphPoolAttrs(OpAttrs):
    reduce: Reduce = "sum"
    graphs: str = "G"  # the symbol of the output's number of graphs


def _pool_infer(attrs: GraphPoolAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = _float_input(inputs[0], "node features x", "graph_pool", min_rank=2)
    batch = inputs[1] if len(inputs) > 1 else None
    if batch is None:
        return TensorType(x.dtype, (1, *x.shape[1:]))
    require(
        batch.dtype is DType.int64 and batch.rank == 1 and batch.shape[0] == x.shape[0],
        f"graph_pool: batch must be [V] int64 with V = {x.shape[0]} (the rows of x {x}), got {batch}",
    )
    return TensorType(x.dtype, (Sym.symbol(attrs.graphs), *x.shape[1:]))


def _pool_onnx(b: OnnxBuilder, node: Node) -> None:
    x, *rest = b.inputs(node)
    kind = node.inputs[0].type
    if not rest or not rest[0]:
        onnx_op = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax"}[node.attrs.reduce]
        b.op(onnx_op, [x, b.int64s([0], "axes")], b.outputs(node), keepdims=1)
        return
    batch = rest[0]
    highest = b.op("ReduceMax", [batch], keepdims=1)[0]  # [1]
    graphs = b.op("Add", [highest, b.int64s([1], "one")])[0]
    output = b.outputs(node)[0]
    scatter_rows(
        b, x, batch, graphs, node.attrs.reduce, kind.dtype, kind.rank, output, static_width(kind.shape)
    )


def _pool_torch(t: TorchWriter, node: Node) -> str:
    x = t.var(node.inputs[0])
    if len(node.inputs) < 2 or node.inputs[1] is None:
        if node.attrs.reduce == "max":
            return f"{x}.amax(dim=0, keepdim=True)"
        return f"{x}.{node.attrs.reduce}(dim=0, keepdim=True)"
    batch = t.var(node.inputs[1])
    return f"{scatter_helper(t, node.attrs.reduce)}({x}, {batch}, int({batch}.max()) + 1)"


def _pool_samples() -> list[OpSample]:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((9, 4)).astype(np.float32) - 1.0
    batch = np.array([0, 0, 0, 2, 2, 3, 3, 3, 3], dtype=np.int64)  # graph 1 has no nodes: 0
    nodes = {0: {0: "V"}, 1: {0: "V"}}
    return [
        *(
            OpSample((x, batch), {"reduce": r}, symbols=nodes, name=f"{r}-batched")
            for r in ("sum", "mean", "max")
        ),
        OpSample((x,), {"reduce": "mean"}, symbols={0: {0: "V"}}, name="one-graph"),
        OpSample((x,), {"reduce": "max"}, symbols={0: {0: "V"}}, name="one-graph-max"),
    ]


OPS = [
    OpDef(
        "gather_edges",
        _gather_infer,
        _gather_onnx,
        _gather_torch,
        _gather_samples,
        GatherEdgesAttrs,
        OpGroup.MOVEMENT,
        doc="One row per edge: x[edge_index[end]], optionally scaled by a per-edge weight.",
    ),
    OpDef(
        "scatter_edges",
        _scatter_infer,
        _scatter_onnx,
        _scatter_torch,
        _scatter_samples,
        ScatterEdgesAttrs,
        OpGroup.REDUCTION,
        message_macs=_scatter_message_macs,
        doc="Per-edge rows reduced (sum, mean, max) into one row per node; no edge -> 0.",
    ),
    OpDef(
        "edge_softmax",
        _softmax_infer,
        _softmax_onnx,
        _softmax_torch,
        _softmax_samples,
        OpAttrs,
        OpGroup.NORMALIZATION,
        doc="Softmax over the incoming edges of each target node (stable, as PyG's softmax).",
    ),
    OpDef(
        "graph_pool",
        _pool_infer,
        _pool_onnx,
        _pool_torch,
        _pool_samples,
        GraphPoolAttrs,
        OpGroup.REDUCTION,
        doc="One row per graph of a batch (sum, mean, max over its nodes); max(batch) + 1 graphs.",
    ),
]
