"""ONNX emission of FFT convolution as matrix products (no `DFT` op).

ONNX Runtime's DFT is slow on CPU and has no CUDA kernel, while MatMul runs near peak
everywhere, so discrete Fourier transforms are written as products with DFT matrices.
A convolution (cross-correlation) y[t] = sum_k w[k] x[t + k] becomes, per frequency f,
``Y[f] = conj(W[f]) X[f]``, summed over input channels (a small complex matrix product).

1-D (long sequences): overlap-save. The padded input is cut into `nb` frames of length
M = M1 * M2 that overlap by K - 1 samples; each frame's DFT is a four-step transform
(M1-point DFTs, twiddle factors exp(-2 pi i k1 n2 / M), M2-point DFTs), all as MatMuls
on a channels-last layout [N, M, nb, C], so every frequency's [frames x channels] tile is
contiguous and the channel product is one batched MatMul without large transposes.
Frequencies stay in the four-step order k = k1 + M1 * k2 throughout; the inverse
transform consumes that order directly. The first B = M - K + 1 samples of each inverse
frame are the valid outputs.

2-D (images): one transform of the whole padded image, a real DFT along W (half spectrum)
then a complex DFT along H. Zero padding is never materialized: the forward DFT matrices
keep only the rows of real sample positions, and the inverse ones only the output rows and
columns kept after striding.

Real and imaginary parts travel as separate tensors or stacked halves; the spectral
products use the real block form of complex multiplication. Kernel spectra are computed
in-graph from the weights with the same matrices: ONNX Runtime folds that constant
subgraph once when the session starts, so the file holds only the time-domain weights.
"""

from __future__ import annotations

import math

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import Node, OnnxBuilder

from .geometry import split_pads


def dft_matrix(size: int, sign: float = -1.0) -> np.ndarray:
    k = np.arange(size)
    return np.exp(sign * 2j * np.pi * np.outer(k, k) / size)


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


class _Emitter:
    """Small helpers over OnnxBuilder for the fixed-shape plumbing below."""

    def __init__(self, b: OnnxBuilder) -> None:
        self.b = b

    def const(self, array: np.ndarray, hint: str) -> str:
        """A float32 constant (DFT matrices, twiddle factors)."""
        return self.b.constant(_f32(array), hint)

    def op(self, op_type: str, *inputs: str, **attrs: object) -> str:
        return self.b.op(op_type, list(inputs), **attrs)[0]

    def reshape(self, x: str, *dims: int) -> str:
        return self.op("Reshape", x, self.b.int64s(dims, "shape"))

    def slice(self, x: str, axis: int, start: int, end: int, step: int = 1) -> str:
        b = self.b
        return self.op(
            "Slice",
            x,
            b.int64s([start], "start"),
            b.int64s([end], "end"),
            b.int64s([axis], "axis"),
            b.int64s([step], "step"),
        )

    def halves(self, x: str, axis: int, size: int) -> tuple[str, str]:
        return self.slice(x, axis, 0, size), self.slice(x, axis, size, 2 * size)

    def complex_mul(self, ar: str, ai: str, br: str, bi: str, conjugate_b: bool = False) -> tuple[str, str]:
        """(ar + i ai)(br +- i bi) with element-wise ops."""
        rr, ii = self.op("Mul", ar, br), self.op("Mul", ai, bi)
        ri, ir = self.op("Mul", ar, bi), self.op("Mul", ai, br)
        if conjugate_b:
            return self.op("Add", rr, ii), self.op("Sub", ir, ri)
        return self.op("Sub", rr, ii), self.op("Add", ri, ir)


def _dilated_kernel(e: _Emitter, weight: str, shape: list[int], dilation: tuple[int, ...]) -> str:
    """Insert dilation - 1 zeros between kernel taps, per spatial dim (in-graph, folded).

    Tap k moves to k * d: append d - 1 zeros after every tap (unsqueeze, pad), flatten
    the pair of axes, and drop the zeros after the last tap."""
    shape = list(shape)  # [O, Cg, *K]
    for axis, d in enumerate(dilation):
        if d == 1:
            continue
        position = 2 + axis
        k = shape[position]
        spread = e.op("Unsqueeze", weight, e.b.int64s([position + 1], "axes"))
        pads = [0] * (2 * (len(shape) + 1))
        pads[len(shape) + 1 + position + 1] = d - 1
        spread = e.op("Pad", spread, e.b.int64s(pads, "pads"))
        flat = [*shape[:position], k * d, *shape[position + 1 :]]
        weight = e.slice(e.reshape(spread, *flat), position, 0, (k - 1) * d + 1)
        shape[position] = (k - 1) * d + 1
    return weight


# -- 1-D: overlap-save with four-step transforms ---------------------------------------------


