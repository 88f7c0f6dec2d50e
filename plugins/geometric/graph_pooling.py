"""Global pooling per graph of a mini-batch (PyG's `global_add/mean/max_pool`).

`in: [x, batch]` pools the nodes of each graph (`batch[v]` is node v's graph) into one
row per graph; `in: x` pools all nodes into one row. The number of graphs is
``max(batch) + 1``, exactly as PyG computes it when no size is given (a graph index that
no node has yields a row of 0); the output's first dim is the symbol `graphs` (`G`).

`global_max_pool` is already the CNN family's (over spatial dims), so the graph maximum is
`graph_pool: max`; `graph_pool` takes `reduce: sum | mean | max`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dlc.plugin_api import BlockConfig, BlockContext, BlockType, Value

from .graph_inputs import batch_vector


class GraphPoolConfig(BlockConfig):
    reduce: Literal["sum", "mean", "max"] = Field("sum", description="How a graph's node rows combine.")
    graphs: str = Field("G", pattern=r"^[A-Za-z_]\w*$", description="Symbol of the number of graphs.")


class FixedPoolConfig(BlockConfig):
    graphs: str = Field("G", pattern=r"^[A-Za-z_]\w*$", description="Symbol of the number of graphs.")


def _pool(ctx: BlockContext, reduce: str, graphs: str, inputs: list[Value]) -> Value:
    x = inputs[0]
    if not x.type.dtype.is_float or x.type.rank != 2:
        raise ctx.error(f"node features x must be [V, F] floating point, got {x.type}")
    if len(inputs) == 1:
        return ctx.op("graph_pool", x, reduce=reduce, graphs=graphs)
    batch = batch_vector(ctx, inputs[1], x)
    return ctx.op("graph_pool", x, batch, reduce=reduce, graphs=graphs)


def _graph_pool(ctx: BlockContext, config: GraphPoolConfig, inputs: list[Value]) -> Value:
    return _pool(ctx, config.reduce, config.graphs, inputs)


def _fixed(reduce: str):
    def lower(ctx: BlockContext, config: FixedPoolConfig, inputs: list[Value]) -> Value:
        return _pool(ctx, reduce, config.graphs, inputs)

    return lower


BLOCKS = [
    BlockType(
        "graph_pool",
        GraphPoolConfig,
        _graph_pool,
        "`in: [x, batch]` (or x): one row per graph, the sum, mean or max of its nodes' rows.",
        inputs=(1, 2),
        shorthand="reduce",
    ),
    BlockType(
        "global_add_pool",
        FixedPoolConfig,
        _fixed("sum"),
        "`in: [x, batch]` (or x): per-graph sum of node rows (PyG global_add_pool).",
        inputs=(1, 2),
    ),
    BlockType(
        "global_mean_pool",
        FixedPoolConfig,
        _fixed("mean"),
        "`in: [x, batch]` (or x): per-graph mean of node rows (PyG global_mean_pool).",
        inputs=(1, 2),
    ),
]
