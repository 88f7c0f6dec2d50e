"""Reductions over axes: mean, sum, max and min (ops and blocks)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dlc.plugin_api import (
    BlockConfig,
    BlockType,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    axis_in_range,
    require,
)

from .common import sample_array, sample_rng, simple_block


class ReduceAttrs(OpAttrs):
    axes: tuple[int, ...]
    keepdims: bool = False


def _reduce_infer(attrs: ReduceAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    require(bool(attrs.axes), "a reduction needs at least one axis")
    axes = {axis_in_range(a, x.rank, "reduce") for a in attrs.axes}
    shape = (
        [1 if i in axes else d for i, d in enumerate(x.shape)]
        if attrs.keepdims
        else [d for i, d in enumerate(x.shape) if i not in axes]
    )
    return x.with_shape(shape)


def _reduce(name: str, onnx_op: str, torch_method: str, doc: str) -> OpDef:
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        axes = b.int64s(node.attrs.axes, "axes")
        b.op(onnx_op, [b.name(node.inputs[0]), axes], b.outputs(node), keepdims=int(node.attrs.keepdims))

    def to_torch(t: TorchWriter, node: Node) -> str:
        axes = node.attrs.axes
        dims = str(axes[0]) if len(axes) == 1 else repr(tuple(axes))
        keep = ", keepdim=True" if node.attrs.keepdims else ""
        return f"{t.var(node.inputs[0])}.{torch_method}(dim={dims}{keep})"

    def samples() -> list[OpSample]:
        x = sample_array(sample_rng(6), 2, 3, 4)
        return [
            OpSample((x,), {"axes": (-1,)}, name="last"),
            OpSample((x,), {"axes": (1, 2), "keepdims": True}, name="keepdims"),
        ]

    return OpDef(name, _reduce_infer, to_onnx, to_torch, samples, ReduceAttrs, OpGroup.REDUCTION, doc=doc)


class ReduceConfig(BlockConfig):
    axes: list[int] = Field(min_length=1, description="The dims to reduce over (negative: from the end).")
    keepdims: bool = Field(False, description="Keep each reduced dim with size 1.")


OPS = [
    _reduce("reduce_mean", "ReduceMean", "mean", "Mean over axes."),
    _reduce("reduce_sum", "ReduceSum", "sum", "Sum over axes."),
    _reduce("reduce_max", "ReduceMax", "amax", "Maximum over axes."),
    _reduce("reduce_min", "ReduceMin", "amin", "Minimum over axes."),
]


BLOCKS = [
    BlockType("reduce_mean", ReduceConfig, simple_block("reduce_mean"), "Mean over axes.", shorthand="axes"),
    BlockType("reduce_sum", ReduceConfig, simple_block("reduce_sum"), "Sum over axes.", shorthand="axes"),
    BlockType("reduce_max", ReduceConfig, simple_block("reduce_max"), "Maximum over axes.", shorthand="axes"),
    BlockType("reduce_min", ReduceConfig, simple_block("reduce_min"), "Minimum over axes.", shorthand="axes"),
]
