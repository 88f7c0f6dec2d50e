"""Volume-changing and permuting steps of a flow, each with its inverse lowering; all act
on the features of [N, C] or the channels of [N, C, *spatial] (dim 1):

- `actnorm` (Glow): y = (x + bias) * scale per channel, parameters `scale` (ones) and
  `bias` (zeros), data-free: trained, not initialized from a first batch;
  log |det J| = (spatial size) * sum(log |scale|);
- `invertible_conv1x1` (Glow): y = W x at every position, `weight` [C, C] initialized to a
  random orthogonal matrix; log |det J| = (spatial size) * log |det W|; the inverse uses
  W^-1 (`matrix_inverse`, folded once by ONNX Runtime);
- `permute: {order}` and `reverse`: a fixed reordering of the channels; log |det J| = 0.
"""

from __future__ import annotations

import math

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import BlockConfig, BlockContext, BlockType, Value, init

from .coupling import zero_per_row


class NoOptions(BlockConfig):
    pass


class PermuteConfig(BlockConfig):
    order: list[int] = Field(
        description="A permutation of 0..C-1: output channel i is input channel order[i]."
    )


def _channels(ctx: BlockContext, x: Value) -> tuple[int, int]:
    """(channels, spatial size) of a [N, C, *spatial] input with static dims after N."""
    dims = x.type.shape[1:]
    if x.type.rank < 2 or not all(isinstance(d, int) for d in dims):
        raise ctx.error(f"needs [N, C, ...] inputs with static dims after N, got {ctx.describe(x)}")
    return int(dims[0]), math.prod(int(d) for d in dims[1:])


def _per_row(ctx: BlockContext, x: Value, log_det: Value, sign: float) -> Value:
    """A whole-input log |det J| (a scalar), signed, as one value per example."""
    if sign < 0:
        log_det = ctx.op("neg", log_det)
    return ctx.op("add", zero_per_row(ctx, x), log_det)


# -- actnorm -------------------------------------------------------------------------------


def _actnorm_parameters(ctx: BlockContext, x: Value) -> tuple[Value, Value, Value]:
    channels, spatial = _channels(ctx, x)
    shape = (1, channels, *[1] * (x.type.rank - 2))
    scale = ctx.param("scale", shape, init.ones())
    bias = ctx.param("bias", shape, init.zeros())
    log_scale = ctx.op("log", ctx.op("abs", scale))
    total = ctx.op("reduce_sum", log_scale, axes=tuple(range(len(shape))))
    return scale, bias, ctx.op("scale", total, factor=float(spatial))


def _actnorm_forward(ctx: BlockContext, config: NoOptions, inputs: list[Value]) -> dict[str, Value]:
    (x,) = inputs
    scale, bias, log_det = _actnorm_parameters(ctx, x)
    y = ctx.op("mul", ctx.op("add", x, bias), scale)
    return {"out": y, "log_det": _per_row(ctx, x, log_det, 1.0)}


def _actnorm_inverse(ctx: BlockContext, config: NoOptions, inputs: list[Value]) -> dict[str, Value]:
    (y,) = inputs
    scale, bias, log_det = _actnorm_parameters(ctx, y)
    x = ctx.op("sub", ctx.op("div", y, scale), bias)
    return {"out": x, "log_det": _per_row(ctx, y, log_det, -1.0)}


# -- invertible 1x1 convolution ------------------------------------------------------------


def _orthogonal(values: np.ndarray) -> np.ndarray:
    """A random orthogonal matrix from a normal draw (QR, signs fixed by R's diagonal), as
    Glow initializes its 1x1 convolutions."""
    q, r = np.linalg.qr(values.astype(np.float64))
    return q * np.sign(np.diag(r))[None, :]


