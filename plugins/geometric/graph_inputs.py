"""The checks every graph block makes on its inputs, with located errors that name the
shapes: node features `x` [V, F] floating point, `edge_index` [2, E] int64, an optional
`edge_weight` [E], a `batch` vector [V] int64."""

from __future__ import annotations

from dlc.plugin_api import BlockContext, DType, Sym, Value, format_shape, is_static


def node_features(ctx: BlockContext, x: Value) -> int:
    """The feature count F of node features [V, F] (which must be a number)."""
    shape = x.type.shape
    if not x.type.dtype.is_float or len(shape) != 2:
        raise ctx.error(f"node features x must be [V, F] floating point, got {x.type}")
    if not is_static(shape[1]):
        raise ctx.error(f"the feature dim of x {format_shape(shape)} must be a number, not {shape[1]}")
    return int(shape[1])


def edge_index(ctx: BlockContext, edges: Value, x: Value) -> Value:
    """`edge_index` must be [2, E] int64; random inputs draw its entries from [0, V)."""
    kind = edges.type
    if kind.dtype is not DType.int64 or kind.rank != 2 or kind.shape[0] != 2:
        raise ctx.error(
            f"edge_index must be [2, E] int64 (row 0 sources, row 1 targets), got {kind}",
            hint="declare it as `edge_index: {shape: [2, E], dtype: int64}`",
        )
    nodes = x.type.shape[0]
    if isinstance(nodes, int):
        ctx.note_input_range(edges, 0, nodes)
    elif (
        isinstance(nodes, Sym) and len(nodes.symbols) == 1 and Sym.symbol(next(iter(nodes.symbols))) == nodes
    ):
        ctx.note_input_range(edges, 0, next(iter(nodes.symbols)))
    return edges


def edge_weight(ctx: BlockContext, weight: Value, edges: Value) -> Value:
    """`edge_weight` must be [E] floating point, one weight per edge."""
    if not weight.type.dtype.is_float or weight.type.shape != (edges.type.shape[1],):
        raise ctx.error(
            f"edge_weight must be [E] floating point, one weight per edge of edge_index {edges.type}, "
            f"got {weight.type}"
        )
    return weight


def graph_inputs(
    ctx: BlockContext, inputs: list[Value], *, weighted: bool
) -> tuple[Value, int, Value, Value | None]:
    """(x, F, edge_index, edge_weight or None) from `in: [x, edge_index(, edge_weight)]`."""
    if len(inputs) < 2:
        raise ctx.error(
            "takes `in: [x, edge_index]`" + (" or [x, edge_index, edge_weight]" if weighted else "")
        )
    if len(inputs) > 2 and not weighted:
        raise ctx.error(f"takes `in: [x, edge_index]` (no edge weights), got {len(inputs)} inputs")
    x = inputs[0]
    features = node_features(ctx, x)
    edges = edge_index(ctx, inputs[1], x)
    weight = edge_weight(ctx, inputs[2], edges) if len(inputs) > 2 else None
    return x, features, edges, weight


def batch_vector(ctx: BlockContext, batch: Value, x: Value) -> Value:
    """`batch` must be [V] int64: the graph of each node."""
    if batch.type.dtype is not DType.int64 or batch.type.shape != (x.type.shape[0],):
        raise ctx.error(f"batch must be [V] int64, one graph index per row of x {x.type}, got {batch.type}")
    return batch
