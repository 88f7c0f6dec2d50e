"""Shape and merge operations: flatten, reshape, add, mul, concat, and constant tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

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
    concat,
    reshape,
)

# -- flatten / reshape -------------------------------------------------------------------


class FlattenAttrs(OpAttrs):
    start: int = 1
    end: int = -1


def _flatten_target(attrs: FlattenAttrs, x: TensorType) -> list[Dim]:
    start = axis_in_range(attrs.start, x.rank, "flatten")
    end = axis_in_range(attrs.end, x.rank, "flatten")
    if start > end:
        raise InferenceError(f"flatten: start dim {attrs.start} comes after end dim {attrs.end} for {x}")
    merged: Dim = 1
    for dim in x.shape[start : end + 1]:
        merged = merged * dim
    return [*x.shape[:start], merged, *x.shape[end + 1 :]]


def _flatten_infer(attrs: FlattenAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    if x.rank == 0:
        raise InferenceError("flatten needs at least one dim")
    return x.with_shape(_flatten_target(attrs, x))


def _flatten_onnx(b: OnnxBuilder, node: Node) -> None:
    x = node.inputs[0]
    start = axis_in_range(node.attrs.start, x.type.rank, "flatten")
    end = axis_in_range(node.attrs.end, x.type.rank, "flatten")
    if end == x.type.rank - 1 and start <= 1:
        b.op("Flatten", b.inputs(node), b.outputs(node), axis=start)
        return
    target = node.outputs[0].type.shape
    b.op("Reshape", [b.name(x), b.target_shape(x, target)], b.outputs(node))


def _flatten_torch(t: TorchWriter, node: Node) -> str:
    return f"torch.flatten({t.var(node.inputs[0])}, {node.attrs.start}, {node.attrs.end})"


class ReshapeAttrs(OpAttrs):
    shape: tuple[Any, ...]  # ints, -1 and symbolic dims


def _reshape_infer(attrs: ReshapeAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    """reshape(x, like?): `like`, when given, supplies the sizes of symbolic dims that x
    only has merged (x [N*T, F] to [N, T, F] reads N and T from a [N, T, ...] tensor)."""
    x = inputs[0]
    assert x is not None
    return reshape(x, list(attrs.shape))


def _reshape_onnx(b: OnnxBuilder, node: Node) -> None:
    x, *donors = node.input_values
    b.op("Reshape", [b.name(x), b.target_shape(x, node.outputs[0].type.shape, donors)], b.outputs(node))


def _reshape_torch(t: TorchWriter, node: Node) -> str:
    x, *donors = node.input_values
    return f"{t.var(x)}.reshape({t.shape_args(x, node.outputs[0].type.shape, donors)})"


def _shape_samples() -> list[OpSample]:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    return [
        OpSample((x,), name="default"),
        OpSample((x,), {"start": 2}, name="start2"),
        OpSample((x,), {"start": 0, "end": 1}, name="leading"),
    ]


def _reshape_samples() -> list[OpSample]:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 12)).astype(np.float32)
    n = Sym.symbol("N")
    return [
        OpSample((x,), {"shape": (n, 3, 4)}, name="symbolic"),
        OpSample((x,), {"shape": (-1, 6)}, symbolic_batch=False, name="infer"),
        OpSample((x,), {"shape": (n, 2, -1)}, name="symbolic-infer"),
        OpSample(
            (x, rng.standard_normal((2, 5)).astype(np.float32)),
            {"shape": (n, 3, 4)},
            name="sizes-from-another",
        ),
    ]


# -- add / mul / concat ------------------------------------------------------------------


def _broadcast_infer(name: str):
    def infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
        types = [t for t in inputs if t is not None]
        if len(types) < 2:
            raise InferenceError(f"{name} needs at least two inputs")
        return broadcast(types, name)

    return infer


def _chain_onnx(onnx_op: str):
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        names = b.inputs(node)
        current = names[0]
        for index, other in enumerate(names[1:], start=1):
            last = index == len(names) - 1
            current = b.op(onnx_op, [current, other], b.outputs(node) if last else None)[0]

    return to_onnx


def _infix_torch(symbol: str):
    def to_torch(t: TorchWriter, node: Node) -> str:
        return f" {symbol} ".join(t.var(v) for v in node.inputs)

    return to_torch


def _merge_samples() -> list[OpSample]:
    rng = np.random.default_rng(7)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    return [
        OpSample((arr(3, 4), arr(3, 4)), name="same"),
        OpSample((arr(3, 4), arr(3, 4), arr(3, 4)), name="three"),
        OpSample((arr(2, 3, 4), arr(4)), params=frozenset({1}), name="broadcast"),
    ]


class ConcatAttrs(OpAttrs):
    axis: int = 1


def _concat_infer(attrs: ConcatAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    types = [t for t in inputs if t is not None]
    if len(types) < 2:
        raise InferenceError("concat needs at least two inputs")
    return concat(types, attrs.axis, "concat")


def _concat_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Concat", b.inputs(node), b.outputs(node), axis=node.attrs.axis)


def _concat_torch(t: TorchWriter, node: Node) -> str:
    return f"torch.cat([{', '.join(t.var(v) for v in node.inputs)}], dim={node.attrs.axis})"


def _concat_samples() -> list[OpSample]:
    rng = np.random.default_rng(8)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 5, 4)).astype(np.float32)
    c = rng.standard_normal((2, 3, 2)).astype(np.float32)
    return [OpSample((a, b), name="axis1"), OpSample((a, c), {"axis": -1}, name="last")]


OPS = [
    OpDef(
        "flatten",
        _flatten_infer,
        _flatten_onnx,
        _flatten_torch,
        _shape_samples,
        FlattenAttrs,
        OpGroup.MOVEMENT,
        doc="Merge dims start..end into one.",
    ),
    OpDef(
        "reshape",
        _reshape_infer,
        _reshape_onnx,
        _reshape_torch,
        _reshape_samples,
        ReshapeAttrs,
        OpGroup.MOVEMENT,
        doc="View the data with another shape (one dim may be -1).",
    ),
    OpDef(
        "add",
        _broadcast_infer("add"),
        _chain_onnx("Add"),
        _infix_torch("+"),
        _merge_samples,
        group=OpGroup.ELEMENTWISE,
        doc="Element-wise sum of its inputs (with broadcasting).",
    ),
    OpDef(
        "mul",
        _broadcast_infer("mul"),
        _chain_onnx("Mul"),
        _infix_torch("*"),
        _merge_samples,
        group=OpGroup.ELEMENTWISE,
        doc="Element-wise product of its inputs (with broadcasting).",
    ),
    OpDef(
        "concat",
        _concat_infer,
        _concat_onnx,
        _concat_torch,
        _concat_samples,
        ConcatAttrs,
        OpGroup.MOVEMENT,
        doc="Concatenate along an axis.",
    ),
]


# -- blocks ------------------------------------------------------------------------------


class FlattenConfig(BlockConfig):
    start: int = Field(1, description="First dim to merge (1 keeps the batch dim).")
    end: int = Field(-1, description="Last dim to merge.")


class ReshapeConfig(BlockConfig):
    shape: list[int | str] = Field(
        description="Target shape, batch included: ints, one -1, and symbolic dims such as N."
    )

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[int | str]) -> list[int | str]:
        for dim in shape:
            if isinstance(dim, str) and not dim.isidentifier():
                raise ValueError(f"dims are ints, -1 or symbol names such as N, got {dim!r}")
            if isinstance(dim, int) and (dim == 0 or dim < -1):
                raise ValueError(f"dims are positive ints or -1, got {dim}")
        return shape


class NoOptions(BlockConfig):
    pass


class ConcatConfig(BlockConfig):
    axis: int = Field(1, description="Axis to concatenate along (1: features or channels).")


class ConstantConfig(BlockConfig):
    value: float | list[Any] = Field(description="A number or a nested list of numbers.")
    dtype: DType = Field(DType.float32, description="The constant's element type.")


def _flatten_block(ctx: BlockContext, config: FlattenConfig, inputs: list[Value]) -> Value:
    return ctx.op("flatten", inputs[0], start=config.start, end=config.end)


def _reshape_block(ctx: BlockContext, config: ReshapeConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    dims: list[Dim] = []
    known = x.type.symbols
    for dim in config.shape:
        if isinstance(dim, str):
            if dim not in known:
                raise ctx.error(f"symbol '{dim}' is not a dim of the input {x.type}")
            dims.append(Sym.symbol(dim))
        else:
            dims.append(dim)
    return ctx.op("reshape", x, shape=tuple(dims))


def _merge(op: str):
    def lower(ctx: BlockContext, config: NoOptions, inputs: list[Value]) -> Value:
        return ctx.op(op, *inputs)

    return lower


def _concat_block(ctx: BlockContext, config: ConcatConfig, inputs: list[Value]) -> Value:
    return ctx.op("concat", *inputs, axis=config.axis)


def _constant_block(ctx: BlockContext, config: ConstantConfig, inputs: list[Value]) -> Value:
    try:
        array = np.array(config.value, dtype=config.dtype.numpy)
    except (ValueError, TypeError) as error:
        raise ctx.error(f"value is not a rectangular array of numbers: {error}") from None
    return ctx.constant(array, "value")


BLOCKS = [
    BlockType("flatten", FlattenConfig, _flatten_block, "Merge dims start..end into one (torch.flatten)."),
    BlockType("reshape", ReshapeConfig, _reshape_block, "Reshape, batch dim included.", shorthand="shape"),
    BlockType("add", NoOptions, _merge("add"), "Sum of its inputs (`in: [a, b]`).", inputs=(2, None)),
    BlockType("mul", NoOptions, _merge("mul"), "Element-wise product of its inputs.", inputs=(2, None)),
    BlockType(
        "concat",
        ConcatConfig,
        _concat_block,
        "Concatenate its inputs along an axis.",
        inputs=(2, None),
        shorthand="axis",
    ),
    BlockType(
        "constant",
        ConstantConfig,
        _constant_block,
        "A literal tensor.",
        inputs=(0, 0),
        shorthand="value",
    ),
]