def _mix_channels(ctx: BlockContext, matrix: Value, x: Value) -> Value:
    """y[:, i] = sum_j matrix[i, j] x[:, j], at every position: x (channels last) @ matrix^T."""
    transposed = ctx.op("transpose", matrix, perm=(1, 0))
    if x.type.rank == 2:
        return ctx.op("matmul", x, transposed)
    last = (0, *range(2, x.type.rank), 1)
    back = (0, x.type.rank - 1, *range(1, x.type.rank - 1))
    mixed = ctx.op("matmul", ctx.op("transpose", x, perm=last), transposed)
    return ctx.op("transpose", mixed, perm=back)


def _conv1x1_weight(ctx: BlockContext, x: Value) -> tuple[Value, Value]:
    channels, spatial = _channels(ctx, x)
    weight = ctx.param(
        "weight", (channels, channels), init.transformed(init.normal(), "orthogonal", _orthogonal)
    )
    log_det = ctx.op("scale", ctx.op("log_abs_det", weight), factor=float(spatial))
    return weight, log_det


def _conv1x1_forward(ctx: BlockContext, config: NoOptions, inputs: list[Value]) -> dict[str, Value]:
    (x,) = inputs
    weight, log_det = _conv1x1_weight(ctx, x)
    return {"out": _mix_channels(ctx, weight, x), "log_det": _per_row(ctx, x, log_det, 1.0)}


def _conv1x1_inverse(ctx: BlockContext, config: NoOptions, inputs: list[Value]) -> dict[str, Value]:
    (y,) = inputs
    weight, log_det = _conv1x1_weight(ctx, y)
    inverse = ctx.op("matrix_inverse", weight)
    return {"out": _mix_channels(ctx, inverse, y), "log_det": _per_row(ctx, y, log_det, -1.0)}


# -- permutations --------------------------------------------------------------------------


def _reorder(ctx: BlockContext, x: Value, order: list[int]) -> dict[str, Value]:
    index = ctx.constant(np.array(order, dtype=np.int64), "order")
    return {"out": ctx.op("gather", x, index, axis=1), "log_det": zero_per_row(ctx, x)}


def _checked_order(ctx: BlockContext, config: PermuteConfig, x: Value) -> list[int]:
    channels, _ = _channels(ctx, x)
    if sorted(config.order) != list(range(channels)):
        raise ctx.error(
            f"order {config.order} is not a permutation of the {channels} channels 0..{channels - 1}"
        )
    return list(config.order)


def _permute_forward(ctx: BlockContext, config: PermuteConfig, inputs: list[Value]) -> dict[str, Value]:
    return _reorder(ctx, inputs[0], _checked_order(ctx, config, inputs[0]))


def _permute_inverse(ctx: BlockContext, config: PermuteConfig, inputs: list[Value]) -> dict[str, Value]:
    order = _checked_order(ctx, config, inputs[0])
    return _reorder(ctx, inputs[0], [int(i) for i in np.argsort(order)])


def _reverse(ctx: BlockContext, config: NoOptions, inputs: list[Value]) -> dict[str, Value]:
    channels, _ = _channels(ctx, inputs[0])
    return _reorder(ctx, inputs[0], list(range(channels - 1, -1, -1)))  # its own inverse


BLOCKS = [
    BlockType(
        "actnorm",
        NoOptions,
        _actnorm_forward,
        "Glow's activation normalization: y = (x + bias) * scale per channel (data-free).",
        outputs=("out", "log_det"),
        inverse=_actnorm_inverse,
    ),
    BlockType(
        "invertible_conv1x1",
        NoOptions,
        _conv1x1_forward,
        "Glow's invertible 1x1 convolution: y = W x per position, W [C, C] orthogonal at init.",
        outputs=("out", "log_det"),
        inverse=_conv1x1_inverse,
    ),
    BlockType(
        "permute",
        PermuteConfig,
        _permute_forward,
        "A fixed permutation of the channels (dim 1); log_det is 0.",
        outputs=("out", "log_det"),
        shorthand="order",
        inverse=_permute_inverse,
    ),
    BlockType(
        "reverse",
        NoOptions,
        _reverse,
        "The channels (dim 1) in reverse order; log_det is 0.",
        outputs=("out", "log_det"),
        inverse=_reverse,
    ),
]
