"""Coupling layers (NICE, RealNVP): the kept entries of x (mask 1) pass through and
condition a transform of the others, so the Jacobian is triangular and cheap.

With m the mask, x_a = m * x and s, t nets given as templates (masked by 1 - m):

- `affine_coupling`, form `affine` (Dinh et al.): y = x_a + (1 - m) * (x * exp(s(x_a)) + t(x_a)),
  log |det J| = sum(s); its inverse x = x_a + (1 - m) * (y - t(x_a)) * exp(-s(x_a)), as y_a = x_a;
- form `inverse_affine`: the step the other way round, y = x_a + (1 - m) * (x - t) * exp(-s),
  log |det J| = -sum(s) (the real-nvp-pytorch notebook's f(x), data to latent);
- `additive_coupling` (NICE): y = x + (1 - m) * t(x_a), log |det J| = 0.

`tanh_s` bounds s by a tanh before masking it (RealNVP's stabilizer). Both blocks output
`out` and `log_det` (one value per batch row), and lower their inverse with the same
parameters (`--direction inverse`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import BlockConfig, BlockContext, BlockType, Value, init

from .masks import MaskError, MaskKind, build_mask

_NAME = r"^[A-Za-z_0-9][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"


class NetCall(BlockConfig):
    """A coupling's s or t net: a template called on the kept entries x_a."""

    template: str = Field(
        description="A template (the spec's `blocks:` or a plugin's) mapping x_a to x's shape."
    )
    args: dict[str, Any] = Field(default_factory=dict, description="The template's arguments.")
    name: str | None = Field(
        None,
        pattern=_NAME,
        description="The net's state_dict prefix beside the coupling, in the scope that holds it "
        "(`s.3`, as RealNVP's `nn.ModuleList`); default `<coupling>.s` / `<coupling>.t`.",
    )


Net = str | NetCall  # a bare template name is short for `{template: NAME}`


class MaskBuffer(BlockConfig):
    buffer: str = Field(pattern=_NAME, description="The name of the buffer holding every coupling's mask.")
    row: int = Field(ge=0, description="This coupling's row in it.")
    rows: int = Field(ge=1, le=10_000, description="How many rows (couplings) the buffer has.")

    @model_validator(mode="after")
    def _row_inside(self) -> MaskBuffer:
        if self.row >= self.rows:
            raise ValueError(f"row {self.row} is outside the buffer's {self.rows} rows")
        return self


class MaskOptions(BlockConfig):
    mask: MaskKind | list[Any] = Field(
        description="halves | alternate | checkerboard | channel, or the binary mask itself (the input's "
        "shape without the batch dim); 1 = kept, 0 = transformed."
    )
    parity: Literal[0, 1] = Field(0, description="1 swaps kept and transformed entries.")
    mask_buffer: MaskBuffer | None = Field(
        None,
        description="Keep the mask as row `row` of one buffer shared by a flow's couplings (the "
        "real-nvp-pytorch notebook's `mask`); default: the coupling's own buffer `<coupling>.mask`.",
    )


class AffineCouplingConfig(MaskOptions):
    s: Net = Field(description="The scale net: a template name, or {template, args, name}.")
    t: Net = Field(description="The translation net: a template name, or {template, args, name}.")
    tanh_s: bool = Field(False, description="Apply tanh to s (before masking it).")
    form: Literal["affine", "inverse_affine"] = Field(
        "affine",
        description="affine: y = x * exp(s) + t; inverse_affine: y = (x - t) * exp(-s) (the notebook's f).",
    )


class AdditiveCouplingConfig(MaskOptions):
    t: Net = Field(description="The translation net: a template name, or {template, args, name}.")


def mask_array(ctx: BlockContext, config: MaskOptions, x: Value) -> np.ndarray:
    """The coupling's mask for input `x`, or a located error."""
    shape = x.type.shape[1:]
    if x.type.rank < 2 or not all(isinstance(d, int) for d in shape):
        raise ctx.error(f"a coupling needs [N, ...] inputs with static dims after N, got {ctx.describe(x)}")
    try:
        return build_mask(config.mask, config.parity, shape)
    except MaskError as error:
        raise ctx.error(str(error)) from None


def _mask_values(ctx: BlockContext, config: MaskOptions, x: Value) -> tuple[Value, Value]:
    """The kept mask m and 1 - m, as graph values (m is a buffer, so it is in the state_dict)."""
    array = mask_array(ctx, config, x)
    if config.mask_buffer is None:
        keep = ctx.param("mask", array.shape, init.from_array(array), trainable=False)
    else:
        stored = config.mask_buffer
        shape = (stored.rows, *array.shape)
        buffer = ctx.param("mask", shape, init.zeros(), trainable=False, tie=stored.buffer)
        row = ctx.constant(np.array(stored.row, dtype=np.int64), "row")
        keep = ctx.op("gather", buffer, row, axis=0)
    one = ctx.constant(np.array(1.0, dtype=np.float32), "one")
    return keep, ctx.op("sub", one, keep)


