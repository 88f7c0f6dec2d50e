"""`GraphBuilder`: creates typed nodes, running each op's inference as it goes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dlc.errors import Diagnostic, Location
from dlc.ir.graph import Graph
from dlc.ir.init import Init
from dlc.ir.node import Node, Value
from dlc.ir.ops import InferenceError
from dlc.ir.source_ops import ConstantAttrs, InputAttrs, ParameterAttrs, constant_type
from dlc.ir.symbolic import SymbolicLimitError
from dlc.ir.types import DType, TensorType
from dlc.lazy_imports import numpy as np
from dlc.limits import MAX_DIM, ResourceLimitError, format_count

if TYPE_CHECKING:
    from dlc.registry import Registry


class GraphBuilder:
    """Adds typed nodes to `graph`; with `node_limit`, refuses to grow it past that many
    nodes (the lowering's `--max-nodes`), so that no spec builds without end."""

    def __init__(self, graph: Graph, registry: Registry, node_limit: int | None = None) -> None:
        self.graph = graph
        self.registry = registry
        self.node_limit = node_limit

    def check_room(self, more: int, location: Location | None, what: str = "") -> None:
        """Raise `ResourceLimitError` when `more` nodes would not fit under the limit."""
        if self.node_limit is None or len(self.graph) + more <= self.node_limit:
            return
        needed = f"{what} needs {format_count(more)} more" if what else "it grows past the limit"
        message = (
            f"this model has too many operations: {format_count(len(self.graph))} so far, and {needed}; "
            f"the limit is {format_count(self.node_limit)} (`--max-nodes` to raise it)"
        )
        raise ResourceLimitError(diagnostics=[Diagnostic(message, location)])

    def add_input(
        self, name: str, type_: TensorType, value_range: tuple[float | str, float | str] | None = None
    ) -> Node:
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
        _check_static_dims(shape, f"parameter '{name}'")
        self.check_room(1, location)
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
        self.check_room(1, location)
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
        self.check_room(1, location)
        opdef = self.registry.op(op)
        try:
            typed_attrs = opdef.make_attrs(attrs)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise InferenceError(f"invalid attributes for op '{op}': {problems}") from None
        try:
            output_types = opdef.infer_types(typed_attrs, [v.type if v is not None else None for v in inputs])
        except SymbolicLimitError as error:
            raise InferenceError(str(error)) from None
        for output_type in output_types:
            _check_static_dims(output_type.shape, f"the output of '{op}'")
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

    def note_input_range(self, value: Value, low: float | str, high: float | str) -> None:
        """Narrow an input's valid range; a bound naming a dim (`V`) is kept as the name, and
        a range with such a bound is not narrowed by a second one."""
        producer = self.graph.producer(value)
        if producer.op != "input":
            return
        current = producer.attrs.value_range
        if current is not None:
            if any(isinstance(bound, str) for bound in (low, high, *current)):
                return
            low, high = max(low, current[0]), min(high, current[1])
        attrs = InputAttrs(name=producer.attrs.name, value_range=(low, high))
        self.graph.replace_node(producer, producer.replace(attrs=attrs))


def _check_static_dims(shape: Sequence[object], what: str) -> None:
    """No inferred size may pass `MAX_DIM`: a 2^63 dim must fail here, at the layer that
    makes it, not in the ONNX writer."""
    for dim in shape:
        if isinstance(dim, int) and dim > MAX_DIM:
            raise InferenceError(
                f"{what} would have a dimension of {format_count(dim)}, larger than the limit "
                f"{MAX_DIM:,} (2^31 - 1)"
            )
