"""Set pooling: sum, mean or max over the elements of sets [N, M, F], with an optional
padding mask [N, M] (op and block).

Sets of different sizes travel as one padded tensor: set n has the elements where
``mask[n, m]`` is nonzero (bool, integer or float; nonzero means present). Padding never
reaches the result, whatever values it holds: sum and mean select the present elements
(``where``, not a multiplication, so a padded inf or NaN cannot leak), max fills padding
with -inf before reducing. An all-padding set pools to 0, as PyTorch Geometric's
aggregations give 0 to a node with no neighbours; its mean divides by max(count, 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

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
    format_shape,
    require,
)

SetReduce = Literal["sum", "mean", "max"]
SET_AXIS = 1  # sets are [N, M, F]: batch, elements, features


class SetPoolAttrs(OpAttrs):
    reduce: SetReduce
    keepdims: bool = False


def set_shape_problem(x: TensorType, mask: TensorType | None) -> str | None:
    """Why `x` (and `mask`) are not a set [N, M, F] (and its padding mask [N, M]), or None.
    Shared by the op's inference and the blocks' located errors."""
    if x.rank != 3:
        return f"expects a set [N, M, F] (batch, elements, features), got {format_shape(x.shape)}"
    if not x.dtype.is_float:
        return f"expects floating-point set features, got {x}"
    if mask is not None and mask.shape != x.shape[:2]:
        return (
            f"the padding mask {format_shape(mask.shape)} does not match the set "
            f"{format_shape(x.shape)}: it must be {format_shape(x.shape[:2])} (batch, elements)"
        )
    return None


def _set_pool_infer(attrs: SetPoolAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    mask = inputs[1] if len(inputs) > 1 else None
    require(x is not None, "set_pool needs a set")
    assert x is not None
    problem = set_shape_problem(x, mask)
    require(problem is None, f"set_pool {problem}")
    shape = (x.shape[0], 1, x.shape[2]) if attrs.keepdims else (x.shape[0], x.shape[2])
    return x.with_shape(shape)


_ONNX_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax"}


def _set_pool_onnx(b: OnnxBuilder, node: Node) -> None:
    x = b.name(node.inputs[0])
    reduce, keepdims = node.attrs.reduce, int(node.attrs.keepdims)
    axes = b.int64s([SET_AXIS], "set_axis")
    if len(node.inputs) == 1:
        b.op(_ONNX_REDUCE[reduce], [x, axes], b.outputs(node), keepdims=keepdims)
        return
    dtype = node.inputs[0].type.dtype
    mask = b.name(node.inputs[1])
    if node.inputs[1].type.dtype is not DType.bool:
        mask = b.op("Cast", [mask], to=DType.bool.onnx)[0]  # nonzero: present
    present = b.op("Unsqueeze", [mask, b.int64s([2], "feature_axis")])[0]  # [N, M, 1]
    count = b.op("ReduceSum", [b.op("Cast", [present], to=dtype.onnx)[0], axes], keepdims=keepdims)[0]
    if reduce == "max":
        lowest = b.constant(np.array(-np.inf, dtype=dtype.numpy), "minus_inf")
        filled = b.op("Where", [present, x, lowest])[0]
        maximum = b.op("ReduceMax", [filled, axes], keepdims=keepdims)[0]
        zero = b.constant(np.array(0, dtype=dtype.numpy), "zero")
        nonempty = b.op("Greater", [count, zero])[0]
        b.op("Where", [nonempty, maximum, zero], b.outputs(node))  # an empty set pools to 0
        return
    zero = b.constant(np.array(0, dtype=dtype.numpy), "zero")
    selected = b.op("Where", [present, x, zero])[0]
    if reduce == "sum":
        b.op("ReduceSum", [selected, axes], b.outputs(node), keepdims=keepdims)
        return
    total = b.op("ReduceSum", [selected, axes], keepdims=keepdims)[0]
    one = b.constant(np.array(1, dtype=dtype.numpy), "one")
    b.op("Div", [total, b.op("Max", [count, one])[0]], b.outputs(node))


MASKED_SET_POOL_HELPER = '''
def masked_set_pool(x: torch.Tensor, mask: torch.Tensor, reduce: str, keepdim: bool) -> torch.Tensor:
    """Pool padded sets x [N, M, F] over their elements (dim 1), reading only the elements
    where mask [N, M] is nonzero; an empty set pools to 0."""
    present = (mask != 0).unsqueeze(-1)  # [N, M, 1]
    count = present.sum(1, keepdim=keepdim).to(x.dtype)
    if reduce == "max":
        pooled = x.masked_fill(~present, float("-inf")).amax(1, keepdim=keepdim)
        return torch.where(count > 0, pooled, torch.zeros_like(pooled))
    total = x.masked_fill(~present, 0.0).sum(1, keepdim=keepdim)
    return total if reduce == "sum" else total / count.clamp(min=1)
'''

_TORCH_REDUCE = {"sum": "sum", "mean": "mean", "max": "amax"}


def _set_pool_torch(t: TorchWriter, node: Node) -> str:
    reduce, keepdims = node.attrs.reduce, node.attrs.keepdims
    x = t.var(node.inputs[0])
    if len(node.inputs) == 1:
        keep = ", keepdim=True" if keepdims else ""
        return f"{x}.{_TORCH_REDUCE[reduce]}(dim={SET_AXIS}{keep})"
    helper = t.helper("masked_set_pool", MASKED_SET_POOL_HELPER)
    return f"{helper}({x}, {t.var(node.inputs[1])}, {reduce!r}, {keepdims})"


def _set_pool_samples() -> list[OpSample]:
    rng = np.random.default_rng(1401)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    lengths = np.array([5, 2, 0])  # a full set, a padded one and an empty one
    mask = np.arange(5)[None, :] < lengths[:, None]
    x_padded = np.where(mask[:, :, None], x, np.float32(1e6))  # padding that would dominate
    samples = []
    for reduce in ("sum", "mean", "max"):
        samples.append(OpSample((x,), {"reduce": reduce}, name=f"{reduce}"))
        samples.append(OpSample((x,), {"reduce": reduce, "keepdims": True}, name=f"{reduce}-keepdims"))
        samples.append(OpSample((x_padded, mask), {"reduce": reduce}, name=f"{reduce}-bool-mask"))
        samples.append(
            OpSample(
                (x_padded, mask.astype(np.float32)),
                {"reduce": reduce, "keepdims": True},
                name=f"{reduce}-float-mask-keepdims",
            )
        )
    return samples


OPS = [
    OpDef(
        "set_pool",
        _set_pool_infer,
        _set_pool_onnx,
        _set_pool_torch,
        _set_pool_samples,
        SetPoolAttrs,
        OpGroup.REDUCTION,
        doc="Sum, mean or max over the elements (dim 1) of sets [N, M, F]; `in: [x, mask]` skips padding.",
    ),
]


# -- block -------------------------------------------------------------------------------


class SetPoolConfig(BlockConfig):
    reduce: SetReduce = Field(description="How the elements of a set combine: sum, mean or max.")
    keepdims: bool = Field(
        False, description="Keep the element dim with size 1: [N, 1, F] instead of [N, F]."
    )


def check_set_inputs(ctx: BlockContext, inputs: list[Value]) -> tuple[Value, Value | None]:
    """The set and its optional padding mask, or a located error naming their shapes."""
    x = inputs[0]
    mask = inputs[1] if len(inputs) > 1 else None
    problem = set_shape_problem(x.type, mask.type if mask is not None else None)
    if problem is not None:
        raise ctx.error(problem)
    return x, mask


def _set_pool_block(ctx: BlockContext, config: SetPoolConfig, inputs: list[Value]) -> Value:
    x, mask = check_set_inputs(ctx, inputs)
    pooled = [x] if mask is None else [x, mask]
    return ctx.op("set_pool", *pooled, reduce=config.reduce, keepdims=config.keepdims)


BLOCKS = [
    BlockType(
        "set_pool",
        SetPoolConfig,
        _set_pool_block,
        "Sum, mean or max over the elements of sets [N, M, F] -> [N, F] (permutation invariant); "
        "`in: [x, mask]` with a padding mask [N, M] (nonzero: present) ignores padding",
        inputs=(1, 2),
        shorthand="reduce",
    ),
]
