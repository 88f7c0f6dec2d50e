"""ONNX lowering of `linear_recurrence`: a chunked parallel scan, the same ops for every T.

With u_t = exp(gamma_log) B x_t, the state xi_t = sum_{s<t} Lambda^(t-1-s) u_s is
computed in chunks of L steps (T padded with zeros to T' = C L; padding at the end
changes no earlier state). For step j of chunk c:

    xi_{cL+j} = sum_{i<j} Lambda^(j-1-i) u_{cL+i}  +  Lambda^j carry_c          (1)
    carry_{c+1} = Lambda^L carry_c + total_c,   total_c = Lambda local_{L-1} + u_{cL+L-1}

The first term of (1), `local`, is a complex batched MatMul (four real ones) with the
[P, L, L] Toeplitz matrices of powers Lambda^k (k < L), which depend only on the
parameters: ONNX Runtime folds them into constants when the session starts. The carries
are an exclusive scan over the C chunks, done as a Hillis-Steele (doubling) scan inside
an ONNX ``Loop``: log2(C) iterations of `carry[c] += a * carry[c - d]`, `a = a^2`,
`d = 2d`, each over all chunks at once. The powers come from the parametrization:
Lambda^k = exp(-k exp(nu_log)) (cos(k exp(theta_log)) + i sin(k exp(theta_log))).

Complex values are pairs of real tensors (re, im); states are laid out [P, N*C, L], so
that the projections B and C are plain matrix products with the rows of x and y:
[2P, H] @ [H, N*T'] and [N*T', 2P] @ [2P, H].

Why a chunked scan (ONNX Runtime, one thread, H = P = 256, the whole layer with both
projections, at N = 1, T = 4096 and N = 8, T = 1024; `benchmarks/linear_recurrence_scan.py`,
ratios to chunks of 32 steps taken in one run):

- the recurrence is a causal depthwise convolution of u with the impulse response
  Lambda^k, but as a `conv` it needs a static T to take the FFT path (the direct one is
  O(T^2)), and the per-state complex convolution alone (512 real channels in 256
  groups, a kernel as long as T) took 18.8x and 17.3x as long as `fft_conv`;
- a plain Hillis-Steele scan over all T steps (`chunk: 1`) took 2.6x and 2.75x as long:
  log2(T) memory-bound passes over every state;
- chunks of 32 steps (19.9 ms and 41.3 ms) were the fastest; 16, 64, 8 and 128 steps took
  1.05x, 1.1x, 1.2-1.3x and 1.3-1.4x as long: most of the work is batched matrix
  products, and the Loop runs log2(T / 32) steps over T / 32 carries. It works for a
  symbolic T.
"""

from __future__ import annotations

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import Node, OnnxBuilder

Complex = tuple[str, str]


def complex_mul(b: OnnxBuilder, left: Complex, right: Complex) -> Complex:
    (a, c), (d, e) = left, right
    real = b.op("Sub", [b.op("Mul", [a, d])[0], b.op("Mul", [c, e])[0]])[0]
    imaginary = b.op("Add", [b.op("Mul", [a, e])[0], b.op("Mul", [c, d])[0]])[0]
    return real, imaginary


def complex_matmul(b: OnnxBuilder, left: Complex, right: Complex) -> Complex:
    (a, c), (d, e) = left, right
    real = b.op("Sub", [b.op("MatMul", [a, d])[0], b.op("MatMul", [c, e])[0]])[0]
    imaginary = b.op("Add", [b.op("MatMul", [a, e])[0], b.op("MatMul", [c, d])[0]])[0]
    return real, imaginary


def complex_add(b: OnnxBuilder, left: Complex, right: Complex) -> Complex:
    return b.op("Add", [left[0], right[0]])[0], b.op("Add", [left[1], right[1]])[0]


def lambda_powers(b: OnnxBuilder, nu_log: str, theta_log: str, count: int) -> Complex:
    """Lambda^k for k = 0 .. count - 1, as [P, count] real and imaginary parts."""
    k = b.constant(np.arange(count, dtype=np.float32), "k")
    axes = b.int64s([1], "axes")
    log_modulus = b.op("Unsqueeze", [b.op("Neg", [b.op("Exp", [nu_log])[0]])[0], axes])[0]
    phase = b.op("Unsqueeze", [b.op("Exp", [theta_log])[0], axes])[0]
    modulus = b.op("Exp", [b.op("Mul", [log_modulus, k])[0]])[0]
    angle = b.op("Mul", [phase, k])[0]
    return (
        b.op("Mul", [modulus, b.op("Cos", [angle])[0]])[0],
        b.op("Mul", [modulus, b.op("Sin", [angle])[0]])[0],
    )