def emit_fft_conv1d(b: OnnxBuilder, node: Node) -> None:
    a = node.attrs
    x, weight = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    e = _Emitter(b)
    _, channels, length = x.type.shape
    out_channels, group_channels, k = (int(d) for d in weight.type.shape)
    groups, stride, dilation = a.groups, a.stride[0], a.dilation[0]
    (begin,), (end,) = split_pads(a.padding)
    m1, m2 = a.transform
    m, block = m1 * m2, a.block
    reach = dilation * (k - 1) + 1
    padded = int(length) + begin + end
    full = padded - reach + 1  # stride-1 output length
    frames = math.ceil(full / block)
    twiddle = np.exp(-2j * np.pi * np.outer(np.arange(m1), np.arange(m2)) / m)  # [k1, n2]
    f1, f2 = dft_matrix(m1), dft_matrix(m2)
    c = int(channels)

    # frames [N, M, nb, C] (channels last), zero padding beyond the data included
    xt = e.op("Transpose", b.name(x), perm=[0, 2, 1])
    tail = (frames - 1) * block + m - padded
    xt = e.op("Pad", xt, b.int64s([0, begin, 0, 0, end + tail, 0], "pads"))
    index = (np.arange(m)[:, None] + np.arange(frames)[None, :] * block).astype(np.int64)
    framed = e.op("Gather", xt, b.constant(index, "frame_index"), axis=1)

    # forward four-step DFT over the M axis, the trailing (nb, C) carried along
    stage1 = e.const(np.concatenate([f1.real, f1.imag], 0), "dft1")  # [2 M1, M1]
    a1 = e.op("MatMul", stage1, e.reshape(framed, 0, m1, m2 * frames * c))
    a1 = e.reshape(a1, 0, 2, m1, m2, frames * c)
    ar, ai = (e.op("Squeeze", part, b.int64s([1], "axes")) for part in e.halves(a1, 1, 1))
    tr = e.const(twiddle.real[:, :, None], "twiddle_re")
    ti = e.const(twiddle.imag[:, :, None], "twiddle_im")
    br, bi = e.complex_mul(ar, ai, tr, ti)
    stacked = e.op("Concat", br, bi, axis=2)  # [N, M1, (re|im, n2), nb C]
    stage2 = e.const(np.block([[f2.real, -f2.imag], [f2.imag, f2.real]]), "dft2")
    spectrum = e.reshape(e.op("MatMul", stage2, stacked), 0, m1, 2, m2, frames, c)
    sr = e.reshape(e.op("Squeeze", e.slice(spectrum, 2, 0, 1), b.int64s([2], "axes")), 0, m, frames, c)
    si = e.reshape(e.op("Squeeze", e.slice(spectrum, 2, 1, 2), b.int64s([2], "axes")), 0, m, frames, c)

    # kernel spectrum in the same frequency order, from the weights (constant-folded)
    kernel = _dilated_kernel(e, b.name(weight), [out_channels, group_channels, k], a.dilation)
    kernel = e.op("Pad", kernel, b.int64s([0, 0, 0, 0, 0, m - reach], "pads"))  # [O, Cg, M]
    rows = out_channels * group_channels
    ka = e.op("MatMul", stage1, e.reshape(kernel, rows, m1, m2))  # [R, 2 M1, M2]
    kar, kai = e.halves(ka, 1, m1)
    kbr, kbi = e.complex_mul(kar, kai, e.const(twiddle.real, "kt_re"), e.const(twiddle.imag, "kt_im"))
    right = e.const(np.block([[f2.real, f2.imag], [-f2.imag, f2.real]]), "dft2_right")
    kspec = e.op("MatMul", e.op("Concat", kbr, kbi, axis=2), right)  # [R, M1, (re|im, k2)]
    kspec = e.reshape(kspec, out_channels, group_channels, m1, 2, m2)

    outputs_per_group = out_channels // groups
    if groups == c == out_channels:  # depthwise: the product is element-wise
        kspec = e.reshape(e.op("Transpose", kspec, perm=[3, 2, 4, 1, 0]), 2, m, 1, c)  # [ri, F, 1, C]
        wr, wi = (e.op("Squeeze", part, b.int64s([0], "axes")) for part in e.halves(kspec, 0, 1))
        yr, yi = e.complex_mul(sr, si, wr, wi, conjugate_b=True)
        product = e.op("Concat", yr, yi, axis=2)  # [N, F, 2 nb, O]
    else:
        # [[Sr, Si], [Si, -Sr]] @ [Wr; Wi] = [Re; Im] of conj(W) S, per frequency and group
        top = e.op("Concat", sr, si, axis=3)
        bottom = e.op("Concat", si, e.op("Neg", sr), axis=3)
        rows_stacked = e.op("Concat", top, bottom, axis=2)  # [N, F, 2 nb, (ri, G, Cg)]
        wst = e.op(
            "Transpose",
            e.reshape(kspec, groups, outputs_per_group, group_channels, m1, 2, m2),
            perm=[3, 5, 0, 4, 2, 1],
        )  # [M1, M2, G, ri, Cg, Og]
        wst = e.reshape(wst, m, groups, 2 * group_channels, outputs_per_group)
        if groups == 1:
            product = e.op("MatMul", rows_stacked, e.reshape(wst, m, 2 * group_channels, out_channels))
        else:
            grouped = e.reshape(rows_stacked, 0, m, 2 * frames, 2, groups, group_channels)
            grouped = e.reshape(
                e.op("Transpose", grouped, perm=[0, 1, 4, 2, 3, 5]),
                0,
                m,
                groups,
                2 * frames,
                2 * group_channels,
            )
            product = e.op("MatMul", grouped, wst)  # [N, F, G, 2 nb, Og]
            product = e.reshape(
                e.op("Transpose", product, perm=[0, 1, 3, 2, 4]), 0, m, 2 * frames, out_channels
            )

    # inverse four-step DFT, frames x channels carried along; keep the first B samples
    product = e.reshape(product, 0, m1, m2, 2, frames * out_channels)
    product = e.reshape(
        e.op("Transpose", product, perm=[0, 1, 3, 2, 4]), 0, m1, 2 * m2, frames * out_channels
    )
    g2 = np.conj(f2)
    inverse2 = e.const(np.block([[g2.real, -g2.imag], [g2.imag, g2.real]]), "idft2")
    back = e.reshape(e.op("MatMul", inverse2, product), 0, m1, 2, m2, frames * out_channels)
    cr, ci = (e.op("Squeeze", part, b.int64s([2], "axes")) for part in e.halves(back, 2, 1))
    cr, ci = e.complex_mul(cr, ci, tr, ti, conjugate_b=True)
    cc = e.reshape(e.op("Concat", cr, ci, axis=1), 0, 2 * m1, m2 * frames * out_channels)
    g1 = np.conj(f1)
    inverse1 = e.const(np.concatenate([g1.real, -g1.imag], 1) / m, "idft1")  # real part only
    signal = e.reshape(e.op("MatMul", inverse1, cc), 0, m, frames, out_channels)
    signal = e.op("Transpose", e.slice(signal, 1, 0, block), perm=[0, 3, 2, 1])  # [N, O, nb, B]
    signal = e.slice(e.reshape(signal, 0, out_channels, frames * block), 2, 0, full, stride)
    if bias is not None:
        signal = e.op("Add", signal, e.reshape(b.name(bias), out_channels, 1))
    b.op("Identity", [signal], b.outputs(node))


