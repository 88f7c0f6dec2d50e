"""The three source ops every graph starts from: graph inputs, parameters and constants.

They belong to the IR itself rather than to a plugin: emitters turn them into ONNX graph
inputs and initializers, and torch inputs, parameters and buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlc.ir.init import Init
from dlc.ir.node import Array, Node, OpAttrs, instance_of
from dlc.ir.ops import OpDef, OpGroup
from dlc.ir.types import DType, TensorType
from dlc.lazy_imports import numpy as np


class InputAttrs(OpAttrs):
    name: str
    # For integer inputs: valid [low, high); a bound may name a symbolic dim (`[0, V]`: node
    # indices of a graph with V nodes), resolved when random inputs are drawn. Integral bounds
    # stay ints (the ONNX metadata writes `[0, 2]`); a fractional one (`2.5`) is a float.
    value_range: tuple[int | float | str, int | float | str] | None = None


class ParameterAttrs(OpAttrs):
    name: str
    init: instance_of(Init)
    trainable: bool = True  # False for buffers such as batch-norm running statistics


class ConstantAttrs(OpAttrs):
    value: Array


def _no_inference(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    raise AssertionError("source nodes carry their type; nothing to infer")


def _emitted_by_emitter(*args: object) -> None:
    raise AssertionError("source nodes are emitted by the emitter itself")


def constant_type(value: np.ndarray) -> TensorType:
    return TensorType(DType.from_numpy(value.dtype), tuple(int(d) for d in value.shape))


SOURCE_OPS = tuple(
    OpDef(
        name=name,
        infer=_no_inference,
        to_onnx=_emitted_by_emitter,
        to_torch=_emitted_by_emitter,
        samples=tuple,
        attrs=attrs,
        group=OpGroup.SOURCE,
        doc=doc,
        plugin="dlc",
    )
    for name, attrs, doc in (
        ("input", InputAttrs, "A graph input."),
        ("parameter", ParameterAttrs, "A named weight or buffer with its initializer."),
        ("constant", ConstantAttrs, "A literal tensor."),
    )
)


def is_source(node: Node) -> bool:
    return node.op in ("input", "parameter", "constant")
