"""`dlc summary`: per-layer output shapes, parameter and MAC counts, with totals.

Counts follow the reference conventions: parameters are trainable tensors (batch-norm
running statistics are buffers, counted separately), tied tensors count once, and MACs
count contractions only (linear, conv, matmul; attention products included) at the
given dims (every symbolic dim is 1 unless set, so batch 1). A loop body's MACs count
once per step (a scan over T steps: T times the body), its parameters once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dlc.errors import DlcError
from dlc.ir.graph import Graph
from dlc.ir.loops import walk_with_trips
from dlc.ir.symbolic import evaluate_dim, product
from dlc.ir.types import format_shape
from dlc.registry import Registry
from dlc.spec.lower import LayerInfo
from dlc.tables import Column, rich_table


@dataclass
class LayerSummary:
    name: str
    block: str
    output_shape: str
    params: int
    macs: int
    depth: int
    message_macs: int = 0


@dataclass
class Summary:
    name: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    params: int
    buffers: int
    macs: int
    dims: dict[str, int]
    layers: list[LayerSummary] = field(default_factory=list)
    message_macs: int = 0  # sparse message passing (graphs), at `dims`
    message_formula: str = ""  # the same as a formula in the dims, e.g. 23*E+23*V

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "buffers": self.buffers,
            "macs": self.macs,
            "dims": self.dims,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "layers": [vars(layer) for layer in self.layers],
            **(
                {"message_macs": self.message_macs, "message_macs_formula": self.message_formula}
                if self.message_formula
                else {}
            ),
        }

    def table(self) -> tuple[str, list[Column], list[list[str]]]:
        """Title, columns and rows of the per-layer table with totals (see `dlc.tables`)."""
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        title = f"{self.name}" + (f" ({dims})" if dims else "")
        if self.message_formula:
            title += f"; message passing {self.message_formula} MACs"
        columns = [
            Column("layer", footer="total"),
            Column("block"),
            Column("output shape"),
            Column("params", numeric=True, footer=f"{self.params:,}"),
            Column("MACs", numeric=True, footer=f"{self.macs:,}"),
        ]
        rows = [
            [
                "  " * layer.depth + layer.name,
                layer.block,
                layer.output_shape,
                f"{layer.params:,}",
                f"{layer.macs:,}",
            ]
            for layer in self.layers
        ]
        if self.message_formula:  # graph models: the per-edge work in a column of its own
            columns.append(Column("message MACs", numeric=True, footer=f"{self.message_macs:,}"))
            for row, layer in zip(rows, self.layers, strict=True):
                row.append(f"{layer.message_macs:,}")
        return title, columns, rows

    def render(self) -> Any:
        """A rich renderable: the per-layer table with totals."""
        return rich_table(*self.table())


def summarize(
    graph: Graph, layers: list[LayerInfo], registry: Registry, dims: Mapping[str, int] | None = None
) -> Summary:
    symbols: set[str] = set()
    for node in graph.inputs():
        symbols |= node.output.type.symbols
    for node in graph:  # data-dependent dims that ops introduce (graphs in a batch: G)
        for value in node.outputs:
            symbols |= value.type.symbols
    bindings = {s: 1 for s in sorted(symbols)}
    bindings.update(dims or {})
    _check_sizes(layers, bindings)

    counts = _count_by_layer(graph, layers, registry, bindings)
    messages, formula = _count_messages(graph, layers, registry, bindings)
    rows = []
    for info in layers:
        if info.kind not in ("block", "scan"):  # a scan's row: its body's work, every step
            continue
        output = next(iter(info.outputs.values()))
        params, _, macs = counts.get(info.name, (0, 0, 0))
        rows.append(
            LayerSummary(
                info.name,
                info.block,
                format_shape(output.type.shape),
                params,
                macs,
                info.depth,
                messages.get(info.name, 0),
            )
        )
    params, buffers, macs = counts[""]
    return Summary(
        name=graph.name,
        inputs={n.attrs.name: f"{n.output.type}" for n in graph.inputs()},
        outputs={k: f"{v.type}" for k, v in graph.outputs.items()},
        params=params,
        buffers=buffers,
        macs=macs,
        dims=bindings,
        layers=rows,
        message_macs=messages.get("", 0),
        message_formula=formula,
    )


def _count_messages(
    graph: Graph, layers: list[LayerInfo], registry: Registry, bindings: Mapping[str, int]
) -> tuple[dict[str, int], str]:
    """Message passing MACs of every block layer (and of the graph under ""), evaluated at
    `bindings`, and the graph's total as a formula in the dims ("" when there is none)."""
    owners_of = {info.name for info in layers if info.kind in ("block", "scan")}
    totals: dict[str, int] = {}
    formula: object = 0
    for node in graph:
        if node.op in ("input", "parameter", "constant"):
            continue
        count = registry.op(node.op).message_macs
        if count is None:
            continue
        work = count(node)
        formula = formula + work
        amount = evaluate_dim(work, bindings)
        prefix, owners = node.layer, [""]
        while prefix:
            if prefix in owners_of:
                owners.append(prefix)
            prefix = prefix.rpartition(".")[0]
        for owner in owners:
            totals[owner] = totals.get(owner, 0) + amount
    return totals, ("" if formula == 0 else str(formula))


def _count_by_layer(
    graph: Graph, layers: list[LayerInfo], registry: Registry, bindings: Mapping[str, int]
) -> dict[str, tuple[int, int, int]]:
    """(parameters, buffers, MACs) of every block and scan layer, counting the nodes of the
    layer and of the layers nested in it (``stage.0`` holds ``stage.0.conv2d_1``), and of the
    whole graph under ``""``; a loop body's nodes count once per step (its weights once).
    One pass over the nodes: each adds to the layers among its dotted name's prefixes, so
    the cost is linear in the graph, not layers x nodes."""
    owners_of = {info.name for info in layers if info.kind in ("block", "scan")}
    totals: dict[str, list[int]] = {"": [0, 0, 0]}
    for node, trips in walk_with_trips(graph):
        if node.op == "parameter":
            size = int(product(node.output.type.shape))
            counted = (size, 0, 0) if node.attrs.trainable else (0, size, 0)
        else:
            op = registry.op(node.op)
            if op.macs is None:
                continue
            counted = (0, 0, evaluate_dim(op.macs(node) * trips, bindings))
        prefix = node.layer
        owners = [""]
        while prefix:
            if prefix in owners_of:
                owners.append(prefix)
            prefix = prefix.rpartition(".")[0]
        for owner in owners:
            total = totals.setdefault(owner, [0, 0, 0])
            for index, amount in enumerate(counted):
                total[index] += amount
    return {name: (total[0], total[1], total[2]) for name, total in totals.items()}


def _check_sizes(layers: list[LayerInfo], bindings: Mapping[str, int]) -> None:
    """Counting at dims where some layer's output would be empty (a valid conv on a length-1
    sequence, say) gives meaningless, even negative, numbers: say so, and which dims to set."""
    for info in layers:
        for value in info.outputs.values():
            concrete = value.type.concrete_shape(bindings)
            if min(concrete, default=1) < 1:
                sizes = ", ".join(f"{k}={v}" for k, v in bindings.items())
                raise DlcError(
                    f"at {sizes}, layer '{info.name}' would output {list(concrete)} "
                    f"({format_shape(value.type.shape)})",
                    location=info.location,
                    hint="give the symbolic dims larger sizes, e.g. "
                    + " ".join(f"--dim {k}=64" for k in bindings),
                )
