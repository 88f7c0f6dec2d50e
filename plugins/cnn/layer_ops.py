"""Spatial ops without weights: `pad`, `resize` (upsampling), `local_response_norm` and
`channel_dropout`.

- `pad` pads the trailing ``len(pads) / 2`` dims (pads in ONNX order: all begins, then all
  ends) with a constant, by reflection, by replicating the edge, or circularly.
- `resize` scales the spatial dims of [N, C, *S] by `scale` with nearest or (bi/tri)linear
  interpolation, with torch's coordinate conventions: nearest takes ``floor(i / scale)``;
  linear uses half-pixel centres, or ``align_corners``.
- `local_response_norm` is torch's (Krizhevsky et al. 2012):
  ``y_c = x_c / (k + alpha / n * sum_{c' = c - n//2}^{c + (n-1)//2} x_c'^2) ** beta``.
- `channel_dropout` zeroes whole channels in training (nn.Dropout1d/2d/3d); the identity
  at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

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
    is_static,
    require,
)

from .geometry import split_pads, torch_pad_order

# -- pad ---------------------------------------------------------------------------------

PadMode = Literal["constant", "reflect", "replicate", "circular"]
_ONNX_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class PadAttrs(OpAttrs):
    pads: tuple[int, ...]  # the trailing len(pads) / 2 dims: all begins, then all ends
    mode: PadMode = "constant"
    value: float = 0.0


def _pad_infer(attrs: PadAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None, "pad needs an input")
    assert x is not None
    count = len(attrs.pads) // 2
    require(len(attrs.pads) % 2 == 0 and count >= 1, f"pad: pads need begin and end values, got {attrs.pads}")
    require(min(attrs.pads) >= 0, f"pad: pads must be >= 0, got {list(attrs.pads)}")
    require(count <= x.rank, f"pad: {count} padded dims for {x}")
    if attrs.mode != "constant":
        require(
            count <= 3 and x.rank == count + 2,
            f"pad: {attrs.mode} padding pads the 1 to 3 spatial dims of [N, C, ...], got {x} and pads "
            f"{list(attrs.pads)}",
        )
    begins, ends = split_pads(attrs.pads)
    shape: list[Dim] = list(x.shape)
    for index, (begin, end) in enumerate(zip(begins, ends, strict=True)):
        axis = x.rank - count + index
        size = x.shape[axis]
        if attrs.mode == "reflect" and is_static(size):
            require(
                max(begin, end) < int(size),
                f"pad: reflect padding {max(begin, end)} must be smaller than dim {axis} "
                f"of {format_shape(x.shape)}",
            )
        if attrs.mode == "circular" and is_static(size):
            require(
                max(begin, end) <= int(size),
                f"pad: circular padding {max(begin, end)} exceeds dim {axis} of {format_shape(x.shape)}",
            )
        shape[axis] = size + begin + end
    return x.with_shape(shape)


def _pad_onnx(b: OnnxBuilder, node: Node) -> None:
    x = node.inputs[0]
    attrs = node.attrs
    leading = x.type.rank - len(attrs.pads) // 2
    begins, ends = split_pads(attrs.pads)
    pads = b.int64s([*(0,) * leading, *begins, *(0,) * leading, *ends], "pads")
    inputs = [b.name(x), pads]
    if attrs.mode == "constant" and attrs.value != 0.0:
        inputs.append(b.constant(np.array(attrs.value, dtype=x.type.dtype.numpy), "value"))
    b.op("Pad", inputs, b.outputs(node), mode=_ONNX_PAD_MODES[attrs.mode])


def _pad_torch(t: TorchWriter, node: Node) -> str:
    attrs = node.attrs
    options = f', mode="{attrs.mode}"' if attrs.mode != "constant" else ""
    if attrs.mode == "constant" and attrs.value != 0.0:
        options = f", value={attrs.value!r}"
    return f"F.pad({t.var(node.inputs[0])}, {torch_pad_order(attrs.pads)}{options})"


def _pad_samples() -> list[OpSample]:
    rng = np.random.default_rng(50)
    x3 = rng.standard_normal((2, 3, 6)).astype(np.float32)
    x4 = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    x5 = rng.standard_normal((1, 2, 3, 4, 3)).astype(np.float32)
    return [
        OpSample((x4,), {"pads": (1, 0, 2, 3)}, name="zeros-2d"),
        OpSample((x3,), {"pads": (2, 1), "value": -1.5}, name="value-1d"),
        OpSample((x4,), {"pads": (1, 2, 3, 1), "mode": "reflect"}, name="reflect-2d"),
        OpSample((x3,), {"pads": (3, 0), "mode": "replicate"}, name="replicate-1d"),
        OpSample((x4,), {"pads": (2, 1, 0, 3), "mode": "circular"}, name="circular-2d"),
        OpSample((x5,), {"pads": (1, 1, 2, 0, 2, 1), "mode": "reflect"}, name="reflect-3d"),
        OpSample((x3,), {"pads": (1, 0, 2, 0)}, name="middle-axis"),
    ]


# -- resize ------------------------------------------------------------------------------


class ResizeAttrs(OpAttrs):
    scale: tuple[float, ...] = Field(description="Factor per spatial dim.")
    mode: Literal["nearest", "linear"] = "nearest"
    align_corners: bool = False


_TORCH_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _resize_infer(attrs: ResizeAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None, "resize needs an input")
    assert x is not None
    rank = len(attrs.scale)
    require(
        1 <= rank <= 3 and x.rank == rank + 2,
        f"resize by {list(attrs.scale)} needs [N, C, *{rank} dims], got {x}",
    )
    require(min(attrs.scale) > 0, f"resize: scale factors must be positive, got {list(attrs.scale)}")
    require(
        not attrs.align_corners or attrs.mode == "linear",
        "resize: align_corners applies to linear interpolation only",
    )
    shape: list[Dim] = list(x.shape[:2])
    for size, factor in zip(x.shape[2:], attrs.scale, strict=True):
        if is_static(size):
            shape.append(int(np.floor(int(size) * factor)))
        else:
            require(
                float(factor).is_integer(),
                f"resize: a symbolic dim {size} needs an integer scale, got {factor}",
            )
            shape.append(size * int(factor))
        require(
            not isinstance(shape[-1], int) or shape[-1] >= 1, f"resize: scale {factor} leaves nothing of {x}"
        )
    return x.with_shape(shape)


def _resize_onnx(b: OnnxBuilder, node: Node) -> None:
    attrs = node.attrs
    scales = b.constant(np.array([1.0, 1.0, *attrs.scale], dtype=np.float32), "scales")
    if attrs.mode == "nearest":
        options = {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        # pytorch_half_pixel differs from half_pixel only for an output of length 1, like torch.
        options = {
            "coordinate_transformation_mode": "align_corners" if attrs.align_corners else "pytorch_half_pixel"
        }
    b.op("Resize", [b.name(node.inputs[0]), "", scales], b.outputs(node), mode=attrs.mode, **options)


def _resize_torch(t: TorchWriter, node: Node) -> str:
    attrs = node.attrs
    rank = len(attrs.scale)
    factors = [float(f) for f in attrs.scale]
    scale = repr(factors[0]) if len(set(factors)) == 1 else repr(tuple(factors))
    mode = "nearest" if attrs.mode == "nearest" else _TORCH_LINEAR[rank]
    corners = f", align_corners={attrs.align_corners}" if attrs.mode == "linear" else ""
    return f'F.interpolate({t.var(node.inputs[0])}, scale_factor={scale}, mode="{mode}"{corners})'


def _resize_samples() -> list[OpSample]:
    rng = np.random.default_rng(51)
    x3 = rng.standard_normal((2, 3, 5)).astype(np.float32)
    x4 = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    x5 = rng.standard_normal((1, 2, 2, 3, 2)).astype(np.float32)
    return [
        OpSample((x4,), {"scale": (2.0, 2.0)}, name="nearest-2d"),
        OpSample((x3,), {"scale": (3.0,)}, name="nearest-1d"),
        OpSample((x4,), {"scale": (2.0, 3.0), "mode": "linear"}, name="bilinear"),
        OpSample(
            (x4,), {"scale": (2.0, 2.0), "mode": "linear", "align_corners": True}, name="bilinear-corners"
        ),
        OpSample((x4,), {"scale": (1.5, 2.5), "mode": "linear"}, name="bilinear-fractional"),
        OpSample((x3,), {"scale": (2.0,), "mode": "linear"}, name="linear-1d"),
        OpSample((x5,), {"scale": (2.0, 2.0, 2.0), "mode": "linear"}, name="trilinear"),
    ]


# -- local response norm -----------------------------------------------------------------


class LocalResponseNormAttrs(OpAttrs):
    size: int = Field(ge=1)
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


def _lrn_infer(attrs: LocalResponseNormAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(
        x is not None and x.rank >= 3, f"local_response_norm needs [N, C, ...] with spatial dims, got {x}"
    )
    assert x is not None
    require(is_static(x.shape[1]), f"local_response_norm needs a static channel dim, got {x}")
    return x


def _lrn_onnx(b: OnnxBuilder, node: Node) -> None:
    """ONNX's LRN window is centred like torch's only for odd sizes, and ONNX Runtime runs it
    on 4-D inputs only: other ranks go through a 4-D view, even sizes are spelled out."""
    attrs = node.attrs
    x = node.inputs[0]
    if attrs.size % 2 == 1:
        options = {"size": attrs.size, "alpha": attrs.alpha, "beta": attrs.beta, "bias": attrs.k}
        if x.type.rank == 4:
            b.op("LRN", b.inputs(node), b.outputs(node), **options)
            return
        view = b.op("Reshape", [b.name(x), b.int64s([0, 0, 0, -1] if x.type.rank > 4 else [0, 0, 0, 1])])[0]
        normalized = b.op("LRN", [view], **options)[0]
        b.op("Reshape", [normalized, b.op("Shape", [b.name(x)])[0]], b.outputs(node))
        return
    channels = int(x.type.shape[1])
    dtype = x.type.dtype.numpy
    squares = b.op("Mul", [b.name(x), b.name(x)])[0]
    before, after = attrs.size // 2, (attrs.size - 1) // 2
    # A window that misses every real channel adds zeros: pad at most channels - 1 on each
    # side and slice only the windows that overlap a channel, so a huge size (2^31) costs
    # at most 2 * channels - 1 slices, not `size` of them.
    pad_before, pad_after = min(before, channels - 1), min(after, channels - 1)
    shift = before - pad_before
    offsets = range(max(0, before - channels + 1) - shift, min(attrs.size, before + channels) - shift)
    rank = x.type.rank
    pads = b.int64s([0, pad_before, *(0,) * (rank - 2), 0, pad_after, *(0,) * (rank - 2)], "pads")
    padded = b.op("Pad", [squares, pads])[0]
    total = ""
    for offset in offsets:
        window = b.op(
            "Slice",
            [
                padded,
                b.int64s([offset], "starts"),
                b.int64s([offset + channels], "ends"),
                b.int64s([1], "axes"),
            ],
        )[0]
        total = window if not total else b.op("Add", [total, window])[0]
    scaled = b.op("Mul", [total, b.constant(np.array(attrs.alpha / attrs.size, dtype), "alpha")])[0]
    shifted = b.op("Add", [scaled, b.constant(np.array(attrs.k, dtype), "k")])[0]
    denominator = b.op("Pow", [shifted, b.constant(np.array(attrs.beta, dtype), "beta")])[0]
    b.op("Div", [b.name(x), denominator], b.outputs(node))


def _lrn_torch(t: TorchWriter, node: Node) -> str:
    a = node.attrs
    options = f"alpha={a.alpha!r}, beta={a.beta!r}, k={a.k!r}"
    return f"F.local_response_norm({t.var(node.inputs[0])}, {a.size}, {options})"


def _lrn_samples() -> list[OpSample]:
    rng = np.random.default_rng(52)
    x3 = rng.standard_normal((2, 7, 5)).astype(np.float32) * 3
    x4 = rng.standard_normal((2, 8, 4, 4)).astype(np.float32) * 3
    x5 = rng.standard_normal((1, 6, 2, 3, 2)).astype(np.float32) * 3
    return [
        OpSample((x4,), {"size": 5, "alpha": 1e-2, "beta": 0.75, "k": 2.0}, name="alexnet-4d"),
        OpSample((x3,), {"size": 3, "alpha": 0.1}, name="odd-3d"),
        OpSample((x5,), {"size": 5, "alpha": 0.05}, name="odd-5d"),
        OpSample((x4,), {"size": 4, "alpha": 0.1, "beta": 0.5}, name="even-4d"),
        OpSample((x3,), {"size": 2, "alpha": 0.2, "k": 1.5}, name="even-3d"),
    ]


# -- channel dropout ---------------------------------------------------------------------


class ChannelDropoutAttrs(OpAttrs):
    p: float = Field(0.5, ge=0.0, lt=1.0)


def _channel_dropout_infer(attrs: ChannelDropoutAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None and 3 <= x.rank <= 5, f"channel dropout needs [N, C, 1 to 3 spatial dims], got {x}")
    assert x is not None
    return x


def _channel_dropout_onnx(b: OnnxBuilder, node: Node) -> None:
    ratio = b.constant(np.array(node.attrs.p, dtype=np.float32), "ratio")
    b.op("Dropout", [*b.inputs(node), ratio], b.outputs(node))  # the identity when not training


def _channel_dropout_torch(t: TorchWriter, node: Node) -> str:
    rank = node.inputs[0].type.rank - 2
    module = t.module(node, f"nn.Dropout{rank}d({node.attrs.p!r})")
    x = t.var(node.inputs[0])
    return f"{module}({x})" if module else f"F.dropout{rank}d({x}, {node.attrs.p!r}, self.training)"


def _channel_dropout_samples() -> list[OpSample]:
    rng = np.random.default_rng(53)
    return [
        OpSample((rng.standard_normal((2, 3, 4, 4)).astype(np.float32),), {"p": 0.2}, name="2d"),
        OpSample((rng.standard_normal((2, 3, 5)).astype(np.float32),), {"p": 0.5}, name="1d"),
    ]


OPS = [
    OpDef(
        "pad",
        _pad_infer,
        _pad_onnx,
        _pad_torch,
        _pad_samples,
        PadAttrs,
        OpGroup.MOVEMENT,
        doc="Pad the trailing dims: constant, reflect, replicate or circular.",
    ),
    OpDef(
        "resize",
        _resize_infer,
        _resize_onnx,
        _resize_torch,
        _resize_samples,
        ResizeAttrs,
        OpGroup.MOVEMENT,
        doc="Scale the spatial dims with nearest or (bi/tri)linear interpolation (torch's conventions).",
    ),
    OpDef(
        "local_response_norm",
        _lrn_infer,
        _lrn_onnx,
        _lrn_torch,
        _lrn_samples,
        LocalResponseNormAttrs,
        OpGroup.NORMALIZATION,
        doc="x / (k + alpha / size * sum of squares over `size` neighbouring channels) ** beta",
    ),
    OpDef(
        "channel_dropout",
        _channel_dropout_infer,
        _channel_dropout_onnx,
        _channel_dropout_torch,
        _channel_dropout_samples,
        ChannelDropoutAttrs,
        OpGroup.ELEMENTWISE,
        inference_identity=True,
        doc="Zeroes whole channels with probability p in training; the identity in inference.",
    ),
]
