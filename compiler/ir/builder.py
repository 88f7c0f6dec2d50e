"""`GraphBuilder`: creates typed nodes, running each op's inference as it goes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from dlc.errors import Location
from dlc.ir.graph import Graph
from dlc.ir.init import Init
from dlc.ir.node import Node, Value
from dlc.ir.ops import InferenceError
from dlc.ir.source_ops import ConstantAttrs, InputAttrs, ParameterAttrs, constant_type
from dlc.ir.types import DType, TensorType

if TYPE_CHECKING:
    from dlc.registry import Registry


class GraphBuilder:
    def __init__(self, graph: Graph, registry: Registry) -> None:
        self.graph = graph
        self.registry = registry

    def add_input(self, name: str, type_: TensorType, value_range: tuple[float, float] | None = None) -> Node:
        attrs = InputAttrs(name=name, value_range=value_range)
        return self.graph.add(Node(name, "input", (), (Value(name, type_),), attrs))

    def add_parameter(
        self,
        name: str,
        shape: tuple[int, ...],
        init: Init,
        *,
        dtype: DType = DType.float32,
        trainable: bool = True,
        layer: str = "",
        location: Location | None = None,
    ) -> Node:
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InferenceError(f"parameter '{name}' needs a static shape, got {list(map(str, shape))}")
        if name in self.graph:
            raise InferenceError(f"parameter name '{name}' is used twice")
        attrs = ParameterAttrs(name=name, init=init, trainable=trainable)
        module = name.rsplit(".", 1)[0] if "." in name else ""
        node = Node(
            name,
            "parameter",
            (),
            (Value(name, TensorType(dtype, shape)),),
            attrs,
            module,
            layer,
            location,
        )
        return self.graph.add(node)

    def parameter_value(self, name: str) -> Value | None:
        """The parameter called `name`, if one exists (weight tying looks it up)."""
        if name in self.graph and self.graph.node(name).op == "parameter":
            return self.graph.node(name).output
        return None

    def has_name(self, name: str) -> bool:
        """Whether a node (a parameter, say) is called `name` where parameters are added."""
        return name in self.graph

    def parameter_names(self) -> list[str]:
        return [n.attrs.name for n in self.graph.parameters()]

    def add_constant(
        self, value: np.ndarray, name: str = "const", layer: str = "", location: Location | None = None
    ) -> Node:
        value = np.ascontiguousarray(value)
        value.setflags(write=False)
        node_name = self.graph.fresh_name(name)
        attrs = ConstantAttrs(value=value)
        return self.graph.add(
            Node(
                node_name,
                "constant",
                (),
                (Value(node_name, constant_type(value)),),
                attrs,
                layer=layer,
                location=location,
            )
        )

    def add_op(
        self,
        op: str,
        inputs: Sequence[Value | None],
        attrs: Mapping[str, Any],
        *,
        name: str,
        module: str = "",
        layer: str = "",
        location: Location | None = None,
        before: Node | None = None,
    ) -> Node:
        """A node of `op` with its output types inferred; `before`: see `Graph.add`."""
        opdef = self.registry.op(op)
        try:
            typed_attrs = opdef.make_attrs(attrs)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise InferenceError(f"invalid attributes for op '{op}': {problems}") from None
        output_types = opdef.infer_types(typed_attrs, [v.type if v is not None else None for v in inputs])
        node_name = self.graph.fresh_name(name)
        ports = opdef.port_names(len(output_types))
        if len(output_types) == 1:
            outputs: tuple[Value, ...] = (Value(node_name, output_types[0]),)
        else:
            outputs = tuple(
                Value(f"{node_name}:{port}", t) for port, t in zip(ports, output_types, strict=True)
            )
        node = Node(node_name, op, tuple(inputs), outputs, typed_attrs, module, layer, location)
        return self.graph.add(node, before=before)

    def note_input_range(self, value: Value, low: float, high: float) -> None:
        producer = self.graph.producer(value)
        if producer.op != "input":
            return
        current = producer.attrs.value_range
        if current is not None:
            low, high = max(low, current[0]), min(high, current[1])
        attrs = InputAttrs(name=producer.attrs.name, value_range=(low, high))
        self.graph.replace_node(producer, producer.replace(attrs=attrs))
