"""Constant folding: evaluate, at compile time, every op whose inputs are all constants.

The foldable subgraph is emitted as one small ONNX model and run once in ONNX Runtime on
the CPU, so folding has exactly the runtime's semantics and needs no per-op evaluator.
Each value that the rest of the graph reads becomes a `constant` node. Parameters are not
constants here: they keep their names, which are the torch state_dict keys. Results larger
than `MAX_ELEMENTS` are left unfolded (folding would only grow the file).
"""

from __future__ import annotations

from dlc.ir.graph import Graph
from dlc.ir.node import Node, Value
from dlc.ir.source_ops import ConstantAttrs, constant_type
from dlc.ir.symbolic import is_static
from dlc.ir.types import TensorType
from dlc.lazy_imports import numpy as np
from dlc.passes.manager import PassContext, PassResult

MAX_ELEMENTS = 1 << 20


def _small_static(type_: TensorType) -> bool:
    if not all(is_static(d) for d in type_.shape):
        return False
    return int(np.prod([int(d) for d in type_.shape], dtype=np.int64)) <= MAX_ELEMENTS


class ConstantFolding:
    name = "constant-folding"

    def __init__(self, context: PassContext) -> None:
        self.registry = context.registry

    def run(self, graph: Graph) -> PassResult:
        constant: set[str] = set()
        folded: list[Node] = []
        for node in graph.toposort():
            if node.op == "constant":
                constant.add(node.output.name)
                continue
            if node.op in ("input", "parameter") or not node.input_values:
                continue
            if all(v.name in constant for v in node.input_values) and all(
                _small_static(v.type) for v in node.outputs
            ):
                folded.append(node)
                constant.update(v.name for v in node.outputs)
        if not folded:
            return PassResult(graph, False)
        folded_names = {n.name for n in folded}
        frontier = [
            value
            for node in folded
            for value in node.outputs
            if graph.is_output(value) or any(u.name not in folded_names for u in graph.users(value))
        ]
        arrays = self._evaluate(graph, folded, frontier)
        for value, array in zip(frontier, arrays, strict=True):
            array = np.ascontiguousarray(array)
            array.setflags(write=False)
            name = graph.fresh_name(f"{value.name}/folded")
            replacement = Node(
                name,
                "constant",
                (),
                (Value(name, constant_type(array)),),
                ConstantAttrs(value=array),
                layer=graph.producer(value).layer,
            )
            graph.add(replacement)
            graph.replace_all_uses(value, replacement.output)
        for node in reversed(folded):
            graph.erase(node)
        return PassResult(graph, True)

    def _evaluate(self, graph: Graph, folded: list[Node], frontier: list[Value]) -> list[np.ndarray]:
        import onnxruntime

        from dlc.emit.onnx.emitter import build_onnx_model

        subgraph = Graph(f"{graph.name}_constants")
        needed = {v.name for n in folded for v in n.input_values}
        for node in graph:
            if node.op == "constant" and node.output.name in needed:
                subgraph.add(node)
        for node in folded:
            subgraph.add(node)
        for index, value in enumerate(frontier):
            subgraph.outputs[f"folded_{index}"] = value
        model = build_onnx_model(subgraph, lambda node: np.empty(0), self.registry)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        return session.run([f"folded_{i}" for i in range(len(frontier))], {})
