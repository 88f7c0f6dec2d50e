"""The `conv` and `conv_transpose` ops: 1-D, 2-D and 3-D (spatial rank = weight rank - 2).

Both are pure convolutions with explicit, canonical attributes: `stride`, `padding` in
ONNX pads order (all begins, then all ends; asymmetric allowed), `dilation`, `groups`
(and `output_padding` for the transpose). No activation, no padding modes: blocks resolve
those into other ops and explicit pads, so that passes can pattern-match plain convs.

    conv:            x [N, C_in, *S], weight [C_out, C_in / groups, *K], bias [C_out]
    conv_transpose:  x [N, C_in, *S], weight [C_in, C_out / groups, *K], bias [C_out]

MACs follow torch's FlopCounterMode: every output element of a conv costs
``C_in / groups * prod(K)``; a transposed conv scatters every input element to
``C_out / groups * prod(K)`` outputs. Bias adds are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, model_validator

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    Dim,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    format_shape,
    product,
    require,
)

from .geometry import compact, split_pads, torch_pad_order, windowed_shape


class ConvAttrs(OpAttrs):
    stride: tuple[int, ...]
    padding: tuple[int, ...]  # ONNX pads: all begins, then all ends
    dilation: tuple[int, ...]
    groups: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> ConvAttrs:
        rank = len(self.stride)
        if len(self.dilation) != rank or len(self.padding) != 2 * rank:
            raise ValueError(
                f"stride {self.stride}, dilation {self.dilation} and padding {self.padding} "
                "disagree on the number of spatial dims"
            )
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding, default=0) < 0:
            raise ValueError("stride and dilation must be >= 1 and padding >= 0")
        return self


class ConvTransposeAttrs(ConvAttrs):
    output_padding: tuple[int, ...]


def _operands(
    name: str, inputs: Sequence[TensorType | None]
) -> tuple[TensorType, TensorType, TensorType | None]:
    x, weight = inputs[0], inputs[1]
    require(x is not None and weight is not None, f"{name} needs an input and a weight")
    assert x is not None and weight is not None
    bias = inputs[2] if len(inputs) > 2 else None
    rank = weight.rank - 2
    require(1 <= rank <= 3, f"{name}: the weight must be 3-D to 5-D (1 to 3 spatial dims), got {weight}")
    require(x.dtype.is_float, f"{name} expects a floating-point input, got {x}")
    require(
        x.rank == weight.rank,
        f"{name}: a weight {format_shape(weight.shape)} needs an input [N, C, *{rank} spatial dims], got {x}",
    )
    return x, weight, bias


def _check_attrs_rank(name: str, attrs: ConvAttrs, rank: int) -> None:
    require(
        len(attrs.stride) == rank,
        f"{name}: {len(attrs.stride)} stride values for {rank} spatial dim(s)",
    )


def _conv_infer(attrs: ConvAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x, weight, bias = _operands("conv", inputs)
    rank = weight.rank - 2
    _check_attrs_rank("conv", attrs, rank)
    out_channels, group_channels = weight.shape[0], weight.shape[1]
    require(
        x.shape[1] == group_channels * attrs.groups,
        f"conv: the input {format_shape(x.shape)} has {x.shape[1]} channels, but the weight "
        f"{format_shape(weight.shape)} with groups={attrs.groups} expects {group_channels * attrs.groups}",
    )
    require(
        isinstance(out_channels, int) and out_channels % attrs.groups == 0,
        f"conv: {out_channels} output channels are not divisible by groups={attrs.groups}",
    )
    if bias is not None:
        require(bias.shape == (out_channels,), f"conv: bias must be [{out_channels}], got {bias}")
    kernel = [int(k) for k in weight.shape[2:]]
    spatial = windowed_shape("conv", x.shape, kernel, attrs.stride, attrs.padding, attrs.dilation)
    return TensorType(x.dtype, (x.shape[0], out_channels, *spatial))


def _conv_transpose_infer(attrs: ConvTransposeAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x, weight, bias = _operands("conv_transpose", inputs)
    rank = weight.rank - 2
    _check_attrs_rank("conv_transpose", attrs, rank)
    require(len(attrs.output_padding) == rank, f"conv_transpose: output_padding needs {rank} value(s)")
    in_channels, group_out = weight.shape[0], weight.shape[1]
    require(
        x.shape[1] == in_channels,
        f"conv_transpose: the input {format_shape(x.shape)} has {x.shape[1]} channels, but the weight "
        f"{format_shape(weight.shape)} expects {in_channels}",
    )
    require(
        isinstance(in_channels, int) and in_channels % attrs.groups == 0,
        f"conv_transpose: {in_channels} input channels are not divisible by groups={attrs.groups}",
    )
    out_channels = group_out * attrs.groups
    if bias is not None:
        require(bias.shape == (out_channels,), f"conv_transpose: bias must be [{out_channels}], got {bias}")
    spatial: list[Dim] = []
    for axis, size in enumerate(x.shape[2:]):
        k, s, d = int(weight.shape[2 + axis]), attrs.stride[axis], attrs.dilation[axis]
        extra = attrs.output_padding[axis]
        require(
            extra < max(s, d),
            f"conv_transpose: output_padding {extra} must be smaller than the stride {s} or the dilation {d}",
        )
        length = (size - 1) * s - attrs.padding[axis] - attrs.padding[axis + rank] + d * (k - 1) + extra + 1
        require(
            not isinstance(length, int) or length > 0,
            f"conv_transpose: padding {list(attrs.padding)} crops the output of {format_shape(x.shape)} "
            f"to nothing in spatial dim {axis}",
        )
        spatial.append(length)
    return TensorType(x.dtype, (x.shape[0], out_channels, *spatial))


def _conv_macs(node: Node) -> Dim:
    return product(node.outputs[0].type.shape) * product(node.inputs[1].type.shape[1:])


def _conv_transpose_macs(node: Node) -> Dim:
    return product(node.inputs[0].type.shape) * product(node.inputs[1].type.shape[1:])


# -- ONNX --------------------------------------------------------------------------------


def onnx_conv_attributes(node: Node) -> dict:
    """The ONNX attributes of a conv node: Conv's, which ConvTranspose and ONNX Runtime's
    FusedConv share."""
    a = node.attrs
    return {
        "kernel_shape": [int(k) for k in node.inputs[1].type.shape[2:]],
        "strides": list(a.stride),
        "pads": list(a.padding),
        "dilations": list(a.dilation),
        "group": a.groups,
    }


def _conv_onnx(b: OnnxBuilder, node: Node) -> None:
    """Conv and ConvTranspose take the same attributes, plus output_padding for the latter."""
    a = node.attrs
    options = onnx_conv_attributes(node)
    if isinstance(a, ConvTransposeAttrs):
        options["output_padding"] = list(a.output_padding)
    b.op(
        "ConvTranspose" if isinstance(a, ConvTransposeAttrs) else "Conv",
        b.inputs(node),
        b.outputs(node),
        **options,
    )


# -- torch -------------------------------------------------------------------------------


def _options(node: Node, padding: Sequence[int]) -> list[str]:
    """Keyword arguments that differ from torch's defaults, in torch's signature order."""
    a = node.attrs
    options = []
    if set(a.stride) != {1}:
        options.append(f"stride={compact(a.stride)}")
    if any(padding):
        options.append(f"padding={compact(padding)}")
    if getattr(a, "output_padding", None) and any(a.output_padding):
        options.append(f"output_padding={compact(a.output_padding)}")
    if a.groups != 1:
        options.append(f"groups={a.groups}")
    if set(a.dilation) != {1}:
        options.append(f"dilation={compact(a.dilation)}")
    return options


def _torch_call(t: TorchWriter, node: Node, kind: str, channels: tuple[int, int], source: str) -> str:
    """``self.conv(source)`` with a real nn.Conv*/ConvTranspose* module where the op may own
    its weights, else the functional form; symmetric pads are the module's `padding`."""
    weight = node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    rank = weight.type.rank - 2
    begins, ends = split_pads(node.attrs.padding)
    options = _options(node, begins if begins == ends else (0,) * rank)
    kernel = [int(d) for d in weight.type.shape[2:]]
    arguments = [str(channels[0]), str(channels[1]), compact(kernel), *options]
    if bias is None:
        arguments.append("bias=False")
    module_class = "ConvTranspose" if kind == "conv_transpose" else "Conv"
    module = t.module(
        node, f"nn.{module_class}{rank}d({', '.join(arguments)})", {"weight": weight, "bias": bias}
    )
    if module:
        return f"{module}({source})"
    return f"F.{kind}{rank}d({', '.join([source, t.var(weight), t.var(bias), *options])})"


