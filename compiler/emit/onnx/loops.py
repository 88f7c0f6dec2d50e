"""ONNX lowering of `scan`: its body becomes the subgraph of an ONNX ``Scan`` (a loop over
scanned inputs) or ``Loop`` (a loop of `steps` trips).

The length is read from the data at run time, so one ONNX file serves every sequence
length. Captured values (weights, encoder outputs) are not body inputs in ONNX: a
subgraph reads its outer graph's values by name. ``Loop`` stacks per-step outputs along
axis 0 in trip order; a reversed loop flips them back to step order and a transpose moves
the stacked axis where the spec asked.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from dlc.emit.onnx.builder import OnnxBuilder
from dlc.emit.onnx.emitter import lower_node, value_info
from dlc.ir.graph import Graph
from dlc.ir.loops import ScanAttrs
from dlc.ir.node import Node
from dlc.ir.types import DType, TensorType
from dlc.lazy_imports import numpy as np


def scan_to_onnx(b: OnnxBuilder, node: Node) -> None:
    attrs: ScanAttrs = node.attrs  # type: ignore[assignment]
    if attrs.steps is None:
        _scan(b, node, attrs)
    else:
        _loop(b, node, attrs)


def _formal_inputs(b: OnnxBuilder, node: Node, attrs: ScanAttrs) -> tuple[dict[str, str], list[Node]]:
    """ONNX names for the body's inputs: fresh names for state and slices (and the index),
    the outer names for captured values. Returns the names and the formal input nodes."""
    inputs = attrs.body.inputs()
    first_capture = attrs.carries + attrs.scanned + (1 if attrs.index else 0)
    names: dict[str, str] = {}
    for inner in inputs[:first_capture]:
        names[inner.output.name] = b.fresh(inner.output.name)
    for inner, outer in zip(
        inputs[first_capture:], node.inputs[attrs.carries + attrs.scanned :], strict=True
    ):
        names[inner.output.name] = b.name(outer)
    return names, inputs[:first_capture]


def _body(
    b: OnnxBuilder, body: Graph, names: dict[str, str], prologue: list[onnx.NodeProto]
) -> tuple[list[onnx.NodeProto], list[onnx.ValueInfoProto]]:
    """The body's ONNX nodes (after `prologue`) and its outputs, in `body.outputs` order."""
    child = b.nested(names)
    child.nodes.extend(prologue)
    registry = b.registry
    if registry is None:
        from dlc.registry import default_registry

        registry = default_registry()
    for inner in body.toposort():
        if inner.op == "input":
            continue
        child.current = None
        for value in inner.outputs:
            child.bind(value, child.fresh(value.name))
        lower_node(child, inner, registry)
    child.current = None
    outputs, seen = [], set()
    formal = {n.output.name for n in body.inputs()}
    for key, value in body.outputs.items():
        name = child.name(value)
        if value.name in formal or name in seen:  # a subgraph output must be produced in it, once
            name = child.op("Identity", [name], [child.fresh(f"{key}_out")])[0]
        seen.add(name)
        outputs.append(value_info(name, value.type))
    return child.nodes, outputs


def _scan(b: OnnxBuilder, node: Node, attrs: ScanAttrs) -> None:
    names, formal = _formal_inputs(b, node, attrs)
    nodes, outputs = _body(b, attrs.body, names, [])
    inputs = [value_info(names[n.output.name], n.output.type) for n in formal]
    graph = helper.make_graph(nodes, b.fresh("body"), inputs, outputs)
    sequences = [b.name(v) for v in node.inputs[: attrs.carries + attrs.scanned]]
    axes = list(attrs.scan_axes)
    if attrs.index:  # the step numbers, scanned along with the sequences: [T, 1] float
        sequences.append(_step_numbers(b, node, attrs))
        axes.append(0)
    directions = {}
    if attrs.reverse:  # read the slices last to first; prepend outputs, so they stay in step order
        directions = {
            "scan_input_directions": [1] * len(axes),
            "scan_output_directions": [1] * attrs.outputs,
        }
    b.op(
        "Scan",
        sequences,
        b.outputs(node),
        body=graph,
        num_scan_inputs=len(axes),
        scan_input_axes=axes,
        scan_output_axes=list(attrs.output_axes),
        **directions,
    )


