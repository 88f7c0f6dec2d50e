"""`BlockContext`: what a block's lowering function uses to add IR nodes.

A block names its parameters locally (``weight``) and the context scopes them
hierarchically from the spec (``stage.1.fc.weight``); those names become torch
`state_dict` keys and ONNX initializer names. A block may instead *tie* a parameter to one
that an earlier layer created (``ctx.param("weight", ..., tie="wte")``): the two layers
then share one tensor, in the IR, in ONNX and in torch. Shape inference failures inside
an op become `ShapeError`s that point at the spec layer and name the shapes involved.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dlc.errors import Location, ShapeError
from dlc.ir.init import Init
from dlc.ir.node import Value
from dlc.ir.ops import InferenceError
from dlc.ir.types import DType, TensorType, format_shape
from dlc.lazy_imports import numpy as np
from dlc.spec.suggest import did_you_mean

if TYPE_CHECKING:
    from dlc.spec.blocks import BlockType
    from dlc.spec.lower import Lowering
    from dlc.spec.scope import Frame


class BlockContext:
    """Handed to `BlockType.lower`; adds ops, parameters and constants for one layer."""

    def __init__(
        self, lowering: Lowering, frame: Frame, block: BlockType, name: str, location: Location
    ) -> None:
        self._lowering = lowering
        self.frame = frame
        self.block = block
        self.name = name  # the layer's full dotted name, e.g. "stage.0.linear_1"
        self.location = location
        self._scopes: list[str] = [name]
        self.created: list[str] = []  # node names created for this layer, in order
        self.path: tuple[str | int, ...] = ()  # the layer's YAML path, for nested templates' errors

    @property
    def scope(self) -> str:
        return ".".join(s for s in self._scopes if s)

    @property
    def float_dtype(self) -> DType:
        return DType.float32

    @contextmanager
    def sub_scope(self, name: str) -> Iterator[None]:
        """Nest parameter names (and torch submodules) under `name`."""
        self._scopes.append(name)
        try:
            yield
        finally:
            self._scopes.pop()

    @contextmanager
    def enclosing_scope(self) -> Iterator[None]:
        """Name what is created inside in the scope that holds this layer, not under the
        layer's own name: for containers whose parts are named as the reference's siblings
        (RealNVP's couplings keep their nets in `s.K` and `t.K`, not `coupling_K.s`)."""
        saved = self._scopes
        self._scopes = [self.name.rpartition(".")[0]]
        try:
            yield
        finally:
            self._scopes = saved

    def qualify(self, name: str) -> str:
        """`name` in the current scope (``stage.0.fc`` for ``fc``)."""
        return f"{self.scope}.{name}" if self.scope else name

    def op(self, op: str, *inputs: Value | None, **attrs: Any) -> Value:
        """Add a single-output op and return its value."""
        outputs = self.ops(op, inputs, **attrs)
        if len(outputs) != 1:
            raise AssertionError(f"op '{op}' has {len(outputs)} outputs; use ctx.ops()")
        return outputs[0]

    def ops(self, op: str, inputs: Sequence[Value | None], **attrs: Any) -> tuple[Value, ...]:
        """Add an op and return all of its outputs."""
        try:
            node = self._lowering.builder.add_op(
                op,
                inputs,
                attrs,
                name=f"{self.scope}/{op}",
                module=self.scope,
                layer=self.name,
                location=self.location,
            )
        except InferenceError as error:
            shapes = ", ".join(format_shape(v.type.shape) for v in inputs if v is not None)
            raise self.error(f"{error}", notes=[f"input shapes: {shapes}"] if shapes else []) from None
        self.created.append(node.name)
        return node.outputs

    def param(
        self,
        name: str,
        shape: Sequence[int],
        init: Init,
        *,
        dtype: DType = DType.float32,
        trainable: bool = True,
        tie: str | None = None,
        key: str | None = None,
    ) -> Value:
        """A parameter named ``<scope>.<name>`` (or exactly `key`); `trainable=False` makes
        it a buffer.

        With `tie`, no parameter is created: the existing parameter that `tie` names is
        returned instead (weight tying), after checking its shape and dtype."""
        if tie is not None:
            return self._tied_param(tie, name, tuple(shape), dtype)
        full = key or self.qualify(name)
        shared = self._lowering.shared_parameter(full, tuple(shape), dtype, self)
        if shared is not None:
            return shared
        if self._lowering.builder.has_name(full):
            raise self.error(f"parameter name '{full}' is already used by an earlier layer")
        node = self._lowering.builder.add_parameter(
            full,
            tuple(shape),
            init,
            dtype=dtype,
            trainable=trainable,
            layer=self.name,
            location=self.location,
        )
        self.created.append(node.name)
        return node.output

    def _tied_param(self, reference: str, local: str, shape: tuple[int, ...], dtype: DType) -> Value:
        """Resolve `reference` (a layer such as ``wte``, or a parameter such as
        ``wte.weight``) from the innermost enclosing scope outwards."""
        builder = self._lowering.builder  # in a loop body, it finds (and captures) outer weights
        parts = self.name.split(".")[:-1]
        prefixes = [".".join(parts[:i]) for i in range(len(parts), -1, -1)]
        for prefix in prefixes:
            base = f"{prefix}.{reference}" if prefix else reference
            for candidate in (base, f"{base}.{local}"):
                value = builder.parameter_value(candidate)
                if value is not None:
                    if value.type.shape != shape or value.type.dtype != dtype:
                        raise self.error(
                            f"tie: '{candidate}' is {value.type}, but this layer's {local} must be "
                            f"{TensorType(dtype, shape)}"
                        )
                    return value
        known = builder.parameter_names()
        hint = did_you_mean(reference, known + [name.rsplit(".", 1)[0] for name in known])
        raise self.error(
            f"tie: no parameter '{reference}' is defined before this layer",
            hint=hint or "tie to a layer (or parameter) that comes earlier in the spec",
        )

    def constant(self, value: np.ndarray, name: str = "const") -> Value:
        node = self._lowering.builder.add_constant(
            np.asarray(value), name=f"{self.scope}/{name}", layer=self.name, location=self.location
        )
        self.created.append(node.name)
        return node.output

    def block_call(
        self,
        block_name: str,
        config: Mapping[str, Any] | None,
        inputs: Sequence[Value],
        *,
        name: str,
    ) -> Value:
        """Lower another registered block as a part of this one (a composite block)."""
        result = self._lowering.lower_nested_block(self, block_name, dict(config or {}), list(inputs), name)
        return result.value

    def block_call_ports(
        self,
        block_name: str,
        config: Mapping[str, Any] | None,
        inputs: Sequence[Value],
        *,
        name: str,
        inverse: bool = False,
    ) -> dict[str, Value]:
        """`block_call` returning every output port; with `inverse`, the block's inverse map
        (a flow lowers its steps so, last first; see `dlc.spec.direction`)."""
        result = self._lowering.lower_nested_block(
            self, block_name, dict(config or {}), list(inputs), name, inverse=inverse
        )
        return dict(result.ports)

    def block_type(self, name: str) -> BlockType | None:
        """The registered block `name`, or None: a block that takes other blocks as options
        (a flow's steps) checks them before lowering them."""
        providers = self._lowering.registry.block_providers(name)
        return providers[0] if len(providers) == 1 else None

    def reserve(self, nodes: int, what: str) -> None:
        """Check that `nodes` more IR nodes fit under the node limit before building them; a
        block that stacks a counted number of layers calls this first, so that
        ``lstm: {layers: 1000000}`` fails at once instead of after minutes and gigabytes."""
        self._lowering.builder.check_room(nodes, self.location, f"{self.block.name} '{self.name}' ({what})")

    def note_input_range(self, value: Value, low: float | str, high: float | str) -> None:
        """Record the valid value range of a graph input (token ids for an embedding, node
        indices in [0, V) for an edge_index: a bound may name a symbolic dim), so random
        inputs stay in range."""
        self._lowering.builder.note_input_range(value, low, high)

    def error(self, message: str, *, hint: str | None = None, notes: Sequence[str] = ()) -> ShapeError:
        """A located error for this layer; ``raise ctx.error(...)``."""
        prefix = f"{self.block.name} layer '{self.name}': "
        return self._lowering.located_error(
            prefix + message, self.frame, self.location, hint, notes, ShapeError
        )

    def describe(self, value: Value) -> str:
        return format_shape(value.type.shape)

    @staticmethod
    def tensor_type(dtype: DType, shape: Sequence[Any]) -> TensorType:
        return TensorType(dtype, tuple(shape))