def _conv_torch(t: TorchWriter, node: Node) -> str:
    """Asymmetric padding is an explicit F.pad in front of an unpadded conv."""
    x, weight = node.inputs[0], node.inputs[1]
    begins, ends = split_pads(node.attrs.padding)
    source = t.var(x) if begins == ends else f"F.pad({t.var(x)}, {torch_pad_order(node.attrs.padding)})"
    out_channels, group_channels = (int(d) for d in weight.type.shape[:2])
    return _torch_call(t, node, "conv", (group_channels * node.attrs.groups, out_channels), source)


def _conv_transpose_torch(t: TorchWriter, node: Node) -> str:
    """Asymmetric padding crops the output of an unpadded transposed conv."""
    x, weight = node.inputs[0], node.inputs[1]
    in_channels, group_out = (int(d) for d in weight.type.shape[:2])
    call = _torch_call(t, node, "conv_transpose", (in_channels, group_out * node.attrs.groups), t.var(x))
    begins, ends = split_pads(node.attrs.padding)
    if begins == ends:
        return call
    crops = ", ".join(f"{b}:{-e if e else ''}" for b, e in zip(begins, ends, strict=True))
    return f"{call}[:, :, {crops}]"


# -- samples -----------------------------------------------------------------------------


def _conv_samples() -> list[OpSample]:
    rng = np.random.default_rng(30)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def attrs(rank: int, stride=1, padding=0, dilation=1, groups=1) -> dict:
        pads = tuple(padding) if isinstance(padding, tuple) else (padding,) * (2 * rank)
        return {
            "stride": (stride,) * rank if isinstance(stride, int) else stride,
            "padding": pads,
            "dilation": (dilation,) * rank if isinstance(dilation, int) else dilation,
            "groups": groups,
        }

    return [
        OpSample((arr(2, 3, 9), arr(4, 3, 3), arr(4)), attrs(1), {1: "weight", 2: "bias"}, name="1d-module"),
        OpSample(
            (arr(2, 4, 16), arr(4, 4, 2), arr(4)),
            attrs(1, padding=(2, 0), dilation=2),
            {1: "weight", 2: "bias"},
            name="1d-causal-dilated",
        ),
        OpSample(
            (arr(2, 3, 8, 8), arr(6, 3, 3, 3), arr(6)),
            attrs(2, stride=2, padding=1),
            {1: "weight", 2: "bias"},
            name="2d-stride-padding-module",
        ),
        OpSample(
            (arr(2, 4, 7, 6), arr(8, 2, 3, 1)),
            attrs(2, stride=(1, 2), padding=(1, 0, 1, 0), groups=2),
            {1: "weight"},
            name="2d-grouped-no-bias",
        ),
        OpSample(
            (arr(2, 4, 6, 6), arr(4, 1, 3, 3), arr(4)),
            attrs(2, padding=(0, 1, 2, 1), groups=4),
            {1: "weight", 2: "bias"},
            name="2d-depthwise-asymmetric",
        ),
        OpSample(
            (arr(2, 3, 7, 7), arr(5, 3, 3, 3), arr(5)),
            attrs(2, padding=2, dilation=2),
            name="2d-functional-dilated",
        ),
        OpSample(
            (arr(2, 3, 5, 6, 4), arr(4, 3, 3, 3, 2), arr(4)),
            attrs(3, stride=(1, 2, 1), padding=(1, 1, 0, 1, 1, 1)),
            {1: "weight", 2: "bias"},
            name="3d-asymmetric",
        ),
        OpSample((arr(1, 2, 4, 4, 4), arr(2, 2, 1, 1, 1)), attrs(3), {1: "weight"}, name="3d-pointwise"),
    ]