def toeplitz(b: OnnxBuilder, powers: Complex, chunk: int) -> Complex:
    """[P, L(i), L(j)]: Lambda^(j-1-i) for j > i, else 0 (local = u @ toeplitz)."""
    i, j = np.arange(chunk)[:, None], np.arange(chunk)[None, :]
    lag = b.constant(np.maximum(j - 1 - i, 0).astype(np.int64), "lag")
    mask = b.constant((j > i).astype(np.float32), "causal")
    return tuple(b.op("Mul", [b.op("Gather", [part, lag], axis=1)[0], mask])[0] for part in powers)  # type: ignore[return-value]


def doubling_scan(b: OnnxBuilder, carry: Complex, decay: Complex, chunks: str) -> Complex:
    """Inclusive scan over axis 2 of carry [P, N, C]: carry[c] = sum_{c'<=c} decay^(c-c')
    carry[c'], in a Loop that runs while the offset d (1, 2, 4, ...) is below C."""
    from onnx import TensorProto, helper  # onnx is imported when a model is emitted, not at start-up

    zero, two_axis = b.int64s([0], "zero"), b.int64s([2], "axis")
    d, state_re, state_im, a_re, a_im = (b.fresh(n) for n in ("d", "carry_re", "carry_im", "a_re", "a_im"))
    iteration, condition = b.fresh("iteration"), b.fresh("condition")
    with b.subgraph() as nodes:
        pads = b.op("Concat", [zero, zero, d, zero, zero, zero], axis=0)[0]  # d zeros before chunk 0
        shifted = tuple(
            b.op("Slice", [b.op("Pad", [part, pads])[0], zero, chunks, two_axis])[0]
            for part in (state_re, state_im)
        )
        state_out = complex_add(b, (state_re, state_im), complex_mul(b, (a_re, a_im), shifted))
        a_out = complex_mul(b, (a_re, a_im), (a_re, a_im))
        d_out = b.op("Add", [d, d])[0]
        condition_out = b.op("Less", [d_out, chunks])[0]
        condition_out = b.op("Squeeze", [condition_out])[0]
    floats = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in (a_re, a_im, state_re, state_im)
    ]
    body = helper.make_graph(
        nodes,
        b.fresh("doubling_step"),
        [
            helper.make_tensor_value_info(iteration, TensorProto.INT64, []),
            helper.make_tensor_value_info(condition, TensorProto.BOOL, []),
            helper.make_tensor_value_info(d, TensorProto.INT64, [1]),
            *floats,
        ],
        [helper.make_tensor_value_info(n, TensorProto.BOOL, []) for n in (condition_out,)]
        + [helper.make_tensor_value_info(d_out, TensorProto.INT64, [1])]
        + [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in (*a_out, *state_out)],
    )
    one = b.int64s([1], "one")
    start = b.op("Squeeze", [b.op("Less", [one, chunks])[0]])[0]  # one chunk: nothing to do
    results = b.op("Loop", ["", start, one, *decay, *carry], 5, body=body)
    return results[3], results[4]


def _take(b: OnnxBuilder, tensor: str, start: int, end: int | str, axis: int) -> str:
    """tensor[start:end] along `axis`; `end` may be the name of a [1] int64 tensor."""
    stop = end if isinstance(end, str) else b.int64s([end], "end")
    return b.op("Slice", [tensor, b.int64s([start], "start"), stop, b.int64s([axis], "axes")])[0]


