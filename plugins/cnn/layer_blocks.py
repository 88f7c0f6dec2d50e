"""Blocks without weights around convolutions: `pad`, `upsample`, `center_crop` (U-Net's
crop-and-concat skip), `local_response_norm` and `dropout1d/2d/3d`."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from dlc.plugin_api import BlockConfig, BlockContext, BlockType, Value, format_shape, is_static

from .geometry import SPATIAL_NAMES, check_padding, expect_spatial_input, per_dim, resolve_padding
from .layer_ops import PadMode


def _spatial_rank(ctx: BlockContext, x: Value) -> int:
    rank = x.type.rank - 2
    if not 1 <= rank <= 3:
        raise ctx.error(
            f"expects an input [N, C, *spatial] with 1 to 3 spatial dims, got {format_shape(x.type.shape)}"
        )
    return rank


class PadConfig(BlockConfig):
    padding: int | list[int] | list[list[int]] = Field(
        description="Of the spatial dims: an int, one per dim, or [begin, end] pairs per dim."
    )
    mode: PadMode = Field("constant", description="constant, reflect, replicate (the edge) or circular.")
    value: float = Field(0.0, description="The fill of constant padding.")
    axes: int | list[int] | None = Field(
        None,
        description="Pad these axes of any tensor instead of the spatial dims (`padding` then has "
        "one entry per listed axis).",
    )


def _pad_axes(ctx: BlockContext, config: PadConfig, x: Value) -> Value:
    """Padding of arbitrary axes (`axes: [1]` pads the time axis of [N, T, F]): the op pads
    the trailing dims from the first listed axis on, with zeros for the others."""
    rank = x.type.rank
    listed = [config.axes] if isinstance(config.axes, int) else list(config.axes or [])
    normalized = []
    for axis in listed:
        if not -rank <= axis < rank:
            raise ctx.error(f"axis {axis} is out of range for {format_shape(x.type.shape)}")
        normalized.append(axis % rank)
    if not normalized or len(set(normalized)) != len(normalized):
        raise ctx.error(f"`axes` must list distinct axes, got {config.axes}")
    padding = config.padding
    if isinstance(padding, int):
        pairs = [[padding, padding]] * len(normalized)
    elif len(padding) != len(normalized):
        raise ctx.error(f"`padding` has {len(padding)} entries for {len(normalized)} axes {listed}")
    else:
        pairs = [list(p) if isinstance(p, list) else [p, p] for p in padding]
    if any(len(p) != 2 or min(p) < 0 for p in pairs):
        raise ctx.error(f"`padding` takes an int >= 0 or a [begin, end] pair per axis, got {padding}")
    first = min(normalized)
    begins, ends = [0] * (rank - first), [0] * (rank - first)
    for axis, (begin, end) in zip(normalized, pairs, strict=True):
        begins[axis - first], ends[axis - first] = begin, end
    return ctx.op("pad", x, pads=(*begins, *ends), mode=config.mode, value=config.value)


def _pad(ctx: BlockContext, config: PadConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if config.axes is not None:
        return _pad_axes(ctx, config, x)
    rank = _spatial_rank(ctx, x)
    try:
        check_padding(config.padding, rank, ())
    except ValueError as error:
        raise ctx.error(f"{error} (input {format_shape(x.type.shape)})") from None
    pads = resolve_padding(config.padding, (1,) * rank, (1,) * rank, (1,) * rank, x.type.shape[2:])
    return ctx.op("pad", x, pads=pads, mode=config.mode, value=config.value)


class UpsampleConfig(BlockConfig):
    scale: float | list[float] = Field(2.0, description="Factor: one for every spatial dim, or one per dim.")
    mode: Literal["nearest", "linear", "bilinear", "trilinear"] = Field(
        "nearest", description="nearest, or linear interpolation (bilinear for 2-D, trilinear for 3-D)."
    )
    align_corners: bool = Field(False, description="Linear modes: align the corner pixels (torch's option).")

    @field_validator("scale")
    @classmethod
    def _positive(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or min(values) <= 0 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"scale must be finite and > 0, got {value}")
        return value


_LINEAR_RANK = {"bilinear": 2, "trilinear": 3}


def _upsample(ctx: BlockContext, config: UpsampleConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    rank = _spatial_rank(ctx, x)
    wanted = _LINEAR_RANK.get(config.mode)
    if wanted is not None and wanted != rank:
        raise ctx.error(f"mode '{config.mode}' needs {wanted} spatial dims, got {format_shape(x.type.shape)}")
    if config.align_corners and config.mode == "nearest":
        raise ctx.error("align_corners applies to the linear modes only")
    values = config.scale if isinstance(config.scale, list) else [config.scale] * rank
    if len(values) != rank:
        raise ctx.error(f"scale {config.scale} needs one value or {rank} for {format_shape(x.type.shape)}")
    mode = "nearest" if config.mode == "nearest" else "linear"
    return ctx.op(
        "resize", x, scale=tuple(float(v) for v in values), mode=mode, align_corners=config.align_corners
    )


class CenterCropConfig(BlockConfig):
    size: int | list[int] | None = Field(
        None, description="Target spatial size; default: the spatial size of the second input."
    )


def _center_crop(ctx: BlockContext, config: CenterCropConfig, inputs: list[Value]) -> Value:
    """Crop the centre of the first input to the spatial size of the second (or `size`);
    an odd excess leaves the extra row or column at the end."""
    x = inputs[0]
    rank = _spatial_rank(ctx, x)
    shape = format_shape(x.type.shape)
    if (len(inputs) == 2) == (config.size is not None):
        raise ctx.error("give either a second input to match (`in: [x, like]`) or `size`, not both")
    if len(inputs) == 2:
        like = inputs[1]
        if like.type.rank != x.type.rank:
            raise ctx.error(
                f"cannot crop {shape} to the spatial size of {format_shape(like.type.shape)}: ranks differ"
            )
        target = like.type.shape[2:]
        what = f"the spatial size {format_shape(target)} of {format_shape(like.type.shape)}"
    else:
        try:
            target = per_dim(config.size, rank, "size")  # type: ignore[arg-type]
        except ValueError as error:
            raise ctx.error(str(error)) from None
        what = f"the size {list(target)}"
    cropped = x
    for axis, (size, wanted) in enumerate(zip(x.type.shape[2:], target, strict=True)):
        if size == wanted:
            continue
        if not (is_static(size) and is_static(wanted)):
            raise ctx.error(f"cannot crop {shape} to {what}: spatial dim {axis} is not static")
        if int(wanted) > int(size):
            raise ctx.error(
                f"cannot crop {shape} to {what}: spatial dim {axis} is {size}, smaller than {wanted}",
                hint="the skip connection must be at least as large as the tensor it is concatenated with",
            )
        start = (int(size) - int(wanted)) // 2
        cropped = ctx.op("slice", cropped, axis=2 + axis, start=start, end=start + int(wanted))
    return cropped if cropped is not x else ctx.op("identity", x)


class LocalResponseNormConfig(BlockConfig):
    size: int = Field(ge=1, description="Neighbouring channels summed over (AlexNet: 5).")
    alpha: float = Field(1e-4, description="Scale of the sum of squares (divided by size, as torch).")
    beta: float = Field(0.75, description="Exponent.")
    k: float = Field(1.0, description="Additive constant (AlexNet: 2).")


def _local_response_norm(ctx: BlockContext, config: LocalResponseNormConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if x.type.rank < 3 or not is_static(x.type.shape[1]):
        raise ctx.error(f"expects [N, C, *spatial] with a static C, got {format_shape(x.type.shape)}")
    return ctx.op("local_response_norm", x, **config.model_dump())


class ChannelDropoutConfig(BlockConfig):
    p: float = Field(0.5, ge=0.0, lt=1.0, description="Probability of zeroing a whole channel in training.")


def _channel_dropout(rank: int):
    def lower(ctx: BlockContext, config: ChannelDropoutConfig, inputs: list[Value]) -> Value:
        problem = expect_spatial_input(inputs[0].type.shape, rank)
        if problem:
            raise ctx.error(problem)
        return ctx.op("channel_dropout", inputs[0], p=config.p)

    return lower


BLOCKS = [
    BlockType(
        "pad",
        PadConfig,
        _pad,
        "Pad the spatial dims of [N, C, ...] (or any `axes`): constant, reflect, replicate or circular.",
        shorthand="padding",
    ),
    BlockType(
        "upsample",
        UpsampleConfig,
        _upsample,
        "Scale the spatial dims by `scale` (nearest, or linear/bilinear/trilinear interpolation).",
        shorthand="scale",
    ),
    BlockType(
        "center_crop",
        CenterCropConfig,
        _center_crop,
        "Crop the centre of the first input to the spatial size of the second (U-Net skips) or to `size`.",
        inputs=(1, 2),
        shorthand="size",
    ),
    BlockType(
        "local_response_norm",
        LocalResponseNormConfig,
        _local_response_norm,
        "Local response normalization across channels (AlexNet; torch's LocalResponseNorm).",
        shorthand="size",
    ),
    *(
        BlockType(
            f"dropout{rank}d",
            ChannelDropoutConfig,
            _channel_dropout(rank),
            f"Dropout of whole channels of [N, C, {SPATIAL_NAMES[rank]}] (the identity in inference).",
            shorthand="p",
        )
        for rank in (1, 2, 3)
    ),
]
