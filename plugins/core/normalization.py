"""Normalizations beyond layer and batch norm: `rms_norm` (LLaMA, T5), `group_norm` and
`instance_norm` (diffusion U-Nets, style transfer), as ops and blocks with torch's
parameter names (``weight``, ``bias``), so torch and HF checkpoints load as they are.

- ``rms_norm(x) = x / sqrt(mean(x^2 over the last dim) + eps) * weight`` (HF's LlamaRMSNorm,
  torch's nn.RMSNorm);
- ``group_norm``: the C channels of [N, C, *] split into G groups; each group of each sample
  is normalized over its channels and positions, then ``* weight[c] + bias[c]``;
- ``instance_norm``: group norm with one group per channel (torch's default: no affine
  parameters, no running statistics).

ONNX: rms_norm and group_norm are written with ReduceMean (ONNX's RMSNormalization needs
opset 23 and GroupNormalization changed meaning at opset 21); instance norm is ONNX's
`InstanceNormalization`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
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
    init,
    require,
)

from .common import sample_array, sample_rng


class RmsNormAttrs(OpAttrs):
    eps: float = 1e-6


class GroupNormAttrs(OpAttrs):
    groups: int = Field(ge=1)
    eps: float = 1e-5


class InstanceNormAttrs(OpAttrs):
    eps: float = 1e-5


def _check_params(name: str, x: TensorType, params: Sequence[TensorType | None], size: object) -> None:
    for param in params:
        if param is not None:
            require(
                param.shape == (size,), f"{name}: weight/bias must be [{size}], got {param} for input {x}"
            )


def _rms_norm_infer(attrs: RmsNormAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None and x.dtype.is_float and x.rank >= 1, f"rms_norm expects a float tensor, got {x}")
    assert x is not None
    _check_params("rms_norm", x, inputs[1:], x.shape[-1])
    return x


def _channels_infer(name: str):
    def infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
        x = inputs[0]
        require(
            x is not None and x.dtype.is_float and x.rank >= 3,
            f"{name} expects a float tensor [N, C, *] with at least one position dim, got {x}",
        )
        assert x is not None
        channels = x.shape[1]
        groups = getattr(attrs, "groups", None)
        if groups is not None and isinstance(channels, int):
            require(channels % groups == 0, f"{name}: {channels} channels do not split into {groups} groups")
        _check_params(name, x, inputs[1:], channels)
        return x

    return infer


def _rms_norm_onnx(b: OnnxBuilder, node: Node) -> None:
    x, *params = b.inputs(node)
    dtype = node.inputs[0].type.dtype.numpy
    squares = b.op("Mul", [x, x])[0]
    mean = b.op("ReduceMean", [squares, b.int64s([-1], "axes")], keepdims=1)[0]
    shifted = b.op("Add", [mean, b.constant(np.array(node.attrs.eps, dtype=dtype), "eps")])[0]
    root = b.op("Sqrt", [shifted])[0]
    if not params:
        b.op("Div", [x, root], b.outputs(node))
        return
    normalized = b.op("Div", [x, root])[0]
    b.op("Mul", [normalized, params[0]], b.outputs(node))


def _rms_norm_torch(t: TorchWriter, node: Node) -> str:
    x = node.inputs[0]
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    size = int(x.type.shape[-1])
    affine = "" if weight is not None else ", elementwise_affine=False"
    module = t.module(node, f"nn.RMSNorm({size}, eps={node.attrs.eps!r}{affine})", {"weight": weight})
    if module:
        return f"{module}({t.var(x)})"
    return f"F.rms_norm({t.var(x)}, ({size},), {t.var(weight)}, {node.attrs.eps!r})"


def _group_norm_onnx(b: OnnxBuilder, node: Node) -> None:
    """Reshape to [N, G, -1], normalize each row (biased variance), reshape back, then the
    per-channel affine map broadcast over the positions."""
    x_value = node.inputs[0]
    x, *params = b.inputs(node)
    dtype = x_value.type.dtype.numpy
    grouped = b.op("Reshape", [x, b.int64s([0, node.attrs.groups, -1])])[0]
    axes = b.int64s([2], "axes")
    mean = b.op("ReduceMean", [grouped, axes], keepdims=1)[0]
    centred = b.op("Sub", [grouped, mean])[0]
    variance = b.op("ReduceMean", [b.op("Mul", [centred, centred])[0], axes], keepdims=1)[0]
    shifted = b.op("Add", [variance, b.constant(np.array(node.attrs.eps, dtype=dtype), "eps")])[0]
    normalized = b.op("Div", [centred, b.op("Sqrt", [shifted])[0]])[0]
    shape = b.op("Shape", [x])[0]
    if not params:
        b.op("Reshape", [normalized, shape], b.outputs(node))
        return
    restored = b.op("Reshape", [normalized, shape])[0]
    per_channel = [1] * (x_value.type.rank - 2)
    weight = b.op("Reshape", [params[0], b.int64s([-1, *per_channel])])[0]
    if len(params) < 2:
        b.op("Mul", [restored, weight], b.outputs(node))
        return
    bias = b.op("Reshape", [params[1], b.int64s([-1, *per_channel])])[0]
    b.op("Add", [b.op("Mul", [restored, weight])[0], bias], b.outputs(node))


def _group_norm_torch(t: TorchWriter, node: Node) -> str:
    x = node.inputs[0]
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    channels, groups, eps = int(x.type.shape[1]), node.attrs.groups, node.attrs.eps
    if weight is not None and bias is not None:
        module = t.module(
            node, f"nn.GroupNorm({groups}, {channels}, eps={eps!r})", {"weight": weight, "bias": bias}
        )
        if module:
            return f"{module}({t.var(x)})"
    elif weight is None:
        module = t.module(node, f"nn.GroupNorm({groups}, {channels}, eps={eps!r}, affine=False)")
        if module:
            return f"{module}({t.var(x)})"
    return f"F.group_norm({t.var(x)}, {groups}, {t.var(weight)}, {t.var(bias)}, {eps!r})"


def _instance_norm_onnx(b: OnnxBuilder, node: Node) -> None:
    x, *params = b.inputs(node)
    x_value = node.inputs[0]
    channels = int(x_value.type.shape[1])
    dtype = x_value.type.dtype.numpy
    scale = params[0] if params else b.constant(np.ones(channels, dtype=dtype), "ones")
    bias = params[1] if len(params) > 1 else b.constant(np.zeros(channels, dtype=dtype), "zeros")
    b.op("InstanceNormalization", [x, scale, bias], b.outputs(node), epsilon=node.attrs.eps)


_INSTANCE_NORM_CLASSES = {3: "nn.InstanceNorm1d", 4: "nn.InstanceNorm2d", 5: "nn.InstanceNorm3d"}


def _instance_norm_torch(t: TorchWriter, node: Node) -> str:
    x = node.inputs[0]
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    channels, eps = int(x.type.shape[1]), node.attrs.eps
    torch_class = _INSTANCE_NORM_CLASSES.get(x.type.rank)
    if torch_class is not None and (weight is None) == (bias is None):
        affine = ", affine=True" if weight is not None else ""
        module = t.module(
            node, f"{torch_class}({channels}, eps={eps!r}{affine})", {"weight": weight, "bias": bias}
        )
        if module:
            return f"{module}({t.var(x)})"
    return f"F.instance_norm({t.var(x)}, weight={t.var(weight)}, bias={t.var(bias)}, eps={eps!r})"


def _rms_norm_samples() -> list[OpSample]:
    rng = sample_rng(40)
    x = sample_array(rng, 2, 5, 8) * 3
    w = sample_array(rng, 8)
    return [
        OpSample((x, w), params={1: "weight"}, name="module"),
        OpSample((x, w), {"eps": 1e-5}, name="functional"),
        OpSample((x,), name="no-weight"),
    ]


def _group_norm_samples() -> list[OpSample]:
    rng = sample_rng(41)
    x4 = sample_array(rng, 2, 6, 3, 4) * 2 + 1
    x3 = sample_array(rng, 2, 4, 5)
    w, b = sample_array(rng, 6), sample_array(rng, 6)
    return [
        OpSample((x4, w, b), {"groups": 3}, params={1: "weight", 2: "bias"}, name="module"),
        OpSample((x4, w, b), {"groups": 2, "eps": 1e-3}, name="functional"),
        OpSample((x3,), {"groups": 2}, name="no-affine-1d"),
    ]


def _instance_norm_samples() -> list[OpSample]:
    rng = sample_rng(42)
    x4 = sample_array(rng, 2, 3, 4, 5) * 2 + 1
    x3 = sample_array(rng, 2, 3, 6)
    w, b = sample_array(rng, 3), sample_array(rng, 3)
    return [
        OpSample((x4,), name="plain-2d"),
        OpSample((x4, w, b), params={1: "weight", 2: "bias"}, name="affine-module"),
        OpSample((x3, w, b), {"eps": 1e-3}, name="affine-functional-1d"),
    ]


OPS = [
    OpDef(
        "rms_norm",
        _rms_norm_infer,
        _rms_norm_onnx,
        _rms_norm_torch,
        _rms_norm_samples,
        RmsNormAttrs,
        OpGroup.NORMALIZATION,
        doc="x / sqrt(mean(x^2, last dim) + eps) * weight",
    ),
    OpDef(
        "group_norm",
        _channels_infer("group_norm"),
        _group_norm_onnx,
        _group_norm_torch,
        _group_norm_samples,
        GroupNormAttrs,
        OpGroup.NORMALIZATION,
        doc="Normalize groups of channels of [N, C, *] per sample, then a per-channel affine map.",
    ),
    OpDef(
        "instance_norm",
        _channels_infer("instance_norm"),
        _instance_norm_onnx,
        _instance_norm_torch,
        _instance_norm_samples,
        InstanceNormAttrs,
        OpGroup.NORMALIZATION,
        doc="Normalize each channel of each sample of [N, C, *] over its positions.",
    ),
]


# -- blocks ------------------------------------------------------------------------------


class RmsNormConfig(BlockConfig):
    eps: float = Field(1e-6, gt=0, description="Added to the mean square (LLaMA: 1e-6; T5: 1e-6).")
    affine: bool = Field(True, description="Learn a per-feature `weight` (initialized to ones).")


class GroupNormConfig(BlockConfig):
    groups: int = Field(ge=1, description="Number of channel groups; must divide the channels.")
    eps: float = Field(1e-5, gt=0, description="Added to the variance.")
    affine: bool = Field(True, description="Learn per-channel `weight` and `bias` (torch's default).")


class InstanceNormConfig(BlockConfig):
    eps: float = Field(1e-5, gt=0, description="Added to the variance.")
    affine: bool = Field(False, description="Learn per-channel `weight` and `bias` (torch's default: no).")


def _static_dim(ctx: BlockContext, x: Value, axis: int, what: str) -> int:
    size = x.type.shape[axis]
    if not isinstance(size, int):
        raise ctx.error(f"the {what} (dim {axis}) must be static, got {format_shape(x.type.shape)}")
    return size


def _rms_norm_block(ctx: BlockContext, config: RmsNormConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if x.type.rank < 1:
        raise ctx.error("normalizes over the last dim and needs a tensor of rank >= 1")
    size = _static_dim(ctx, x, x.type.rank - 1, "last dim")
    weight = [ctx.param("weight", (size,), init.ones())] if config.affine else []
    return ctx.op("rms_norm", x, *weight, eps=config.eps)


def _channel_params(ctx: BlockContext, x: Value, affine: bool) -> list[Value]:
    if x.type.rank < 3:
        raise ctx.error(
            f"normalizes the channels of [N, C, *] and needs rank >= 3, got {format_shape(x.type.shape)}"
        )
    channels = _static_dim(ctx, x, 1, "channels")
    if not affine:
        return []
    return [ctx.param("weight", (channels,), init.ones()), ctx.param("bias", (channels,), init.zeros())]


def _group_norm_block(ctx: BlockContext, config: GroupNormConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    params = _channel_params(ctx, x, config.affine)
    channels = int(x.type.shape[1])
    if channels % config.groups:
        raise ctx.error(f"{channels} channels do not split into {config.groups} groups")
    return ctx.op("group_norm", x, *params, groups=config.groups, eps=config.eps)


def _instance_norm_block(ctx: BlockContext, config: InstanceNormConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    params = _channel_params(ctx, x, config.affine)
    return ctx.op("instance_norm", x, *params, eps=config.eps)


BLOCKS = [
    BlockType("rms_norm", RmsNormConfig, _rms_norm_block, "RMS normalization over the last dim (LLaMA, T5)."),
    BlockType(
        "group_norm",
        GroupNormConfig,
        _group_norm_block,
        "Group normalization over the channels of [N, C, *] (nn.GroupNorm).",
        shorthand="groups",
    ),
    BlockType(
        "instance_norm",
        InstanceNormConfig,
        _instance_norm_block,
        "Instance normalization of each channel of [N, C, *] (nn.InstanceNorm1d/2d/3d).",
    ),
]
