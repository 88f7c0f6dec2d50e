"""Generic shape ops shared by every family: transpose, slice, split, squeeze and
unsqueeze, expand and arange (ops and blocks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    Dim,
    DType,
    InferenceError,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    Sym,
    TensorType,
    TorchWriter,
    Value,
    axis_in_range,
    broadcast,
    require,
)

from .common import one_input_samples, sample_array, sample_rng, simple_block

INT64_MAX = 2**63 - 1


class TransposeAttrs(OpAttrs):
    perm: tuple[int, ...]


def _transpose_infer(attrs: TransposeAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    require(
        sorted(attrs.perm) == list(range(x.rank)),
        f"transpose: perm {list(attrs.perm)} is not a permutation of the {x.rank} dims of {x}",
    )
    return x.with_shape([x.shape[i] for i in attrs.perm])


def _transpose_torch(t: TorchWriter, node: Node) -> str:
    return f"{t.var(node.inputs[0])}.permute({', '.join(map(str, node.attrs.perm))})"


class SliceAttrs(OpAttrs):
    axis: int
    start: int = 0
    end: int | None = None  # None: to the end
    step: int = Field(1, ge=1)


def slice_length(dim: Dim, start: int, end: int | None, step: int) -> Dim:
    """Length of x[start:end:step] along a dim of size `dim` (Python semantics).

    On a symbolic dim, bounds counted from the front (>= 0) and from the back (< 0) are
    taken at face value, as if the dim were long enough; mixing a negative start with a
    non-negative end has no symbolic answer."""
    if isinstance(dim, int):
        return len(range(*slice(start, end, step).indices(dim)))
    if start >= 0:
        stop: Dim = dim if end is None else (dim + end if end < 0 else end)
    elif end is None or end < 0:
        stop = 0 if end is None else end
    else:
        raise InferenceError(f"slice [{start}:{end}] of the symbolic dim {dim} has no static length")
    return (stop - start + step - 1) // step


def _slice_infer(attrs: SliceAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank, "slice")
    length = slice_length(x.shape[axis], attrs.start, attrs.end, attrs.step)
    require(not isinstance(length, int) or length > 0, f"slice [{attrs.start}:{attrs.end}] of {x} is empty")
    shape = list(x.shape)
    shape[axis] = length
    return x.with_shape(shape)


def _slice_onnx(b: OnnxBuilder, node: Node) -> None:
    a = node.attrs
    end = INT64_MAX if a.end is None else a.end
    b.op(
        "Slice",
        [
            b.name(node.inputs[0]),
            b.int64s([a.start], "starts"),
            b.int64s([end], "ends"),
            b.int64s([a.axis], "axes"),
            b.int64s([a.step], "steps"),
        ],
        b.outputs(node),
    )


def _slice_torch(t: TorchWriter, node: Node) -> str:
    a = node.attrs
    rank = node.inputs[0].type.rank
    axis = a.axis % rank
    bounds = f"{a.start or ''}:{'' if a.end is None else a.end}" + (f":{a.step}" if a.step != 1 else "")
    prefix = "..., " if axis == rank - 1 and rank > 1 else ":, " * axis
    return f"{t.var(node.inputs[0])}[{prefix}{bounds}]"


class SplitAttrs(OpAttrs):
    axis: int
    sizes: tuple[int, ...]


def _split_infer(attrs: SplitAttrs, inputs: Sequence[TensorType | None]) -> list[TensorType]:
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank, "split")
    require(all(s > 0 for s in attrs.sizes), f"split sizes must be positive, got {list(attrs.sizes)}")
    require(
        x.shape[axis] == sum(attrs.sizes),
        f"split sizes {list(attrs.sizes)} add up to {sum(attrs.sizes)}, "
        f"but dim {attrs.axis} of {x} is {x.shape[axis]}",
    )
    outputs = []
    for size in attrs.sizes:
        shape = list(x.shape)
        shape[axis] = size
        outputs.append(x.with_shape(shape))
    return outputs


def _split_onnx(b: OnnxBuilder, node: Node) -> None:
    sizes = b.int64s(node.attrs.sizes, "sizes")
    b.op("Split", [b.name(node.inputs[0]), sizes], b.outputs(node), axis=node.attrs.axis)


def _split_torch(t: TorchWriter, node: Node) -> str:
    sizes = list(node.attrs.sizes)
    return f"torch.split({t.var(node.inputs[0])}, {sizes}, dim={node.attrs.axis})"


class AxisAttrs(OpAttrs):
    axis: int


def _unsqueeze_infer(attrs: AxisAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank + 1, "unsqueeze")
    return x.with_shape([*x.shape[:axis], 1, *x.shape[axis:]])


def _squeeze_infer(attrs: AxisAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank, "squeeze")
    require(x.shape[axis] == 1, f"squeeze: dim {attrs.axis} of {x} is {x.shape[axis]}, not 1")
    return x.with_shape([*x.shape[:axis], *x.shape[axis + 1 :]])


def _axes_onnx(onnx_op: str):
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, [b.name(node.inputs[0]), b.int64s([node.attrs.axis], "axes")], b.outputs(node))

    return to_onnx


def _method_torch(method: str):
    def to_torch(t: TorchWriter, node: Node) -> str:
        return f"{t.var(node.inputs[0])}.{method}({node.attrs.axis})"

    return to_torch


class ArangeAttrs(OpAttrs):
    axis: int


def _arange_infer(attrs: ArangeAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    """arange(x): 0, 1, ..., n - 1 (int64) where n is dim `axis` of x, static or symbolic."""
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank, "arange")
    return TensorType(DType.int64, (x.shape[axis],))


def _arange_onnx(b: OnnxBuilder, node: Node) -> None:
    x = node.inputs[0]
    axis = axis_in_range(node.attrs.axis, x.type.rank, "arange")
    length = b.op("Shape", [b.name(x)], start=axis, end=axis + 1)[0]
    limit = b.op("Squeeze", [length])[0]  # Range takes scalars
    start = b.constant(np.array(0, dtype=np.int64), "start")
    delta = b.constant(np.array(1, dtype=np.int64), "delta")
    b.op("Range", [start, limit, delta], b.outputs(node))


def _arange_torch(t: TorchWriter, node: Node) -> str:
    x = t.var(node.inputs[0])
    return f"torch.arange({x}.size({node.attrs.axis}), device={x}.device)"


def _arange_samples() -> list[OpSample]:
    x = sample_array(sample_rng(13), 3, 5)
    return [
        OpSample((x,), {"axis": 0}, name="symbolic"),
        OpSample((x,), {"axis": -1}, name="static"),
    ]


class ExpandAttrs(OpAttrs):
    shape: tuple[Any, ...]  # ints and symbolic dims


def _expand_infer(attrs: ExpandAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    """expand(x, like?): `like`, when given, only supplies the sizes of symbolic dims."""
    x = inputs[0]
    assert x is not None
    target = TensorType(x.dtype, tuple(attrs.shape))
    require(target.rank >= x.rank, f"expand: cannot expand {x} to fewer dims {list(map(str, attrs.shape))}")
    known = x.symbols | (inputs[1].symbols if len(inputs) > 1 and inputs[1] is not None else frozenset())
    missing = target.symbols - known
    require(not missing, f"expand: the sizes of {sorted(missing)} are unknown; give a tensor that has them")
    result = broadcast([x, target], "expand")
    require(result.shape == target.shape, f"expand: {x} does not expand to {target}")
    return result


def _expand_onnx(b: OnnxBuilder, node: Node) -> None:
    x, *donors = node.input_values
    b.op("Expand", [b.name(x), b.expand_shape(x, node.outputs[0].type.shape, donors)], b.outputs(node))


def _expand_torch(t: TorchWriter, node: Node) -> str:
    x, *donors = node.input_values
    return f"{t.var(x)}.expand({t.shape_args(x, node.outputs[0].type.shape, donors)})"


def _expand_samples() -> list[OpSample]:
    rng = sample_rng(5)
    n = Sym.symbol("N")
    return [
        OpSample((sample_array(rng, 3, 1),), {"shape": (n, 4)}, name="symbolic"),
        OpSample((sample_array(rng, 1, 4),), {"shape": (2, 3, 4)}, symbolic_batch=False, name="new-dims"),
        OpSample(
            (sample_array(rng, 1, 1, 4), sample_array(rng, 3, 5, 4)),
            {"shape": (n, 1, 4)},
            symbols={1: {0: "N"}},
            name="size-from-another",
        ),
    ]


def _transpose_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Transpose", b.inputs(node), b.outputs(node), perm=list(node.attrs.perm))


def _slice_samples() -> list[OpSample]:
    x = sample_array(sample_rng(7), 3, 6, 5)
    return [
        OpSample((x,), {"axis": 1, "start": 1, "end": 4}, name="middle"),
        OpSample((x,), {"axis": -1, "start": 2}, name="to-end"),
        OpSample((x,), {"axis": 1, "start": -3, "step": 2}, name="negative-step2"),
        OpSample((x,), {"axis": 0, "start": 1}, name="symbolic-axis"),
    ]


class TransposeConfig(BlockConfig):
    perm: list[int] = Field(description="The new order of the dims, batch included.")


class SliceConfig(BlockConfig):
    axis: int = Field(description="The dim to slice (negative: from the end).")
    start: int = Field(0, description="First index kept (negative: from the end).")
    end: int | None = Field(None, description="Exclusive; omitted: to the end.")
    step: int = Field(1, ge=1, description="Keep every step-th index.")


class SplitConfig(BlockConfig):
    axis: int = Field(-1, description="The dim to split (negative: from the end).")
    sizes: list[int] = Field(min_length=1, description="Sizes of the pieces; outputs are ports 0, 1, ...")


class AxisConfig(BlockConfig):
    axis: int = Field(description="The dim it acts on (negative: from the end).")


def _split_block(ctx: BlockContext, config: SplitConfig, inputs: list[Value]) -> dict[str, Value]:
    pieces = ctx.ops("split", inputs, axis=config.axis, sizes=tuple(config.sizes))
    return {str(i): v for i, v in enumerate(pieces)}


OPS = [
    OpDef(
        "transpose",
        _transpose_infer,
        _transpose_onnx,
        _transpose_torch,
        lambda: [OpSample((sample_array(sample_rng(8), 2, 3, 4),), {"perm": (0, 2, 1)}, name="last-two")],
        TransposeAttrs,
        OpGroup.MOVEMENT,
        doc="Permute dims.",
    ),
    OpDef(
        "slice",
        _slice_infer,
        _slice_onnx,
        _slice_torch,
        _slice_samples,
        SliceAttrs,
        OpGroup.MOVEMENT,
        doc="x[start:end:step] along one axis (Python semantics).",
    ),
    OpDef(
        "split",
        _split_infer,
        _split_onnx,
        _split_torch,
        lambda: [OpSample((sample_array(sample_rng(9), 2, 7, 3),), {"axis": 1, "sizes": (3, 4)}, name="two")],
        SplitAttrs,
        OpGroup.MOVEMENT,
        outputs=(),
        doc="Split along an axis into pieces of the given sizes.",
    ),
    OpDef(
        "unsqueeze",
        _unsqueeze_infer,
        _axes_onnx("Unsqueeze"),
        _method_torch("unsqueeze"),
        one_input_samples({"axis": 1}),
        AxisAttrs,
        OpGroup.MOVEMENT,
        doc="Insert a dim of size 1.",
    ),
    OpDef(
        "squeeze",
        _squeeze_infer,
        _axes_onnx("Squeeze"),
        _method_torch("squeeze"),
        lambda: [OpSample((sample_array(sample_rng(10), 3, 1, 4),), {"axis": 1}, name="middle")],
        AxisAttrs,
        OpGroup.MOVEMENT,
        doc="Remove a dim of size 1.",
    ),
    OpDef(
        "arange",
        _arange_infer,
        _arange_onnx,
        _arange_torch,
        _arange_samples,
        ArangeAttrs,
        OpGroup.OTHER,
        doc="0, 1, ..., n - 1 (int64), n being dim `axis` of the input (positions along a dynamic dim).",
    ),
    OpDef(
        "expand",
        _expand_infer,
        _expand_onnx,
        _expand_torch,
        _expand_samples,
        ExpandAttrs,
        OpGroup.MOVEMENT,
        doc="Broadcast to a larger shape.",
    ),
]


BLOCKS = [
    BlockType("transpose", TransposeConfig, simple_block("transpose"), "Permute dims.", shorthand="perm"),
    BlockType("slice", SliceConfig, simple_block("slice"), "x[start:end:step] along one axis."),
    BlockType(
        "split",
        SplitConfig,
        _split_block,
        "Split into pieces; refer to them as `name.0`, `name.1`, ...",
        outputs=("0",),
    ),
    BlockType(
        "unsqueeze", AxisConfig, simple_block("unsqueeze"), "Insert a dim of size 1.", shorthand="axis"
    ),
    BlockType("squeeze", AxisConfig, simple_block("squeeze"), "Remove a dim of size 1.", shorthand="axis"),
    BlockType(
        "arange",
        AxisConfig,
        simple_block("arange"),
        "0, 1, ..., n - 1 (int64), n being dim `axis` of the input.",
        shorthand="axis",
    ),
]
