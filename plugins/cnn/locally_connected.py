"""`locally_connected2d`: a convolution whose kernel differs at every output position.

Same connectivity as a conv, no weight sharing: for an m x n x c input, K kernels of
p x q, stride 1 and no padding, the parameter counts are

    conv                 K (p q c + 1)
    locally connected    (m - p + 1)(n - q + 1) K (p q c + 1)      (a bias per output unit)
    fully connected      (m - p + 1)(n - q + 1) K (m n c + 1)      (same outputs, every input)

    x [N, C, H, W], weight [H', W', K, C, p, q], bias [K, H', W']  ->  [N, K, H', W']

ONNX: patches from a grouped conv with one-hot kernels (exact: it only copies values),
then one batched MatMul over the H' W' positions. Torch: ``F.unfold`` and an einsum.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, field_validator

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    Dim,
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
    is_static,
    product,
    require,
)

from .geometry import (
    PER_DIM_AT_LEAST_ONE,
    PaddingSpec,
    check_padding,
    check_per_dim,
    per_dim,
    resolve_padding,
    windowed_shape,
)


class LocallyConnectedAttrs(OpAttrs):
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right (ONNX pads order)


def _infer(attrs: LocallyConnectedAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x, weight = inputs[0], inputs[1]
    require(x is not None and weight is not None, "locally_connected2d needs an input and a weight")
    assert x is not None and weight is not None
    require(
        x.rank == 4 and x.dtype.is_float, f"locally_connected2d expects a float input [N, C, H, W], got {x}"
    )
    require(weight.rank == 6, f"locally_connected2d: the weight must be [H', W', K, C, p, q], got {weight}")
    require(all(is_static(d) for d in x.shape[1:]), f"locally_connected2d needs static C, H, W, got {x}")
    out_h, out_w, out_channels, in_channels, *kernel = weight.shape
    require(
        x.shape[1] == in_channels,
        f"locally_connected2d: the input {format_shape(x.shape)} has {x.shape[1]} channels, the weight "
        f"{format_shape(weight.shape)} expects {in_channels}",
    )
    spatial = windowed_shape("locally_connected2d", x.shape, kernel, attrs.stride, attrs.padding, (1, 1))
    require(
        spatial == [out_h, out_w],
        f"locally_connected2d: the weight {format_shape(weight.shape)} has kernels for {out_h}x{out_w} "
        f"positions, but the input {format_shape(x.shape)} gives {spatial[0]}x{spatial[1]}",
    )
    if len(inputs) > 2 and inputs[2] is not None:
        require(
            inputs[2].shape == (out_channels, out_h, out_w),
            f"locally_connected2d: bias must be [{out_channels}, {out_h}, {out_w}], got {inputs[2]}",
        )
    return TensorType(x.dtype, (x.shape[0], out_channels, out_h, out_w))


def _macs(node: Node) -> Dim:
    return product(node.outputs[0].type.shape) * product(node.inputs[1].type.shape[3:])


def _to_onnx(b: OnnxBuilder, node: Node) -> None:
    x, weight = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    out_h, out_w, out_channels, channels, kh, kw = (int(d) for d in weight.type.shape)
    positions, taps = out_h * out_w, channels * kh * kw
    one_hot = np.zeros((taps, 1, kh, kw), dtype=x.type.dtype.numpy)
    for channel in range(channels):
        for tap in range(kh * kw):
            one_hot[channel * kh * kw + tap, 0, tap // kw, tap % kw] = 1.0  # F.unfold's (c, i, j) order
    patches = b.op(
        "Conv",
        [b.name(x), b.constant(one_hot, "one_hot")],
        kernel_shape=[kh, kw],
        strides=list(node.attrs.stride),
        pads=list(node.attrs.padding),
        group=channels,
    )[0]  # [N, C p q, H', W']
    columns = b.op("Reshape", [patches, b.int64s([0, taps, positions])])[0]
    columns = b.op("Transpose", [columns], perm=[2, 0, 1])[0]  # [H' W', N, C p q]
    kernels = b.op("Reshape", [b.name(weight), b.int64s([positions, out_channels, taps])])[0]
    kernels = b.op("Transpose", [kernels], perm=[0, 2, 1])[0]  # [H' W', C p q, K]
    product_ = b.op("MatMul", [columns, kernels])[0]  # [H' W', N, K]
    product_ = b.op("Transpose", [product_], perm=[1, 2, 0])[0]  # [N, K, H' W']
    outputs = None if bias is not None else b.outputs(node)
    result = b.op("Reshape", [product_, b.int64s([0, out_channels, out_h, out_w])], outputs)[0]
    if bias is not None:
        b.op("Add", [result, b.name(bias)], b.outputs(node))


_HELPER = '''
def locally_connected2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> torch.Tensor:
    """A conv with a separate kernel per output position: weight [H', W', K, C, p, q],
    bias [K, H', W']; padding is (top, left, bottom, right)."""
    out_h, out_w, out_channels, _, kh, kw = weight.shape
    top, left, bottom, right = padding
    patches = F.unfold(F.pad(x, (left, right, top, bottom)), (kh, kw), stride=stride)  # [N, C*p*q, H'*W']
    kernels = weight.reshape(out_h * out_w, out_channels, -1)  # [H'*W', K, C*p*q]
    y = torch.einsum("nkl,lok->nol", patches, kernels).reshape(x.size(0), out_channels, out_h, out_w)
    return y if bias is None else y + bias
'''


def _to_torch(t: TorchWriter, node: Node) -> str:
    x, weight = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    helper = t.helper("locally_connected2d", _HELPER)
    stride, padding = tuple(node.attrs.stride), tuple(node.attrs.padding)
    return f"{helper}({t.var(x)}, {t.var(weight)}, {t.var(bias)}, {stride}, {padding})"


def _samples() -> list[OpSample]:
    rng = np.random.default_rng(60)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    return [
        OpSample(
            (arr(2, 3, 6, 5), arr(4, 3, 2, 3, 3, 3), arr(2, 4, 3)),
            {"stride": (1, 1), "padding": (0, 0, 0, 0)},
            frozenset({1, 2}),
            name="valid",
        ),
        OpSample(
            (arr(2, 2, 5, 5), arr(2, 2, 3, 2, 3, 2)),
            {"stride": (2, 3), "padding": (1, 0, 0, 1)},
            frozenset({1}),
            name="strided-padded-no-bias",
        ),
    ]


OPS = [
    OpDef(
        "locally_connected2d",
        _infer,
        _to_onnx,
        _to_torch,
        _samples,
        LocallyConnectedAttrs,
        OpGroup.CONTRACTION,
        macs=_macs,
        doc="2-D convolution without weight sharing (a kernel per output position).",
    )
]


class LocallyConnectedConfig(BlockConfig):
    out: int = Field(ge=1, description="Output channels (kernels per position).")
    kernel: int | list[int] = Field(
        description="Kernel size: one int, or [height, width].", json_schema_extra=PER_DIM_AT_LEAST_ONE
    )
    stride: int | list[int] = Field(
        1,
        description="Step between windows: one int, or [height, width].",
        json_schema_extra=PER_DIM_AT_LEAST_ONE,
    )
    padding: PaddingSpec = Field(
        0, description="An int, [h, w], [[top, bottom], [left, right]], 'valid' or 'same'."
    )
    bias: bool = Field(True, description="A bias per output unit (channel and position).")

    @field_validator("kernel", "stride")
    @classmethod
    def _positive(cls, value: int | list[int]) -> int | list[int]:
        return check_per_dim(value, 2, "kernel and stride", 1)

    @field_validator("padding")
    @classmethod
    def _padding(cls, value: PaddingSpec) -> PaddingSpec:
        return check_padding(value, 2, ("same", "valid"))


def _block(ctx: BlockContext, config: LocallyConnectedConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if x.type.rank != 4 or not all(is_static(d) for d in x.type.shape[1:]):
        raise ctx.error(
            f"expects an input [N, C, H, W] with static C, H, W, got {format_shape(x.type.shape)}"
        )
    channels = int(x.type.shape[1])
    kernel, stride = per_dim(config.kernel, 2, "kernel"), per_dim(config.stride, 2, "stride")
    try:
        pads = resolve_padding(config.padding, kernel, stride, (1, 1), x.type.shape[2:])
        out_h, out_w = windowed_shape("locally_connected2d", x.type.shape, kernel, stride, pads, (1, 1))
    except ValueError as error:
        raise ctx.error(str(error)) from None
    fan_in = channels * kernel[0] * kernel[1]
    weight = ctx.param("weight", (out_h, out_w, config.out, channels, *kernel), init.fan_in_uniform(fan_in))
    params = [weight]
    if config.bias:
        params.append(ctx.param("bias", (config.out, out_h, out_w), init.fan_in_uniform(fan_in)))
    return ctx.op("locally_connected2d", x, *params, stride=stride, padding=pads)


BLOCKS = [
    BlockType(
        "locally_connected2d",
        LocallyConnectedConfig,
        _block,
        "Like conv2d, but with a separate kernel at every output position (no weight sharing).",
    )
]
