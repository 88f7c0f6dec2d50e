"""Sequence helpers built from core ops: `highway`, `sequence_mask`, `time_distributed`.

Highway layer (Srivastava et al. 2015, as in ELMo's character encoder):

    g = sigmoid(W_g x + b_g),  y = g * act(W_t x + b_t) + (1 - g) * x  =  x + g * (act(...) - x)

The gate bias starts negative (bilm-tf: -2), so a new layer mostly carries its input.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from dlc.plugin_api import BlockConfig, BlockContext, BlockType, DType, Value, init

# -- highway -----------------------------------------------------------------------------


class HighwayConfig(BlockConfig):
    layers: int = Field(1, ge=1, description="How many highway layers, applied in turn.")
    activation: Literal["relu", "tanh"] = Field("relu", description="The transform's activation.")
    gate_bias: float = Field(
        -2.0, description="Initial gate bias: negative carries the input at first (bilm-tf uses -2)."
    )


def _linear(ctx: BlockContext, name: str, x: Value, features: int, bias_init: init.Init) -> Value:
    """A square nn.Linear under `name`, torch's default initialization for the weight."""
    with ctx.sub_scope(name):
        weight = ctx.param("weight", (features, features), init.fan_in_uniform(features))
        bias = ctx.param("bias", (features,), bias_init)
        return ctx.op("linear", x, weight, bias)


def _highway(ctx: BlockContext, config: HighwayConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if x.type.rank < 1 or not isinstance(x.type.shape[-1], int) or not x.type.dtype.is_float:
        raise ctx.error(f"expects floating-point features in a static last dim, got {x.type}")
    features = int(x.type.shape[-1])
    ctx.reserve(11 * config.layers, f"{config.layers:,} layers of 11 operations")
    for layer in range(config.layers):
        with ctx.sub_scope(str(layer)):
            transform = _linear(ctx, "transform", x, features, init.fan_in_uniform(features))
            transform = ctx.op(config.activation, transform)
            gate = ctx.op("sigmoid", _linear(ctx, "gate", x, features, init.constant(config.gate_bias)))
            x = ctx.op("add", x, ctx.op("mul", gate, ctx.op("sub", transform, x)))
    return x


# -- sequence_mask -----------------------------------------------------------------------


class SequenceMaskConfig(BlockConfig):
    batch_first: bool = Field(False, description="The sequence is [N, T, ...]; by default [T, N, ...].")
    dtype: Literal["bool", "float32"] = Field("bool", description="bool for `where`, float32 to multiply.")


def _sequence_mask(ctx: BlockContext, config: SequenceMaskConfig, inputs: list[Value]) -> Value:
    """`in: [lengths, sequence]`: true at the steps t < length of each sequence, shaped
    to broadcast against the sequence ([N, T, 1, ...] or [T, N, 1, ...])."""
    lengths, sequence = inputs
    if sequence.type.rank < 2:
        raise ctx.error(f"the sequence must have a batch and a time dim, got {sequence.type}")
    time_axis, batch_axis = (1, 0) if config.batch_first else (0, 1)
    batch = sequence.type.shape[batch_axis]
    if lengths.type.dtype not in (DType.int64, DType.int32) or lengths.type.shape != (batch,):
        raise ctx.error(
            f"lengths must be int64 [{batch}] (one per sequence of {sequence.type}), got {lengths.type}",
            hint="write `in: [lengths, sequence]`",
        )
    if lengths.type.dtype is not DType.int64:
        lengths = ctx.op("cast", lengths, dtype=DType.int64)
    positions = ctx.op("arange", sequence, axis=time_axis)  # [T]
    if config.batch_first:  # [T] < [N, 1] -> [N, T]
        mask = ctx.op("less", positions, ctx.op("unsqueeze", lengths, axis=1))
    else:  # [T, 1] < [N] -> [T, N]
        mask = ctx.op("less", ctx.op("unsqueeze", positions, axis=1), lengths)
    for axis in range(2, sequence.type.rank):
        mask = ctx.op("unsqueeze", mask, axis=axis)
    if config.dtype == "float32":
        mask = ctx.op("cast", mask, dtype=DType.float32)
    return mask


# -- time_distributed --------------------------------------------------------------------


class TimeDistributedConfig(BlockConfig):
    block: str = Field(description="The block applied at every step, e.g. batch_norm.")
    options: dict[str, Any] = Field(default_factory=dict, description="Its options, as a mapping.")


def _time_distributed(ctx: BlockContext, config: TimeDistributedConfig, inputs: list[Value]) -> Value:
    """Merge the two leading dims (batch and time, in either order), apply the block to
    each step as a batch of its own, and split them again: [N, T, ...] -> [N*T, ...] ->
    block -> [N, T, ...']. Its parameters are named `<id>.<block>.<name>`."""
    x = inputs[0]
    if x.type.rank < 3:
        raise ctx.error(f"needs [N, T, ...] or [T, N, ...] with something per step, got {x.type}")
    steps = ctx.op("flatten", x, start=0, end=1)
    try:
        y = ctx.block_call(config.block, config.options, [steps], name=config.block)
    except KeyError:
        raise ctx.error(f"unknown block '{config.block}'", hint="`dlc blocks` lists them") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in error.errors()
        )
        raise ctx.error(f"invalid options for block '{config.block}': {problems}") from None
    if y.type.rank < 1 or y.type.shape[0] != steps.type.shape[0]:
        raise ctx.error(f"block '{config.block}' must keep one row per step, got {y.type} from {steps.type}")
    shape = (*x.type.shape[:2], *y.type.shape[1:])
    return ctx.op("reshape", y, x, shape=shape)


BLOCKS = [
    BlockType(
        "highway",
        HighwayConfig,
        _highway,
        "Highway layers: y = x + g * (act(W_t x + b_t) - x), g = sigmoid(W_g x + b_g).",
        shorthand="layers",
    ),
    BlockType(
        "sequence_mask",
        SequenceMaskConfig,
        _sequence_mask,
        "`in: [lengths, sequence]`: true at steps before each sequence's length, broadcastable to it.",
        inputs=(2, 2),
    ),
    BlockType(
        "time_distributed",
        TimeDistributedConfig,
        _time_distributed,
        "Apply a block at every time step: merges batch and time around it.",
    ),
]