def linear_recurrence_to_onnx(b: OnnxBuilder, node: Node) -> None:
    x, nu_log, theta_log, gamma_log, b_re, b_im, c_re, c_im, feedthrough = b.inputs(node)
    chunk, batch_first = node.attrs.chunk, node.attrs.batch_first
    state, features = (int(d) for d in node.inputs[4].type.shape)
    sequence = x if batch_first else b.op("Transpose", [x], perm=[1, 0, 2])[0]  # [N, T, H]
    steps = b.op("Shape", [sequence], start=1, end=2)[0]
    padding = b.op("Mod", [b.op("Neg", [steps])[0], b.int64s([chunk], "chunk")])[0]  # -T mod L
    pads = b.op("Concat", [b.int64s([0, 0, 0, 0], "begin"), padding, b.int64s([0], "end")], axis=0)[0]
    padded = b.op("Pad", [sequence, pads])[0]  # [N, T', H]
    rows = b.op("Reshape", [padded, b.int64s([-1, features], "rows")])[0]  # [N T', H]

    # u = exp(gamma_log) B x, for all steps at once: [2P, H] @ [H, N T'] -> [2P, N T']
    gamma = b.op("Unsqueeze", [b.op("Exp", [gamma_log])[0], b.int64s([1], "axes")])[0]
    projection = b.op("Concat", [b.op("Mul", [b_re, gamma])[0], b.op("Mul", [b_im, gamma])[0]], axis=0)[0]
    inputs = b.op("MatMul", [projection, b.op("Transpose", [rows], perm=[1, 0])[0]])[0]
    chunked = b.int64s([state, -1, chunk], "chunked")
    u = tuple(
        b.op("Reshape", [part, chunked])[0] for part in b.op("Split", [inputs], 2, axis=0, num_outputs=2)
    )  # [P, NC, L]

    powers = lambda_powers(b, nu_log, theta_log, chunk + 1)  # [P, L + 1]
    local = complex_matmul(b, u, toeplitz(b, powers, chunk))  # [P, NC, L]

    def power(k: int) -> Complex:  # Lambda^k as [P, 1, 1]
        return tuple(
            b.op("Unsqueeze", [_take(b, part, k, k + 1, axis=1), b.int64s([2], "axes")])[0] for part in powers
        )  # type: ignore[return-value]

    last = (_take(b, local[0], chunk - 1, chunk, axis=2), _take(b, local[1], chunk - 1, chunk, axis=2))
    totals = complex_add(
        b,
        complex_mul(b, power(1), last),
        (_take(b, u[0], chunk - 1, chunk, axis=2), _take(b, u[1], chunk - 1, chunk, axis=2)),
    )  # [P, NC, 1]: the state each chunk passes on, from its own inputs
    batch = b.op("Shape", [sequence], start=0, end=1)[0]
    by_chunk = b.op("Concat", [b.int64s([state], "state"), batch, b.int64s([-1], "chunks")], axis=0)[0]
    totals = tuple(b.op("Reshape", [part, by_chunk])[0] for part in totals)  # [P, N, C]
    chunks = b.op("Shape", [totals[0]], start=2, end=3)[0]
    # The carry entering chunk c scans the totals of the chunks before it: shift by one chunk.
    one_chunk = b.int64s([0, 0, 1, 0, 0, 0], "one_chunk")
    shifted = tuple(_take(b, b.op("Pad", [part, one_chunk])[0], 0, chunks, axis=2) for part in totals)
    carry = doubling_scan(b, shifted, power(chunk), chunks)  # [P, N, C]
    carry = tuple(b.op("Reshape", [part, b.int64s([state, -1, 1], "per_chunk")])[0] for part in carry)
    powers_in_chunk = tuple(
        b.op("Unsqueeze", [_take(b, part, 0, chunk, axis=1), b.int64s([1], "axes")])[0] for part in powers
    )  # [P, 1, L]
    states = complex_add(b, local, complex_mul(b, powers_in_chunk, carry))  # [P, NC, L]

    # y = Re(C xi) = C_re xi_re - C_im xi_im: [N T', 2P] @ [2P, H]
    stacked = b.op(
        "Reshape", [b.op("Concat", list(states), axis=0)[0], b.int64s([2 * state, -1], "stacked")]
    )[0]
    readout = b.op("Transpose", [b.op("Concat", [c_re, b.op("Neg", [c_im])[0]], axis=1)[0]], perm=[1, 0])[0]
    y = b.op("MatMul", [b.op("Transpose", [stacked], perm=[1, 0])[0], readout])[0]  # [N T', H]
    y = b.op("Reshape", [y, b.op("Shape", [padded])[0]])[0]
    y = _take(b, y, 0, steps, axis=1)
    y = b.op("Add", [y, b.op("Mul", [sequence, feedthrough])[0]])[0]
    output = b.outputs(node)
    if batch_first:
        b.op("Identity", [y], output)
    else:
        b.op("Transpose", [y], output, perm=[1, 0, 2])