def _step_numbers(b: OnnxBuilder, node: Node, attrs: ScanAttrs) -> str:
    """0, 1, ..., T - 1 as a [T, 1] float tensor, T read from the first scanned sequence."""
    first, axis = node.inputs[attrs.carries], attrs.scan_axes[0]
    assert first is not None
    length = b.op("Shape", [b.name(first)], start=axis, end=axis + 1)[0]
    zero = b.constant(np.array(0, dtype=np.int64), "zero")
    one = b.constant(np.array(1, dtype=np.int64), "one")
    steps = b.op("Range", [zero, b.op("Squeeze", [length])[0], one])[0]
    steps = b.op("Cast", [steps], to=TensorProto.FLOAT)[0]
    return b.op("Unsqueeze", [steps, b.int64s([1], "axes")])[0]


def _loop(b: OnnxBuilder, node: Node, attrs: ScanAttrs) -> None:
    steps = attrs.steps
    assert steps is not None
    names, formal = _formal_inputs(b, node, attrs)
    iteration, condition = b.fresh("iteration"), b.fresh("condition")
    prologue: list[onnx.NodeProto] = []
    if attrs.index:
        index = formal[attrs.carries].output
        step = iteration
        if attrs.reverse:  # trip i runs step (steps - 1 - i)
            last = b.constant(np.array(steps - 1, dtype=np.int64), "last_step")
            step = b.fresh("step")
            prologue.append(helper.make_node("Sub", [last, iteration], [step], name=b.fresh("Sub")))
        as_float = b.fresh("step_float")
        prologue.append(
            helper.make_node("Cast", [step], [as_float], to=TensorProto.FLOAT, name=b.fresh("Cast"))
        )
        shape = b.int64s([1], "index_shape")
        prologue.append(
            helper.make_node("Reshape", [as_float, shape], [names[index.name]], name=b.fresh("Reshape"))
        )
    nodes, outputs = _body(b, attrs.body, names, prologue)
    carried = formal[: attrs.carries]
    kept = b.fresh("condition_out")
    nodes.append(helper.make_node("Identity", [condition], [kept], name=b.fresh("Identity")))
    inputs = [
        value_info(iteration, TensorType(DType.int64, ())),
        value_info(condition, TensorType(DType.bool, ())),
        *(value_info(names[n.output.name], n.output.type) for n in carried),
    ]
    graph = helper.make_graph(
        nodes, b.fresh("body"), inputs, [value_info(kept, TensorType(DType.bool, ())), *outputs]
    )
    finals = b.outputs(node)
    stacked = [b.fresh(f"stacked_{i}") for i in range(attrs.outputs)]
    trips = b.constant(np.array(steps, dtype=np.int64), "trip_count")
    b.op(
        "Loop",
        [trips, "", *(b.name(v) for v in node.inputs[: attrs.carries])],
        [*finals[: attrs.carries], *stacked],
        body=graph,
    )
    for raw, final, axis in zip(stacked, finals[attrs.carries :], attrs.output_axes, strict=True):
        value = raw
        if attrs.reverse:
            value = b.op(
                "Slice",
                [
                    value,
                    b.int64s([-1], "start"),
                    b.int64s([-(2**63)], "end"),
                    b.int64s([0], "axes"),
                    b.int64s([-1], "step"),
                ],
            )[0]
        if axis == 0:
            b.op("Identity", [value], [final])
            continue
        output_rank = node.outputs[finals.index(final)].type.rank
        perm = list(range(1, output_rank))
        perm.insert(axis, 0)
        b.op("Transpose", [value], [final], perm=perm)