# -- 2-D: whole-image transforms --------------------------------------------------------------


def emit_fft_conv2d(b: OnnxBuilder, node: Node) -> None:
    a = node.attrs
    x, weight = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    e = _Emitter(b)
    _, channels, height, width = (d for d in x.type.shape)
    out_channels, group_channels, kh, kw = (int(d) for d in weight.type.shape)
    out_h, out_w = (int(d) for d in node.outputs[0].type.shape[2:])
    groups = a.groups
    (top, left), _ = split_pads(a.padding)
    ph, pw = a.transform
    half = pw // 2 + 1
    reach_h, reach_w = a.dilation[0] * (kh - 1) + 1, a.dilation[1] * (kw - 1) + 1
    fw, fh = dft_matrix(pw), dft_matrix(ph)

    # forward: real DFT along W (half spectrum), then complex DFT along H
    columns = fw[left : left + int(width), :half]  # rows at the real sample positions
    a1 = e.op("MatMul", b.name(x), e.const(np.concatenate([columns.real, columns.imag], 1), "dft_w"))
    rows = fh[:, top : top + int(height)]
    a2 = e.op(
        "MatMul", e.const(np.concatenate([rows.real, rows.imag], 0), "dft_h"), a1
    )  # [N, C, 2 Ph, 2 half]
    real_rows, imag_rows = e.halves(a2, 2, ph)
    fr_ar, fr_ai = e.halves(real_rows, 3, half)
    fi_ar, fi_ai = e.halves(imag_rows, 3, half)
    xr, xi = e.op("Sub", fr_ar, fi_ai), e.op("Add", fr_ai, fi_ar)  # [N, C, Ph, half]

    # kernel spectrum from the (dilated) weights, same transforms
    kernel = _dilated_kernel(e, b.name(weight), [out_channels, group_channels, kh, kw], a.dilation)
    kcols = fw[:reach_w, :half]
    k1 = e.op("MatMul", kernel, e.const(np.concatenate([kcols.real, kcols.imag], 1), "kdft_w"))
    krows = fh[:, :reach_h]
    k2 = e.op("MatMul", e.const(np.concatenate([krows.real, krows.imag], 0), "kdft_h"), k1)
    k_top, k_bottom = e.halves(k2, 2, ph)
    kr_r, kr_i = e.halves(k_top, 3, half)
    ki_r, ki_i = e.halves(k_bottom, 3, half)
    wr, wi = e.op("Sub", kr_r, ki_i), e.op("Add", kr_i, ki_r)  # [O, Cg, Ph, half]

    c = int(channels)
    frequencies = ph * half
    outputs_per_group = out_channels // groups
    if groups == c == out_channels:  # depthwise
        wr, wi = (e.reshape(t, 1, c, ph, half) for t in (wr, wi))
        yr, yi = e.complex_mul(xr, xi, wr, wi, conjugate_b=True)
    else:
        # per frequency: [[Xr, Xi], [Xi, -Xr]] [2N, 2C] @ [Wr; Wi] [2C, O], grouped
        def frequency_major(t: str) -> str:
            return e.op("Transpose", e.reshape(t, 0, c, frequencies), perm=[2, 0, 1])  # [F, N, C]

        sr, si = frequency_major(xr), frequency_major(xi)
        top_rows = e.op("Concat", sr, si, axis=2)
        bottom_rows = e.op("Concat", si, e.op("Neg", sr), axis=2)
        stacked = e.op("Concat", top_rows, bottom_rows, axis=1)  # [F, 2N, (ri, G, Cg)]
        w_st = e.op(
            "Concat",
            e.reshape(wr, groups, outputs_per_group, group_channels, frequencies),
            e.reshape(wi, groups, outputs_per_group, group_channels, frequencies),
            axis=2,
        )
        w_st = e.op("Transpose", w_st, perm=[3, 0, 2, 1])  # [F, G, (ri, Cg), Og]
        if groups == 1:
            product = e.op("MatMul", stacked, e.reshape(w_st, frequencies, 2 * group_channels, out_channels))
        else:
            grouped = e.reshape(stacked, frequencies, -1, 2, groups, group_channels)
            grouped = e.reshape(
                e.op("Transpose", grouped, perm=[0, 3, 1, 2, 4]), frequencies, groups, -1, 2 * group_channels
            )
            product = e.op("MatMul", grouped, w_st)  # [F, G, 2N, Og]
            product = e.reshape(e.op("Transpose", product, perm=[0, 2, 1, 3]), frequencies, -1, out_channels)
        yr, yi = b.op("Split", [product], 2, axis=1, num_outputs=2)  # [F, N, O] each

        def image_major(t: str) -> str:
            return e.reshape(e.op("Transpose", t, perm=[1, 2, 0]), 0, out_channels, ph, half)

        yr, yi = image_major(yr), image_major(yi)

    # inverse: complex along H (only kept rows), then real along W (only kept columns)
    keep_h = np.arange(out_h) * a.stride[0]
    inverse_h = np.exp(2j * np.pi * np.outer(keep_h, np.arange(ph)) / ph) / ph
    z = e.op(
        "MatMul",
        e.const(np.concatenate([inverse_h.real, inverse_h.imag], 0), "idft_h"),
        e.op("Concat", yr, yi, axis=3),
    )  # [N, O, 2 out_h, 2 half]
    z_top, z_bottom = e.halves(z, 2, out_h)
    gr_yr, gr_yi = e.halves(z_top, 3, half)
    gi_yr, gi_yi = e.halves(z_bottom, 3, half)
    zr, zi = e.op("Sub", gr_yr, gi_yi), e.op("Add", gr_yi, gi_yr)
    keep_w = np.arange(out_w) * a.stride[1]
    weights = np.full(half, 2.0)
    weights[0] = 1.0
    if pw % 2 == 0:
        weights[-1] = 1.0
    inverse_w = np.exp(2j * np.pi * np.outer(np.arange(half), keep_w) / pw) * weights[:, None] / pw
    y = e.op(
        "MatMul",
        e.op("Concat", zr, zi, axis=3),
        e.const(np.concatenate([inverse_w.real, -inverse_w.imag], 0), "idft_w"),
    )
    if bias is not None:
        y = e.op("Add", y, e.reshape(b.name(bias), out_channels, 1, 1))
    b.op("Identity", [y], b.outputs(node))


def emit_fft_conv(b: OnnxBuilder, node: Node) -> None:
    if node.inputs[1].type.rank == 3:
        emit_fft_conv1d(b, node)
    else:
        emit_fft_conv2d(b, node)
