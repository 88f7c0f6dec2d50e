"""Convolution blocks: `conv1d/2d/3d` and `conv_transpose1d/2d/3d`.

Input channels are inferred; padding may be an int, one int per spatial dim,
``[begin, end]`` pairs per dim, or ``same`` / ``valid`` / ``causal`` (conv1d), and is
resolved into explicit pads on the `conv` op. A `padding_mode` other than ``zeros`` becomes
a `pad` op in front of an unpadded conv (torch's ``padding_mode``, same parameters).

Initialization is torch's: weight and bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
``fan_in = C_in / groups * prod(kernel)`` for a conv and ``C_out / groups * prod(kernel)``
for a transposed conv (torch computes it from dim 1 of the weight in both cases).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    TensorType,
    Value,
    format_shape,
    init,
    is_static,
)

from .geometry import (
    PER_DIM_AT_LEAST_ONE,
    SPATIAL_NAMES,
    PaddingSpec,
    check_padding,
    check_per_dim,
    expect_spatial_input,
    per_dim,
    ranked,
    resolve_padding,
)


class _SpatialConfig(BlockConfig):
    """Validators shared by the convolution configs; `rank` is the spatial rank."""

    rank: ClassVar[int] = 2

    @field_validator("kernel", "stride", "dilation", check_fields=False)
    @classmethod
    def _at_least_one(cls, value: int | list[int], info: ValidationInfo) -> int | list[int]:
        return check_per_dim(value, cls.rank, info.field_name, 1)


class ConvConfig(_SpatialConfig):
    out: int = Field(ge=1, description="Output channels; input channels are inferred.")
    kernel: int | list[int] = Field(
        description="Kernel size: one int for every spatial dim, or one per dim.",
        json_schema_extra=PER_DIM_AT_LEAST_ONE,
    )
    stride: int | list[int] = Field(
        1,
        description="Step between windows: one int, or one per dim.",
        json_schema_extra=PER_DIM_AT_LEAST_ONE,
    )
    padding: PaddingSpec = Field(
        0,
        description="An int, one per dim, [begin, end] pairs per dim, 'valid', 'same' (keeps "
        "ceil(size / stride)), or 'causal' (conv1d: pads only the start).",
    )
    dilation: int | list[int] = Field(
        1, description="Spacing between kernel taps.", json_schema_extra=PER_DIM_AT_LEAST_ONE
    )
    groups: int | Literal["depthwise"] = Field(
        1, description="Channel groups; 'depthwise' is one group per input channel."
    )
    bias: bool = Field(True, description="Add a learned per-channel bias.")
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = Field(
        "zeros", description="What the padding holds (as torch's Conv padding_mode)."
    )

    @field_validator("padding")
    @classmethod
    def _padding(cls, value: PaddingSpec) -> PaddingSpec:
        return check_padding(value, cls.rank, ("same", "valid", "causal"))

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"groups must be >= 1, got {value}")
        return value


class ConvTransposeConfig(_SpatialConfig):
    out: int = Field(ge=1, description="Output channels; input channels are inferred.")
    kernel: int | list[int] = Field(
        description="Kernel size: one int for every spatial dim, or one per dim.",
        json_schema_extra=PER_DIM_AT_LEAST_ONE,
    )
    stride: int | list[int] = Field(
        1, description="Upsampling factor: one int, or one per dim.", json_schema_extra=PER_DIM_AT_LEAST_ONE
    )
    padding: int | list[int] | list[list[int]] = Field(
        0, description="Crops the output: an int, one per dim, or [begin, end] pairs per dim."
    )
    output_padding: int | list[int] = Field(
        0, description="Extra size at the end of each dim (smaller than stride or dilation)."
    )
    dilation: int | list[int] = Field(
        1, description="Spacing between kernel taps.", json_schema_extra=PER_DIM_AT_LEAST_ONE
    )
    groups: int = Field(1, ge=1, description="Channel groups (input and output channels divisible by it).")
    bias: bool = Field(True, description="Add a learned per-channel bias.")

    @field_validator("padding")
    @classmethod
    def _padding(cls, value: int | list[int] | list[list[int]]) -> int | list[int] | list[list[int]]:
        return check_padding(value, cls.rank, ())

    @field_validator("output_padding")
    @classmethod
    def _output_padding(cls, value: int | list[int]) -> int | list[int]:
        return check_per_dim(value, cls.rank, "output_padding", 0)


def _channels(ctx: BlockContext, x: Value, rank: int) -> int:
    problem = expect_spatial_input(x.type.shape, rank)
    if problem:
        raise ctx.error(problem)
    if not is_static(x.type.shape[1]):
        raise ctx.error(f"the channel dim must be static, got {format_shape(x.type.shape)}")
    return int(x.type.shape[1])


def _conv(ctx: BlockContext, config: ConvConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    rank = config.rank
    channels = _channels(ctx, x, rank)
    groups = channels if config.groups == "depthwise" else config.groups
    shape = format_shape(x.type.shape)
    if channels % groups:
        raise ctx.error(f"the input {shape} has {channels} channels, which groups={groups} does not divide")
    if config.out % groups:
        raise ctx.error(f"out={config.out} channels are not divisible by groups={groups} (input {shape})")
    kernel = per_dim(config.kernel, rank, "kernel")
    stride = per_dim(config.stride, rank, "stride")
    dilation = per_dim(config.dilation, rank, "dilation")
    try:
        pads = resolve_padding(config.padding, kernel, stride, dilation, x.type.shape[2:])
    except ValueError as error:
        raise ctx.error(f"{error} (input {shape})") from None
    if config.padding_mode != "zeros" and any(pads):
        x = ctx.op("pad", x, pads=pads, mode=config.padding_mode)
        pads = (0,) * (2 * rank)
    fan_in = channels // groups * math.prod(kernel)
    weight = ctx.param("weight", (config.out, channels // groups, *kernel), init.fan_in_uniform(fan_in))
    params = [weight]
    if config.bias:
        params.append(ctx.param("bias", (config.out,), init.fan_in_uniform(fan_in)))
    return ctx.op("conv", x, *params, stride=stride, padding=pads, dilation=dilation, groups=groups)


def _conv_transpose(ctx: BlockContext, config: ConvTransposeConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    rank = config.rank
    channels = _channels(ctx, x, rank)
    groups = config.groups
    if channels % groups or config.out % groups:
        raise ctx.error(
            f"groups={groups} must divide the input channels ({format_shape(x.type.shape)}) "
            f"and out={config.out}"
        )
    kernel = per_dim(config.kernel, rank, "kernel")
    stride = per_dim(config.stride, rank, "stride")
    dilation = per_dim(config.dilation, rank, "dilation")
    pads = resolve_padding(config.padding, kernel, stride, dilation, x.type.shape[2:])
    fan_in = config.out // groups * math.prod(kernel)
    weight = ctx.param("weight", (channels, config.out // groups, *kernel), init.fan_in_uniform(fan_in))
    params = [weight]
    if config.bias:
        params.append(ctx.param("bias", (config.out,), init.fan_in_uniform(fan_in)))
    return ctx.op(
        "conv_transpose",
        x,
        *params,
        stride=stride,
        padding=pads,
        output_padding=per_dim(config.output_padding, rank, "output_padding"),
        dilation=dilation,
        groups=groups,
    )


def conv_projection(source: TensorType, target: TensorType) -> tuple[str, dict] | None:
    """`shortcut: auto` for [N, C, *spatial] tensors: a bias-free 1x1 conv whose stride maps
    the input's spatial size onto the body's (ResNet's projection shortcut, option B)."""
    if source.rank != target.rank or not 3 <= source.rank <= 5 or source.shape[0] != target.shape[0]:
        return None
    if not all(is_static(d) for d in (*source.shape[1:], *target.shape[1:])):
        return None
    stride = []
    for size, wanted in zip(source.shape[2:], target.shape[2:], strict=True):
        step = max(int(size) // int(wanted), 1)
        if (int(size) - 1) // step + 1 != int(wanted):
            return None
        stride.append(step)
    config = {"out": int(target.shape[1]), "kernel": 1, "stride": stride, "bias": False}
    return f"conv{source.rank - 2}d", config


def _doc(kind: str, rank: int) -> str:
    return f"{rank}-D {kind} over [N, C, {SPATIAL_NAMES[rank]}]."


BLOCKS = [
    *(BlockType(f"conv{r}d", ranked(ConvConfig, r), _conv, _doc("convolution", r)) for r in (1, 2, 3)),
    *(
        BlockType(
            f"conv_transpose{r}d",
            ranked(ConvTransposeConfig, r),
            _conv_transpose,
            _doc("transposed convolution (learned upsampling)", r),
        )
        for r in (1, 2, 3)
    ),
]