def _conv_transpose_samples() -> list[OpSample]:
    rng = np.random.default_rng(31)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def attrs(rank: int, stride=1, padding=0, output_padding=0, dilation=1, groups=1) -> dict:
        return {
            "stride": (stride,) * rank,
            "padding": tuple(padding) if isinstance(padding, tuple) else (padding,) * (2 * rank),
            "output_padding": (output_padding,) * rank,
            "dilation": (dilation,) * rank,
            "groups": groups,
        }

    return [
        OpSample(
            (arr(2, 4, 5), arr(4, 3, 4), arr(3)),
            attrs(1, stride=2, padding=1),
            {1: "weight", 2: "bias"},
            name="1d",
        ),
        OpSample(
            (arr(2, 8, 4, 4), arr(8, 4, 2, 2), arr(4)),
            attrs(2, stride=2),
            {1: "weight", 2: "bias"},
            name="2d-unet-upconv",
        ),
        OpSample(
            (arr(2, 4, 3, 3), arr(4, 3, 3, 3)),
            attrs(2, stride=2, padding=1, output_padding=1, groups=2),
            {1: "weight"},
            name="2d-output-padding-grouped",
        ),
        OpSample(
            (arr(2, 4, 3, 5), arr(4, 2, 3, 3), arr(2)),
            attrs(2, stride=2, padding=(0, 1, 1, 2), dilation=2),
            {1: "weight", 2: "bias"},
            name="2d-asymmetric-dilated",
        ),
        OpSample(
            (arr(2, 4, 3, 3), arr(4, 2, 4, 4), arr(2)), attrs(2, stride=2, padding=1), name="2d-functional"
        ),
        OpSample(
            (arr(1, 2, 2, 3, 2), arr(2, 2, 2, 2, 2), arr(2)),
            attrs(3, stride=2),
            {1: "weight", 2: "bias"},
            name="3d",
        ),
    ]


OPS = [
    OpDef(
        "conv",
        _conv_infer,
        _conv_onnx,
        _conv_torch,
        _conv_samples,
        ConvAttrs,
        OpGroup.CONTRACTION,
        macs=_conv_macs,
        doc="1-D/2-D/3-D convolution (cross-correlation) with explicit pads, stride, dilation, groups.",
    ),
    OpDef(
        "conv_transpose",
        _conv_transpose_infer,
        _conv_onnx,
        _conv_transpose_torch,
        _conv_transpose_samples,
        ConvTransposeAttrs,
        OpGroup.CONTRACTION,
        macs=_conv_transpose_macs,
        doc="Transposed convolution (the gradient of conv with respect to its input).",
    ),
]
