"""Test helpers for dlc and for plugin authors: run an op sample through both emitters.

from dlc.testing import op_parity
for sample in my_op.samples():
    onnx_out, torch_out = op_parity(my_op, sample)
"""

from __future__ import annotations

from collections.abc import Mapping

from dlc.emit.onnx.emitter import build_onnx_model
from dlc.emit.torch.eject import build_module, torch_package
from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Graph
from dlc.ir.init import from_array
from dlc.ir.node import Value
from dlc.ir.ops import OpDef, OpSample
from dlc.ir.symbolic import Sym
from dlc.ir.types import DType, TensorType
from dlc.lazy_imports import numpy as np
from dlc.registry import Registry, default_registry


def sample_graph(op: OpDef, sample: OpSample, registry: Registry) -> tuple[Graph, dict[str, np.ndarray]]:
    """A graph with one `op` node: sample arrays become inputs or, for indices in
    `sample.params`, parameters holding the array. With `symbolic_batch`, dim 0 of the
    batched data inputs is the symbol ``N``, so dynamic shapes are exercised too."""
    graph = Graph(f"sample_{op.name.replace('.', '_')}")
    builder = GraphBuilder(graph, registry)
    feeds: dict[str, np.ndarray] = {}
    inputs: list[Value | None] = []
    for index, array in enumerate(sample.inputs):
        if array is None:
            inputs.append(None)
            continue
        array = np.asarray(array)
        if index in sample.params:
            # Named like the op's own parameters ({1: "weight"}), a torch lowering can claim
            # them as a real submodule, so the sample exercises the module form.
            local = sample.params[index] if isinstance(sample.params, Mapping) else f"p{index}"
            node = builder.add_parameter(
                f"{op.name.replace('.', '_')}_0.{local}",
                tuple(array.shape),
                from_array(array),
                dtype=DType.from_numpy(array.dtype),
            )
        else:
            shape: list = list(array.shape)
            if sample.symbols is not None:
                for axis, symbol in sample.symbols.get(index, {}).items():
                    shape[axis] = Sym.symbol(symbol)
            elif sample.symbolic_batch and _is_batched(array, sample):
                shape[0] = Sym.symbol("N")
            name = f"in{index}"
            node = builder.add_input(name, TensorType(DType.from_numpy(array.dtype), tuple(shape)))
            feeds[name] = array
        inputs.append(node.output)
    node = builder.add_op(
        op.name, inputs, dict(sample.attrs), name="op", module=f"{op.name.replace('.', '_')}_0"
    )
    for index, value in enumerate(node.outputs):
        graph.outputs[f"out{index}"] = value
    return graph, feeds


def _is_batched(array: np.ndarray, sample: OpSample) -> bool:
    """Data inputs of rank >= 2 whose dim 0 matches input 0's get the symbolic batch dim."""
    first = sample.inputs[0]
    return (
        array.ndim >= 2 and first is not None and np.ndim(first) >= 2 and array.shape[0] == np.shape(first)[0]
    )


def run_onnx(graph: Graph, feeds: Mapping[str, np.ndarray], registry: Registry) -> list[np.ndarray]:
    import onnx
    import onnxruntime

    tensors = {
        n.output.name: n.attrs.init.materialize(
            [int(d) for d in n.output.type.shape], n.output.type.dtype.numpy, 0, n.attrs.name
        )
        for n in graph.parameters()
    }
    model = build_onnx_model(graph, lambda node: tensors[node.output.name], registry)
    onnx.checker.check_model(model, full_check=True)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))


def run_torch(graph: Graph, feeds: Mapping[str, np.ndarray], registry: Registry) -> list[np.ndarray]:
    import torch

    tensors = {
        n.output.name: n.attrs.init.materialize(
            [int(d) for d in n.output.type.shape], n.output.type.dtype.numpy, 0, n.attrs.name
        )
        for n in graph.parameters()
    }
    tensors.update({n.output.name: n.attrs.value for n in graph if n.op == "constant"})
    module = build_module(torch_package(graph, registry, tensors, "op sample"))
    with torch.no_grad():
        result = module(*(torch.from_numpy(np.array(feeds[n.attrs.name])) for n in graph.inputs()))
    results = result if isinstance(result, tuple) else (result,)
    return [r.detach().numpy() for r in results]  # a view of a parameter keeps requires_grad


def op_parity(
    op: OpDef, sample: OpSample, registry: Registry | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(ONNX Runtime outputs, torch outputs) of `op` on `sample`."""
    registry = registry or default_registry()
    graph, feeds = sample_graph(op, sample, registry)
    return run_onnx(graph, feeds, registry), run_torch(graph, feeds, registry)


def max_relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| divided by max(1, max |expected|): relative to the output's scale."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        return float("inf")
    if expected.size == 0:
        return 0.0
    scale = max(1.0, float(np.abs(expected).max()))
    return float(np.abs(expected - actual).max()) / scale
