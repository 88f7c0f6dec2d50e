"""The `fft_conv` op: a `conv` computed with discrete Fourier transforms.

Same inputs, attributes and result as `conv` (1-D and 2-D), plus the transform plan the
algorithm selection chose: `transform` is (M1, M2) for 1-D (overlap-save frames of M1 * M2
samples, `block` = M1 * M2 - K' + 1 valid outputs per frame, K' the dilated kernel length)
or the (H, W) transform size for 2-D. `predicted_us` records the cost model's estimates
(direct, FFT) for `--print-ir`. ONNX: matrix-product DFTs (fft_onnx.py); torch: torch.fft.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import model_validator

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    InferenceError,
    Node,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    is_static,
    require,
)

from .conv_ops import ConvAttrs, _conv_infer, _conv_macs
from .fft_onnx import emit_fft_conv


class FFTConvAttrs(ConvAttrs):
    transform: tuple[int, ...]
    block: int = 0
    predicted_us: tuple[float, float] = (0.0, 0.0)

    @model_validator(mode="after")
    def _plan_shape(self) -> FFTConvAttrs:
        if len(self.transform) != 2 or min(self.transform) < 1:
            raise ValueError(f"transform takes two positive sizes, got {self.transform}")
        return self


def _infer(attrs: FFTConvAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    result = _conv_infer(attrs, inputs)
    x, weight = inputs[0], inputs[1]
    assert x is not None and weight is not None
    rank = weight.rank - 2
    require(rank in (1, 2), f"fft_conv covers 1-D and 2-D convolutions, got {rank}-D")
    spatial = x.shape[2:]
    require(all(is_static(d) for d in spatial), f"fft_conv needs static spatial dims, got {x}")
    reach = [d * (int(k) - 1) + 1 for k, d in zip(weight.shape[2:], attrs.dilation, strict=True)]
    padded = [int(s) + attrs.padding[i] + attrs.padding[i + rank] for i, s in enumerate(spatial)]
    if rank == 1:
        size = attrs.transform[0] * attrs.transform[1]
        if attrs.block != size - reach[0] + 1 or attrs.block < 1:
            raise InferenceError(
                f"fft_conv: frames of {size} samples and a kernel reaching {reach[0]} give blocks of "
                f"{size - reach[0] + 1}, not {attrs.block}"
            )
    else:
        require(
            all(p >= n for p, n in zip(attrs.transform, padded, strict=True)),
            f"fft_conv: transform {list(attrs.transform)} is smaller than the padded input {padded}",
        )
    return result


FFT_CONV_HELPER = '''
def fft_conv(x, weight, bias, stride, padding, dilation, groups):
    """Convolution (cross-correlation) by FFT; the same result as F.conv1d/F.conv2d.

    `padding` lists every begin, then every end (one per spatial dim)."""
    rank = weight.dim() - 2
    dims = tuple(range(-rank, 0))
    if any(d > 1 for d in dilation):
        reach = [d * (k - 1) + 1 for k, d in zip(weight.shape[2:], dilation)]
        dilated = weight.new_zeros(*weight.shape[:2], *reach)
        dilated[(..., *(slice(None, None, d) for d in dilation))] = weight
        weight = dilated
    x = F.pad(x, [p for axis in reversed(range(rank)) for p in (padding[axis], padding[axis + rank])])
    size = x.shape[2:]
    spectrum = torch.fft.rfftn(x, s=size, dim=dims)  # [N, C, *F]
    kernel = torch.fft.rfftn(weight, s=size, dim=dims)  # [O, C / groups, *F]
    n, c = x.shape[:2]
    spectrum = spectrum.reshape(n, groups, c // groups, *spectrum.shape[2:])
    kernel = kernel.reshape(groups, -1, *kernel.shape[1:])
    product = torch.einsum("ngc...,goc...->ngo...", spectrum, kernel.conj())
    y = torch.fft.irfftn(product.reshape(n, -1, *product.shape[3:]), s=size, dim=dims)
    keep = [slice(0, size[i] - weight.shape[2 + i] + 1, stride[i]) for i in range(rank)]
    y = y[(..., *keep)]
    return y if bias is None else y + bias.reshape(-1, *[1] * rank)
'''


def _to_torch(t: TorchWriter, node: Node) -> str:
    a = node.attrs
    t.helper("fft_conv", FFT_CONV_HELPER)
    x, weight = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    args = [
        t.var(x),
        t.var(weight),
        t.var(bias),
        list(a.stride),
        list(a.padding),
        list(a.dilation),
        str(a.groups),
    ]
    return f"fft_conv({', '.join(map(str, args))})"


def plan_1d(kernel: int, dilation: int, m1: int, m2: int) -> dict:
    """Attributes of a 1-D plan: frames of m1 * m2 samples."""
    reach = dilation * (kernel - 1) + 1
    return {"transform": (m1, m2), "block": m1 * m2 - reach + 1}


def _samples() -> list[OpSample]:
    rng = np.random.default_rng(40)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def attrs1(k: int, m1: int, m2: int, stride=1, padding=(0, 0), dilation=1, groups=1) -> dict:
        return {
            "stride": (stride,),
            "padding": padding,
            "dilation": (dilation,),
            "groups": groups,
            **plan_1d(k, dilation, m1, m2),
        }

    def attrs2(transform, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1) -> dict:
        return {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "transform": transform,
        }

    return [
        OpSample((arr(2, 3, 40), arr(4, 3, 5), arr(4)), attrs1(5, 4, 4), frozenset({1, 2}), name="1d-dense"),
        OpSample((arr(2, 4, 50), arr(4, 4, 7)), attrs1(7, 4, 8), frozenset({1}), name="1d-no-bias-one-frame"),
        OpSample(
            (arr(2, 4, 33), arr(6, 2, 3), arr(6)),
            attrs1(3, 2, 8, padding=(4, 0), dilation=2, groups=2),
            frozenset({1, 2}),
            name="1d-causal-dilated-grouped",
        ),
        OpSample(
            (arr(2, 5, 64), arr(5, 1, 9), arr(5)),
            attrs1(9, 4, 4, groups=5),
            frozenset({1, 2}),
            name="1d-depthwise",
        ),
        OpSample(
            (arr(2, 3, 45), arr(2, 3, 4)),
            attrs1(4, 2, 4, stride=3, padding=(1, 2)),
            frozenset({1}),
            name="1d-strided",
        ),
        OpSample(
            (arr(2, 3, 9, 8), arr(4, 3, 3, 3), arr(4)), attrs2((9, 8)), frozenset({1, 2}), name="2d-dense"
        ),
        OpSample(
            (arr(2, 4, 12, 12), arr(4, 1, 5, 5), arr(4)),
            attrs2((16, 16), padding=(2, 2, 2, 2), groups=4),
            frozenset({1, 2}),
            name="2d-depthwise-same",
        ),
        OpSample(
            (arr(2, 4, 10, 9), arr(6, 2, 3, 2)),
            attrs2((12, 11), stride=(2, 1), padding=(1, 0, 1, 2), dilation=(1, 2), groups=2),
            frozenset({1}),
            name="2d-grouped-strided-dilated",
        ),
    ]


OPS = [
    OpDef(
        "fft_conv",
        _infer,
        emit_fft_conv,
        _to_torch,
        _samples,
        FFTConvAttrs,
        OpGroup.CONTRACTION,
        macs=_conv_macs,
        doc="A convolution computed with DFTs (chosen by the algorithm selection pass).",
    )
]
