"""Emit an IR graph as an ONNX model.

Opset 21 in the default domain and IR version 10, which every onnxruntime from 1.17 on
accepts (onnx 1.23 would write IR version 14 by default, which onnxruntime 1.31 rejects).
Symbolic dims become ``dim_param``s; input and output names come from the spec;
parameters are initializers under their hierarchical names (the torch state_dict keys).
The output is deterministic: same graph and weights, same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping

import onnx
from onnx import helper

from dlc.emit.onnx.builder import OnnxBuilder, placeholder, tensor_proto
from dlc.errors import DlcError, EmitError
from dlc.ir.graph import Graph
from dlc.ir.node import Node, Value
from dlc.ir.types import TensorType
from dlc.lazy_imports import numpy as np
from dlc.registry import Registry

ONNX_OPSET = 21
ONNX_IR_VERSION = 10


def value_info(name: str, type_: TensorType) -> onnx.ValueInfoProto:
    dims = [d if isinstance(d, int) else str(d) for d in type_.shape]
    return helper.make_tensor_value_info(name, type_.dtype.onnx, dims)


def _onnx_names(graph: Graph) -> tuple[dict[str, str], list[tuple[Value, str]]]:
    """ONNX names for IR values; outputs take their spec names. Returns the names and the
    outputs that need an Identity node (an input, a weight, or a value output twice)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for node in graph.inputs():
        names[node.output.name] = node.attrs.name
        taken.add(node.attrs.name)
    identities: list[tuple[Value, str]] = []
    for out_name, value in graph.outputs.items():
        producer = graph.producer(value)
        if producer.op == "input" and names.get(value.name) == out_name:
            pass  # an input returned under its own name: the output simply names it
        elif value.name in names or producer.op in ("input", "parameter", "constant"):
            identities.append((value, out_name))
        else:
            names[value.name] = out_name
        taken.add(out_name)
    for node in graph:
        for value in node.outputs:
            if value.name in names:
                continue
            name, index = value.name, 1
            while name in taken:
                name = f"{value.name}__{index}"
                index += 1
            names[value.name] = name
            taken.add(name)
    return names, identities


def lower_node(builder: OnnxBuilder, node: Node, registry: Registry) -> None:
    """Emit one computing node through its op's ONNX lowering; failures name the node."""
    builder.current = node
    try:
        registry.op(node.op).to_onnx(builder, node)
    except DlcError as error:
        if error.location is None and node.location is not None:  # the builder knows no layer
            error.diagnostics[0] = dataclasses.replace(error.diagnostics[0], location=node.location)
        raise
    except Exception as error:
        raise EmitError(
            f"ONNX lowering of '{node.name}' ({node.op}) failed: {type(error).__name__}: {error}",
            location=node.location,
        ) from error


def build_onnx_model(
    graph: Graph,
    weights: Callable[[Node], np.ndarray] | None,
    registry: Registry,
    *,
    metadata: Mapping[str, str] | None = None,
    doc: str = "",
) -> onnx.ModelProto:
    """Build the ModelProto; `weights(node)` gives each parameter's data. Without
    `weights`, parameters are data-free placeholders, for `save_onnx` to stream."""
    from dlc import __version__

    names, identities = _onnx_names(graph)
    builder = OnnxBuilder(names, registry)
    inputs: list[onnx.ValueInfoProto] = []
    input_ranges: dict[str, list[float]] = {}
    for node in graph.toposort():
        builder.current = node
        if node.op == "input":
            inputs.append(value_info(node.attrs.name, node.output.type))
            if node.attrs.value_range is not None:
                input_ranges[node.attrs.name] = list(node.attrs.value_range)
        elif node.op == "parameter" and weights is None:
            shape = [int(d) for d in node.output.type.shape]
            builder.initializers.append(placeholder(names[node.output.name], shape, node.output.type.dtype))
        elif node.op == "parameter":
            builder.initializers.append(
                tensor_proto(names[node.output.name], weights(node), node.output.type.dtype)
            )
        elif node.op == "constant":
            builder.initializers.append(tensor_proto(names[node.output.name], node.attrs.value))
        else:
            lower_node(builder, node, registry)
    builder.current = None
    for value, out_name in identities:
        builder.op("Identity", [names[value.name]], [out_name])
    outputs = [value_info(name, value.type) for name, value in graph.outputs.items()]
    # Filled in place (helper.make_graph and make_model would copy every weight twice).
    model = onnx.ModelProto(
        ir_version=ONNX_IR_VERSION, producer_name="dlc", producer_version=__version__, doc_string=doc
    )
    model.graph.name = graph.name
    model.graph.node.extend(builder.nodes)
    model.graph.input.extend(inputs)
    model.graph.output.extend(outputs)
    model.graph.initializer.extend(builder.initializers)
    model.opset_import.append(helper.make_opsetid("", ONNX_OPSET))
    for domain, version in sorted(builder.domains.items()):
        model.opset_import.append(helper.make_opsetid(domain, version))
    props = dict(metadata or {})
    if input_ranges:
        props["dlc.input_ranges"] = json.dumps(input_ranges, sort_keys=True)
    for key in sorted(props):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, props[key]
    return model


def check_onnx_file(path: str) -> None:
    """onnx.checker's full check (shape inference included) on a written file."""
    try:
        onnx.checker.check_model(path, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise EmitError(f"the emitted ONNX model does not pass onnx.checker: {error}") from error
