"""Index and scan ops along one axis: `roll` (Swin's cyclic shift), `gather` (an index
tensor picks entries along an axis: relative-position tables, T5 buckets) and `cumsum`.

- ``roll(x, shift, axis)`` is ``torch.roll``: entry ``i`` moves to ``(i + shift) mod n``.
  ONNX has no roll; it is the concatenation of two slices, ``x[-s:]`` then ``x[:-s]``
  (with ``s = shift mod n`` when n is static).
- ``gather(x, index, axis)`` is numpy's ``take`` / ONNX ``Gather``: the output is
  ``x.shape[:axis] + index.shape + x.shape[axis + 1:]``; in torch it is indexing with one
  tensor, ``x[:, index]``. With ``elements: true`` it is ``torch.gather`` / ONNX
  ``GatherElements`` instead (index of x's rank, output of the index's shape).
- ``cumsum(x, axis)`` with torch's and ONNX's `exclusive` and `reverse` variants.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    DType,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    Value,
    axis_in_range,
    require,
)

from .common import sample_array, sample_rng, simple_block

_INDEX_TYPES = (DType.int64, DType.int32)


class RollAttrs(OpAttrs):
    shift: int
    axis: int


def _roll_infer(attrs: RollAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None, "roll needs an input")
    assert x is not None
    axis_in_range(attrs.axis, x.rank, "roll")
    return x


def _roll_onnx(b: OnnxBuilder, node: Node) -> None:
    x_value = node.inputs[0]
    axis = axis_in_range(node.attrs.axis, x_value.type.rank, "roll")
    size = x_value.type.shape[axis]
    shift = node.attrs.shift % size if isinstance(size, int) else node.attrs.shift
    x = b.name(x_value)
    if shift == 0:
        b.op("Identity", [x], b.outputs(node))
        return
    axes = b.int64s([axis], "axes")
    big = np.iinfo(np.int64).max
    tail = b.op("Slice", [x, b.int64s([-shift], "starts"), b.int64s([big], "ends"), axes])[0]
    head = b.op("Slice", [x, b.int64s([0], "starts"), b.int64s([-shift], "ends"), axes])[0]
    b.op("Concat", [tail, head], b.outputs(node), axis=axis)


def _roll_torch(t: TorchWriter, node: Node) -> str:
    return f"torch.roll({t.var(node.inputs[0])}, {node.attrs.shift}, {node.attrs.axis})"


def _roll_samples() -> list[OpSample]:
    x = sample_array(sample_rng(50), 2, 5, 6)
    return [
        OpSample((x,), {"shift": 2, "axis": 1}, name="forward"),
        OpSample((x,), {"shift": -3, "axis": -1}, name="backward"),
        OpSample((x,), {"shift": 8, "axis": 2}, name="wraps"),
    ]


class GatherAttrs(OpAttrs):
    axis: int = 0
    elements: bool = False


def _gather_infer(attrs: GatherAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) == 2 and all(t is not None for t in inputs), "gather needs `in: [x, index]`")
    x, index = inputs[0], inputs[1]
    assert x is not None and index is not None
    require(index.dtype in _INDEX_TYPES, f"gather: the index must be int64 or int32, got {index}")
    axis = axis_in_range(attrs.axis, x.rank, "gather")
    if attrs.elements:
        require(index.rank == x.rank, f"gather (elements): the index {index} must have the rank of {x}")
        return TensorType(x.dtype, index.shape)
    return TensorType(x.dtype, (*x.shape[:axis], *index.shape, *x.shape[axis + 1 :]))


def _gather_onnx(b: OnnxBuilder, node: Node) -> None:
    op = "GatherElements" if node.attrs.elements else "Gather"
    b.op(op, b.inputs(node), b.outputs(node), axis=node.attrs.axis)


def _gather_torch(t: TorchWriter, node: Node) -> str:
    x, index = (t.var(v) for v in node.inputs)
    axis = axis_in_range(node.attrs.axis, node.inputs[0].type.rank, "gather")
    if node.attrs.elements:
        return f"torch.gather({x}, {axis}, {index})"
    return f"{x}[{':, ' * axis}{index}]"  # numpy take: x[:, :, index]


def _gather_samples() -> list[OpSample]:
    rng = sample_rng(51)
    table = sample_array(rng, 7, 3)
    x = sample_array(rng, 2, 5, 4)
    index2d = np.array([[0, 4], [3, 3], [-1, 1]], dtype=np.int64)
    elements = rng.integers(0, 5, (2, 3, 4)).astype(np.int64)
    return [
        OpSample(
            (table, np.array([[6, 0, 2], [1, 1, 5]], dtype=np.int64)), symbolic_batch=False, name="table"
        ),
        OpSample((x, index2d), {"axis": 1}, name="axis1"),
        OpSample((x, np.array([3, 0], dtype=np.int64)), {"axis": -1}, symbolic_batch=False, name="last"),
        OpSample((x, elements), {"axis": 1, "elements": True}, name="elements"),
    ]


class CumsumAttrs(OpAttrs):
    axis: int
    exclusive: bool = False
    reverse: bool = False


def _cumsum_infer(attrs: CumsumAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None and x.dtype is not DType.bool, f"cumsum expects a numeric input, got {x}")
    assert x is not None
    axis_in_range(attrs.axis, x.rank, "cumsum")
    return x


def _cumsum_onnx(b: OnnxBuilder, node: Node) -> None:
    axis = b.constant(np.array(node.attrs.axis, dtype=np.int64), "axis")
    b.op(
        "CumSum",
        [b.name(node.inputs[0]), axis],
        b.outputs(node),
        exclusive=int(node.attrs.exclusive),
        reverse=int(node.attrs.reverse),
    )


def _cumsum_torch(t: TorchWriter, node: Node) -> str:
    x, axis = t.var(node.inputs[0]), node.attrs.axis
    flipped = f"{x}.flip({axis})"
    total = f"{flipped}.cumsum({axis}).flip({axis})" if node.attrs.reverse else f"{x}.cumsum({axis})"
    return f"{total} - {x}" if node.attrs.exclusive else total


def _cumsum_samples() -> list[OpSample]:
    x = sample_array(sample_rng(52), 3, 6)
    ints = np.arange(12, dtype=np.int64).reshape(3, 4)
    return [
        OpSample((x,), {"axis": 1}, name="inclusive"),
        OpSample((x,), {"axis": -1, "exclusive": True, "reverse": True}, name="exclusive-reverse"),
        OpSample((ints,), {"axis": 0}, symbolic_batch=False, name="int64"),
    ]


OPS = [
    OpDef(
        "roll",
        _roll_infer,
        _roll_onnx,
        _roll_torch,
        _roll_samples,
        RollAttrs,
        OpGroup.MOVEMENT,
        doc="Cyclic shift along an axis (torch.roll).",
    ),
    OpDef(
        "gather",
        _gather_infer,
        _gather_onnx,
        _gather_torch,
        _gather_samples,
        GatherAttrs,
        OpGroup.MOVEMENT,
        doc="Entries of x picked by an index tensor along an axis (numpy take, or torch.gather).",
    ),
    OpDef(
        "cumsum",
        _cumsum_infer,
        _cumsum_onnx,
        _cumsum_torch,
        _cumsum_samples,
        CumsumAttrs,
        OpGroup.OTHER,
        doc="Cumulative sum along an axis.",
    ),
]


# -- blocks ------------------------------------------------------------------------------


class RollConfig(BlockConfig):
    shift: int = Field(description="Positions to shift by (negative: backwards).")
    axis: int = Field(description="The axis to roll.")


class GatherConfig(BlockConfig):
    axis: int = Field(0, description="The axis the index picks along.")
    elements: bool = Field(
        False, description="torch.gather semantics: the index has x's rank and picks element by element."
    )


class CumsumConfig(BlockConfig):
    axis: int = Field(description="The axis to sum along.")
    exclusive: bool = Field(False, description="Leave each entry out of its own sum.")
    reverse: bool = Field(False, description="Sum from the end.")


def _gather_block(ctx: BlockContext, config: GatherConfig, inputs: list[Value]) -> Value:
    x, index = inputs
    if index.type.dtype not in _INDEX_TYPES:
        raise ctx.error(f"the index (second input) must be int64 or int32, got {index.type}")
    return ctx.op("gather", x, index, axis=config.axis, elements=config.elements)


BLOCKS = [
    BlockType("roll", RollConfig, simple_block("roll"), "Cyclic shift along an axis (torch.roll)."),
    BlockType(
        "gather",
        GatherConfig,
        _gather_block,
        "`in: [x, index]`: entries of x along `axis` picked by an integer index tensor.",
        inputs=(2, 2),
        shorthand="axis",
    ),
    BlockType(
        "cumsum", CumsumConfig, simple_block("cumsum"), "Cumulative sum along an axis.", shorthand="axis"
    ),
]
