"""Pooling blocks: max, average, min and softmax pooling (1-D/2-D/3-D), global max and
average pooling, and adaptive average pooling.

- min pooling is ``-max_pool(-x)`` (padding ignored, as for max pooling);
- softmax pooling is the softmax-weighted average of each window,
  ``sum_i softmax(w)_i w_i`` for a window w (between the mean and the max), built from
  strided slices of the input, one per kernel tap, so every window is normalized by its
  own maximum (numerically stable); padded positions get zero weight;
- global pooling reduces every spatial dim (``keepdims`` keeps them as size 1, like
  ``AdaptiveAvgPool2d(1)``), with the core reductions.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from dlc.plugin_api import (
    FLOAT32_LOWEST,
    BlockConfig,
    BlockContext,
    BlockType,
    Value,
    format_shape,
    is_static,
)

from .geometry import (
    PER_DIM_AT_LEAST_ONE,
    SPATIAL_NAMES,
    check_padding,
    check_per_dim,
    expect_spatial_input,
    per_dim,
    ranked,
    resolve_padding,
    window_output_size,
)

_LOWEST = FLOAT32_LOWEST  # softmax pooling's padding: weight exp(-huge) = 0


class PoolConfig(BlockConfig):
    rank: ClassVar[int] = 2

    kernel: int | list[int] = Field(
        description="Window size: one int for every spatial dim, or one per dim.",
        json_schema_extra=PER_DIM_AT_LEAST_ONE,
    )
    stride: int | list[int] | None = Field(
        None,
        description="Step between windows; default: the kernel size.",
        json_schema_extra=PER_DIM_AT_LEAST_ONE,
    )
    padding: int | list[int] | list[list[int]] = Field(
        0, description="An int, one per dim, or [begin, end] pairs per dim; each smaller than the kernel."
    )

    @field_validator("kernel", "stride")
    @classmethod
    def _at_least_one(cls, value: int | list[int] | None, info: ValidationInfo) -> int | list[int] | None:
        return value if value is None else check_per_dim(value, cls.rank, info.field_name, 1)

    @field_validator("padding")
    @classmethod
    def _padding(cls, value: int | list[int] | list[list[int]]) -> int | list[int] | list[list[int]]:
        return check_padding(value, cls.rank, ())


class MaxPoolConfig(PoolConfig):
    dilation: int | list[int] = Field(
        1, description="Spacing between window taps.", json_schema_extra=PER_DIM_AT_LEAST_ONE
    )
    ceil_mode: bool = Field(False, description="Round the output size up (torch's ceil_mode).")

    @field_validator("dilation")
    @classmethod
    def _dilation(cls, value: int | list[int]) -> int | list[int]:
        return check_per_dim(value, cls.rank, "dilation", 1)


class AvgPoolConfig(PoolConfig):
    count_include_pad: bool = Field(True, description="Divide by the whole window, padding included (torch).")


class GlobalPoolConfig(BlockConfig):
    keepdims: bool = Field(True, description="Keep the spatial dims as size 1 ([N, C, 1, 1]); else [N, C].")


class AdaptivePoolConfig(BlockConfig):
    rank: ClassVar[int] = 2

    size: int | list[int] = Field(description="Output spatial size: one int, or one per dim.")

    @field_validator("size")
    @classmethod
    def _size(cls, value: int | list[int]) -> int | list[int]:
        return check_per_dim(value, cls.rank, "size", 1)


def _window(ctx: BlockContext, config: PoolConfig, x: Value) -> tuple[tuple[int, ...], ...]:
    """kernel, stride, pads and dilation of a pooling block on input `x`."""
    rank = config.rank
    problem = expect_spatial_input(x.type.shape, rank)
    if problem:
        raise ctx.error(problem)
    kernel = per_dim(config.kernel, rank, "kernel")
    stride = kernel if config.stride is None else per_dim(config.stride, rank, "stride")
    dilation = per_dim(getattr(config, "dilation", 1), rank, "dilation")
    pads = resolve_padding(config.padding, kernel, stride, dilation, x.type.shape[2:])
    if getattr(config, "ceil_mode", False):
        pads = _ceil_mode_pads(ctx, x, kernel, stride, dilation, pads)
    return kernel, stride, pads, dilation


def _ceil_mode_pads(
    ctx: BlockContext,
    x: Value,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    pads: tuple[int, ...],
) -> tuple[int, ...]:
    """torch's ceil_mode as extra end padding: round the window count up, unless the last
    window would start past the input and its begin padding."""
    rank = len(kernel)
    ends = list(pads[rank:])
    for axis, size in enumerate(x.type.shape[2:]):
        if not is_static(size):
            raise ctx.error(f"ceil_mode needs static spatial dims, got {format_shape(x.type.shape)}")
        begin, reach = pads[axis], dilation[axis] * (kernel[axis] - 1) + 1
        padded = int(size) + begin + ends[axis]
        count = -(-(padded - reach) // stride[axis]) + 1
        if (count - 1) * stride[axis] >= int(size) + begin:
            count -= 1
        ends[axis] += max((count - 1) * stride[axis] + reach - padded, 0)
    return (*pads[:rank], *ends)


def _max_pool(ctx: BlockContext, config: MaxPoolConfig, inputs: list[Value]) -> Value:
    kernel, stride, pads, dilation = _window(ctx, config, inputs[0])
    return ctx.op("max_pool", inputs[0], kernel=kernel, stride=stride, padding=pads, dilation=dilation)


def _min_pool(ctx: BlockContext, config: MaxPoolConfig, inputs: list[Value]) -> Value:
    kernel, stride, pads, dilation = _window(ctx, config, inputs[0])
    negated = ctx.op("neg", inputs[0])
    pooled = ctx.op("max_pool", negated, kernel=kernel, stride=stride, padding=pads, dilation=dilation)
    return ctx.op("neg", pooled)


def _avg_pool(ctx: BlockContext, config: AvgPoolConfig, inputs: list[Value]) -> Value:
    kernel, stride, pads, _ = _window(ctx, config, inputs[0])
    return ctx.op(
        "avg_pool",
        inputs[0],
        kernel=kernel,
        stride=stride,
        padding=pads,
        count_include_pad=config.count_include_pad,
    )


def _softmax_pool(ctx: BlockContext, config: PoolConfig, inputs: list[Value]) -> Value:
    """Stack the k taps of every window on a new axis 2, then softmax-weight and sum them."""
    x = inputs[0]
    kernel, stride, pads, _ = _window(ctx, config, x)
    rank = config.rank
    for axis, k in enumerate(kernel):
        if max(pads[axis], pads[axis + rank]) >= k:
            raise ctx.error(
                f"padding {list(pads)} must be smaller than the kernel {list(kernel)} in every dim"
            )
    if any(pads):
        x = ctx.op("pad", x, pads=pads, value=_LOWEST)
    for size, k, step in zip(x.type.shape[2:], kernel, stride, strict=True):
        if is_static(size) and window_output_size(size, 0, 0, k, step, 1) < 1:
            raise ctx.error(
                f"kernel {list(kernel)} is larger than the input {format_shape(inputs[0].type.shape)}"
            )
    taps = []
    for offsets in itertools.product(*(range(k) for k in kernel)):
        tap = x  # x[..., offset::stride] up to the last full window, in every spatial dim
        for axis, (offset, k, step) in enumerate(zip(offsets, kernel, stride, strict=True)):
            end = offset - (k - 1) if offset < k - 1 else None
            if offset or end is not None or step != 1:
                tap = ctx.op("slice", tap, axis=2 + axis, start=offset, end=end, step=step)
        taps.append(ctx.op("unsqueeze", tap, axis=2))
    stacked = ctx.op("concat", *taps, axis=2) if len(taps) > 1 else taps[0]
    weights = ctx.op("softmax", stacked, axis=2)
    return ctx.op("reduce_sum", ctx.op("mul", weights, stacked), axes=(2,))


def _global_pool(reduction: str):
    def lower(ctx: BlockContext, config: GlobalPoolConfig, inputs: list[Value]) -> Value:
        x = inputs[0]
        if x.type.rank < 3:
            raise ctx.error(f"expects an input [N, C, *spatial], got {format_shape(x.type.shape)}")
        axes = tuple(range(2, x.type.rank))
        return ctx.op(reduction, x, axes=axes, keepdims=config.keepdims)

    return lower


def _adaptive_avg_pool(ctx: BlockContext, config: AdaptivePoolConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    problem = expect_spatial_input(x.type.shape, config.rank)
    if problem:
        raise ctx.error(problem)
    return ctx.op("adaptive_avg_pool", x, output_size=per_dim(config.size, config.rank, "size"))


_POOLS = {
    "max_pool": (MaxPoolConfig, _max_pool, "Maximum of each window (padding ignored)."),
    "avg_pool": (AvgPoolConfig, _avg_pool, "Mean of each window (torch's count_include_pad default)."),
    "min_pool": (MaxPoolConfig, _min_pool, "Minimum of each window: -max_pool(-x)."),
    "softmax_pool": (
        PoolConfig,
        _softmax_pool,
        "Softmax-weighted average of each window: sum(softmax(w) * w).",
    ),
}

BLOCKS = [
    *(
        BlockType(
            f"{name}{rank}d",
            ranked(config, rank),
            lower,
            f"{doc} Input [N, C, {SPATIAL_NAMES[rank]}].",
            shorthand="kernel",
        )
        for name, (config, lower, doc) in _POOLS.items()
        for rank in (1, 2, 3)
    ),
    BlockType(
        "global_avg_pool",
        GlobalPoolConfig,
        _global_pool("reduce_mean"),
        "Mean over every spatial dim of [N, C, ...] (to [N, C, 1, ...] or [N, C]).",
    ),
    BlockType(
        "global_max_pool",
        GlobalPoolConfig,
        _global_pool("reduce_max"),
        "Maximum over every spatial dim of [N, C, ...].",
    ),
    *(
        BlockType(
            f"adaptive_avg_pool{rank}d",
            ranked(AdaptivePoolConfig, rank),
            _adaptive_avg_pool,
            f"Average over torch's adaptive bins to a fixed size; input [N, C, {SPATIAL_NAMES[rank]}].",
            shorthand="size",
        )
        for rank in (1, 2, 3)
    ),
]
