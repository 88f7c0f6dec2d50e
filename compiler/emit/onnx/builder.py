"""`OnnxBuilder`: what an op's ONNX lowering uses to add ONNX nodes and constants.

A lowering reads ``b.inputs(node)`` / ``b.outputs(node)`` (ONNX value names) and calls
``b.op(...)``; helper values get names under the IR node's name (``fc1/transpose``) so
the ONNX graph reads like the IR.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dlc.errors import EmitError
from dlc.ir.node import Node, Value
from dlc.ir.symbolic import Dim
from dlc.ir.types import DType, format_shape
from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:  # onnx is imported when emitting, not when plugins import this module
    import onnx

    from dlc.registry import Registry


class OnnxBuilder:
    def __init__(self, names: dict[str, str], registry: Registry | None = None) -> None:
        self._names = names
        self._used: set[str] = set(names.values())
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.domains: dict[str, int] = {}
        self.current: Node | None = None
        self.registry = registry  # the ops' lowerings, for ops that lower a nested body

    def nested(self, names: dict[str, str]) -> OnnxBuilder:
        """A builder for a subgraph (a loop body) with its own nodes and value names. It
        shares the used names (ONNX names are unique across a model's graphs), constants
        and domains with this one: a subgraph may read its outer graphs' values."""
        child = OnnxBuilder(names, self.registry)
        self._used.update(names.values())
        child._used = self._used
        child.initializers = self.initializers
        child.domains = self.domains
        return child

    @contextmanager
    def subgraph(self) -> Iterator[list[onnx.NodeProto]]:
        """Collect the nodes `op` adds inside the block, for a subgraph written by hand (a
        hand-built Scan or Loop body); constants still go to the outer graph, whose values
        a subgraph may read. A loop over an IR body uses `nested` instead."""
        outer = self.nodes
        self.nodes = []
        try:
            yield self.nodes
        finally:
            self.nodes = outer

    def bind(self, value: Value, name: str) -> None:
        """Give an IR value (of a body being built) its ONNX name."""
        self._names[value.name] = name
        self._used.add(name)

    # -- names ---------------------------------------------------------------------------

    def name(self, value: Value | None) -> str:
        """The ONNX name of an IR value ('' for an omitted optional input)."""
        if value is None:
            return ""
        return self._names[value.name]

    def inputs(self, node: Node) -> list[str]:
        return [self.name(v) for v in node.inputs]

    def outputs(self, node: Node) -> list[str]:
        return [self.name(v) for v in node.outputs]

    def fresh(self, hint: str) -> str:
        base = f"{self.current.name}/{hint}" if self.current is not None else hint
        name, index = base, 1
        while name in self._used:
            name = f"{base}_{index}"
            index += 1
        self._used.add(name)
        return name

    # -- building ------------------------------------------------------------------------

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int | None = None,
        *,
        domain: str = "",
        **attrs: Any,
    ) -> list[str]:
        """Add one ONNX node; returns its output names (fresh ones unless given)."""
        if outputs is None:
            outputs = [self.fresh(op_type.lower())]
        elif isinstance(outputs, int):
            outputs = [self.fresh(f"{op_type.lower()}_{i}") for i in range(outputs)]
        if domain:
            self.domains.setdefault(domain, 1)
        node_name = self.fresh(op_type)
        from onnx import helper

        inputs = list(inputs)
        while inputs and inputs[-1] == "":  # trailing omitted optional inputs
            inputs.pop()
        self.nodes.append(
            helper.make_node(op_type, inputs, list(outputs), name=node_name, domain=domain, **attrs)
        )
        return list(outputs)

    def require_domain(self, domain: str, version: int) -> None:
        self.domains[domain] = max(version, self.domains.get(domain, 0))

    def constant(self, array: np.ndarray, hint: str = "const") -> str:
        """An initializer holding `array` (shape tensors, scalars, ...)."""
        name = self.fresh(hint)
        self.initializers.append(tensor_proto(name, np.asarray(array)))
        return name

    def int64s(self, values: Sequence[int], hint: str = "shape") -> str:
        return self.constant(np.array(list(values), dtype=np.int64), hint)

    def target_shape(self, source: Value, dims: Sequence[Dim], donors: Sequence[Value] = ()) -> str:
        """A 1-D int64 shape tensor for Reshape of `source` to `dims` (which may be symbolic).

        Static dims are literal; a symbolic dim in the same position as in `source` becomes
        0 (Reshape copies it); one remaining symbolic dim becomes -1. Only when more are left
        is the shape computed at run time, from ``Shape`` of `source` or of a `donor`."""
        entries: list[int | None] = []
        for index, dim in enumerate(dims):
            if isinstance(dim, int):
                entries.append(dim)
            elif index < source.type.rank and source.type.shape[index] == dim:
                entries.append(0)
            else:
                entries.append(None)
        unresolved = [i for i, e in enumerate(entries) if e is None]
        if len(unresolved) == 1:
            entries[unresolved[0]] = -1
        else:
            # Several: those a donor has come from its Shape; one that none has (a product
            # such as N*T, from flattening [N, T, C, 16] to [N*T, C, 16]) is what remains: -1.
            shapes = [v.type.shape for v in (source, *donors)]
            orphans = [i for i in unresolved if not any(dims[i] in shape for shape in shapes)]
            if len(orphans) == 1:
                entries[orphans[0]] = -1
        return self._shape_tensor(dims, entries, [source, *donors])

    def expand_shape(self, source: Value, dims: Sequence[Dim], donors: Sequence[Value] = ()) -> str:
        """A 1-D int64 shape tensor for Expand of `source` to `dims`: a symbolic dim that
        `source` already has in the same (right-aligned) position becomes 1, since
        broadcasting keeps it; others come from ``Shape`` of `source` or of a `donor`."""
        offset = len(dims) - source.type.rank
        entries: list[int | None] = []
        for index, dim in enumerate(dims):
            if isinstance(dim, int):
                entries.append(dim)
            elif index - offset >= 0 and source.type.shape[index - offset] == dim:
                entries.append(1)
            else:
                entries.append(None)
        return self._shape_tensor(dims, entries, [source, *donors])

    def _shape_tensor(self, dims: Sequence[Dim], entries: list[int | None], donors: Sequence[Value]) -> str:
        if all(e is not None for e in entries):
            return self.int64s([e for e in entries if e is not None])
        pieces = []
        for dim, entry in zip(dims, entries, strict=True):
            if entry is not None:
                pieces.append(self.int64s([entry], "dim"))
                continue
            donor = next((v for v in donors if dim in v.type.shape), None)
            if donor is None:
                shapes = ", ".join(format_shape(v.type.shape) for v in donors)
                raise EmitError(f"cannot compute dim {dim} of {format_shape(dims)} from the shapes {shapes}")
            position = list(donor.type.shape).index(dim)
            pieces.append(self.op("Shape", [self.name(donor)], start=position, end=position + 1)[0])
        return self.op("Concat", pieces, axis=0)[0]


PLACEHOLDER_FILE = "weights.placeholder"  # where data-free initializers point until written


def placeholder(name: str, dims: Sequence[int], dtype: DType) -> onnx.TensorProto:
    """A data-free initializer: its data is streamed when the model is written
    (`dlc.emit.onnx.writer.save_onnx`)."""
    import onnx

    tensor = onnx.TensorProto()
    tensor.name = name
    tensor.data_type = dtype.onnx
    tensor.dims.extend(int(d) for d in dims)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", PLACEHOLDER_FILE
    return tensor


def tensor_proto(name: str, array: np.ndarray, dtype: DType | None = None) -> onnx.TensorProto:
    """A TensorProto holding the raw bytes of `array` (fast: one memory copy)."""
    import onnx

    dtype = dtype or DType.from_numpy(array.dtype)
    tensor = onnx.TensorProto()
    tensor.name = name
    tensor.data_type = dtype.onnx
    tensor.dims.extend(int(d) for d in array.shape)
    tensor.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return tensor