def _call_net(ctx: BlockContext, net: Net, local: str, x_kept: Value, x: Value) -> Value:
    call = NetCall(template=net) if isinstance(net, str) else net
    if call.name is None:
        out = ctx.block_call(call.template, call.args, [x_kept], name=local)
    else:
        with ctx.enclosing_scope():
            out = ctx.block_call(call.template, call.args, [x_kept], name=call.name)
    if out.type.shape != x.type.shape:
        raise ctx.error(
            f"the {local} net '{call.template}' maps {ctx.describe(x)} to {ctx.describe(out)}; "
            "a coupling's nets must keep the input's shape"
        )
    return out


def sum_per_row(ctx: BlockContext, value: Value) -> Value:
    """Sum over every dim but the batch dim: one log |det J| per example."""
    return ctx.op("reduce_sum", value, axes=tuple(range(1, value.type.rank)))


def zero_per_row(ctx: BlockContext, x: Value) -> Value:
    """A zero log |det J| per example (volume-preserving steps), shaped like the others."""
    zero = ctx.constant(np.array(0.0, dtype=np.float32), "zero")
    return sum_per_row(ctx, ctx.op("mul", x, zero))


def _scale_and_shift(
    ctx: BlockContext, config: AffineCouplingConfig, x: Value
) -> tuple[Value, Value, Value, Value]:
    keep, change = _mask_values(ctx, config, x)
    x_kept = ctx.op("mul", x, keep)
    s = _call_net(ctx, config.s, "s", x_kept, x)
    if config.tanh_s:
        s = ctx.op("tanh", s)
    s = ctx.op("mul", s, change)
    t = ctx.op("mul", _call_net(ctx, config.t, "t", x_kept, x), change)
    return x_kept, change, s, t


def _affine(
    ctx: BlockContext, x: Value, x_kept: Value, change: Value, s: Value, t: Value, up: bool
) -> dict[str, Value]:
    """up: x_a + (1 - m) (x exp(s) + t), log det sum(s); else x_a + (1 - m) (x - t) exp(-s), -sum(s)."""
    log_det = sum_per_row(ctx, s)
    if up:
        moved = ctx.op("add", ctx.op("mul", x, ctx.op("exp", s)), t)
    else:
        moved = ctx.op("mul", ctx.op("sub", x, t), ctx.op("exp", ctx.op("neg", s)))
        log_det = ctx.op("neg", log_det)
    return {"out": ctx.op("add", x_kept, ctx.op("mul", change, moved)), "log_det": log_det}


def _affine_forward(ctx: BlockContext, config: AffineCouplingConfig, inputs: list[Value]) -> dict[str, Value]:
    (x,) = inputs
    x_kept, change, s, t = _scale_and_shift(ctx, config, x)
    return _affine(ctx, x, x_kept, change, s, t, up=config.form == "affine")


def _affine_inverse(ctx: BlockContext, config: AffineCouplingConfig, inputs: list[Value]) -> dict[str, Value]:
    (y,) = inputs  # y_a = x_a: the nets see the same kept entries in both directions
    y_kept, change, s, t = _scale_and_shift(ctx, config, y)
    return _affine(ctx, y, y_kept, change, s, t, up=config.form != "affine")


def _additive(ctx: BlockContext, config: AdditiveCouplingConfig, x: Value, sign: str) -> dict[str, Value]:
    keep, change = _mask_values(ctx, config, x)
    x_kept = ctx.op("mul", x, keep)
    t = ctx.op("mul", _call_net(ctx, config.t, "t", x_kept, x), change)
    return {"out": ctx.op(sign, x, t), "log_det": zero_per_row(ctx, x)}


def _additive_forward(
    ctx: BlockContext, config: AdditiveCouplingConfig, inputs: list[Value]
) -> dict[str, Value]:
    return _additive(ctx, config, inputs[0], "add")


def _additive_inverse(
    ctx: BlockContext, config: AdditiveCouplingConfig, inputs: list[Value]
) -> dict[str, Value]:
    return _additive(ctx, config, inputs[0], "sub")


BLOCKS = [
    BlockType(
        "affine_coupling",
        AffineCouplingConfig,
        _affine_forward,
        "RealNVP affine coupling: y = x_a + (1 - m)(x exp(s(x_a)) + t(x_a)); outputs out and log_det.",
        outputs=("out", "log_det"),
        inverse=_affine_inverse,
    ),
    BlockType(
        "additive_coupling",
        AdditiveCouplingConfig,
        _additive_forward,
        "NICE additive coupling: y = x + (1 - m) t(x_a); log_det is 0.",
        outputs=("out", "log_det"),
        inverse=_additive_inverse,
    ),
]
