"""Full graph verification: structure plus types re-inferred through the op registry.

Runs after every pass in tests (and whenever ``DLC_VERIFY=1``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlc.ir.graph import Graph, IRError
from dlc.ir.loops import check_body, nested_graphs
from dlc.ir.ops import InferenceError
from dlc.ir.source_ops import constant_type, is_source

if TYPE_CHECKING:
    from dlc.registry import Registry


def verify_graph(graph: Graph, registry: Registry | None = None) -> None:
    """Verify `graph` and every loop body in it (bodies are checked like graphs, plus the
    body invariant: weights and constants are captured from the top graph)."""
    from dlc.registry import default_registry

    registry = registry or default_registry()
    pending = [graph]
    while pending:
        current = pending.pop()
        _verify_one(current, registry)
        for node in current:
            bodies = nested_graphs(node)
            if bodies:
                check_body(node)
                pending.extend(bodies)


def _verify_one(graph: Graph, registry: Registry) -> None:
    graph.verify()
    names: set[str] = set()
    for node in graph:
        if node.name in names:
            raise IRError(f"duplicate node '{node.name}'")
        names.add(node.name)
        op = registry.op(node.op)
        if not isinstance(node.attrs, op.attrs):
            raise IRError(
                f"node '{node.name}': attributes are {type(node.attrs).__name__}, not {op.attrs.__name__}"
            )
        if node.op == "constant":
            if node.output.type != constant_type(node.attrs.value):
                raise IRError(f"constant '{node.name}' has type {node.output.type}, data disagrees")
            continue
        if is_source(node):
            continue
        try:
            expected = op.infer_types(node.attrs, [v.type if v is not None else None for v in node.inputs])
        except InferenceError as error:
            raise IRError(f"node '{node.name}' ({node.op}) no longer type-checks: {error}") from error
        actual = tuple(v.type for v in node.outputs)
        if expected != actual:
            raise IRError(
                f"node '{node.name}' ({node.op}) has output types "
                f"{[str(t) for t in actual]}, inference gives {[str(t) for t in expected]}"
            )
