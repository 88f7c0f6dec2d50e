"""The `rnn`, `lstm` and `gru` blocks: options, input checks, torch's parameters.

Inputs, in order: the sequence, then the lengths (with ``lengths: true``), then the
initial state(s) (with ``initial_state: true``): ``in: [x, lengths, h0, c0]``. Outputs:
the sequence of outputs (the default port) and the final states as ports ``<id>.h`` and
``<id>.c`` (LSTM), shaped as torch's ``h_n`` / ``c_n``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from dlc.plugin_api import BlockConfig, BlockContext, BlockType, DType, OpAttrs, Value, format_shape, init

from .cells import CELLS, LstmAttrs, RecurrentAttrs, RnnAttrs, state_shapes, time_and_batch, weight_shapes


class RecurrentConfig(BlockConfig):
    hidden: int = Field(ge=1, description="Size of the hidden state.")
    layers: int = Field(1, ge=1, description="Stacked layers; each reads the previous layer's outputs.")
    bidirectional: bool = Field(False, description="Also run backwards; outputs concatenate both directions.")
    batch_first: bool = Field(
        False, description="Sequences are [N, T, features]; by default [T, N, features], as in torch."
    )
    bias: bool = Field(True, description="Biases bias_ih and bias_hh, as in torch.")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on each layer's outputs but the last (training only)."
    )
    lengths: bool = Field(
        False,
        description="The second input holds each sequence's length ([N], int64): a padded batch; "
        "outputs past a sequence's length are zero and its final state is taken at its last step.",
    )
    initial_state: bool = Field(
        False,
        description="The last input(s) hold the initial state h0 [layers * directions, N, hidden] "
        "(and c0 for lstm); zeros otherwise.",
    )

    @field_validator("dropout")
    @classmethod
    def _dropout_needs_layers(cls, dropout: float, info: ValidationInfo) -> float:
        if dropout and info.data.get("layers") == 1:
            raise ValueError("dropout applies between stacked layers and needs layers > 1")
        return dropout


class RnnConfig(RecurrentConfig):
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="The activation of the Elman cell.")


class LstmConfig(RecurrentConfig):
    proj_size: int = Field(
        0, ge=0, description="Project h to this size (LSTMP, torch's proj_size); 0: no projection."
    )

    @field_validator("proj_size")
    @classmethod
    def _projection_smaller(cls, size: int, info: ValidationInfo) -> int:
        hidden = info.data.get("hidden")
        if size and hidden is not None and size >= hidden:
            raise ValueError(f"proj_size ({size}) must be smaller than hidden ({hidden})")
        return size


def input_names(op: str, config: BlockConfig) -> list[str]:
    """The block's inputs in order, as its `lengths` and `initial_state` options ask."""
    names = ["x"]
    if config.lengths:
        names.append("lengths")
    if config.initial_state:
        names += ["h0", "c0"] if op in ("lstm", "lstmp") else ["h0"]
    return names


def named_inputs(ctx: BlockContext, op: str, config: BlockConfig, inputs: list[Value]) -> dict[str, Value]:
    """The inputs by name (x, lengths, h0, c0), or a located error if their count is wrong."""
    names = input_names(op, config)
    if len(inputs) != len(names):
        raise ctx.error(
            f"takes {len(names)} input(s) with these options ({', '.join(names)}), got {len(inputs)}",
            hint="list them with `in: [...]`; `lengths: true` and `initial_state: true` add inputs",
        )
    return dict(zip(names, inputs, strict=True))


def check_inputs(ctx: BlockContext, attrs: OpAttrs, named: dict[str, Value]) -> None:
    """Located errors naming the shapes, before any weight is made (`attrs`: a recurrent
    op's, with `batch_first` and the layers and sizes that shape its states)."""
    x = named["x"].type
    layout = "[N, T, features]" if attrs.batch_first else "[T, N, features] (or set batch_first: true)"
    if x.rank != 3:
        raise ctx.error(f"expects a 3-D input sequence {layout}, got {x}")
    if x.dtype is not DType.float32:
        raise ctx.error(f"expects a float32 input sequence, got {x}")
    if not isinstance(x.shape[-1], int):
        raise ctx.error(f"the feature dim of the input must be static, got {x}")
    time, batch = time_and_batch(attrs, x)
    if "lengths" in named:
        lengths = named["lengths"]
        if lengths.type.dtype not in (DType.int64, DType.int32):
            raise ctx.error(
                f"sequence lengths must be integers (int64), got {lengths.type}",
                hint="declare the input with dtype: int64",
            )
        if lengths.type.shape != (batch,):
            raise ctx.error(
                f"sequence lengths must be [{batch}] (one per sequence of {x}), got {lengths.type}"
            )
        if isinstance(time, int):
            ctx.note_input_range(lengths, 1, time + 1)
    h_shape, c_shape = state_shapes(attrs, batch)
    for name, shape in (("h0", h_shape), ("c0", c_shape)):
        state = named.get(name)
        if state is not None and (state.type.shape != shape or state.type.dtype is not DType.float32):
            raise ctx.error(
                f"the initial state {name} must be float32{format_shape(shape)} "
                f"([layers * directions, N, {shape[-1]}]), got {state.type}"
            )


def _lower(op: str, attrs_type: type[RecurrentAttrs]):
    def lower(ctx: BlockContext, config: RecurrentConfig, inputs: list[Value]) -> dict[str, Value]:
        named = named_inputs(ctx, op, config, inputs)
        options = config.model_dump(exclude={"lengths", "initial_state"})
        attrs = attrs_type(**options)
        check_inputs(ctx, attrs, named)
        directions = 2 if config.bidirectional else 1
        ctx.reserve(config.layers * directions * (4 if config.bias else 2) + 1, f"{config.layers:,} layers")
        features = int(named["x"].type.shape[-1])
        bound = 1.0 / math.sqrt(config.hidden)  # torch: every weight and bias U(-1/sqrt(h), 1/sqrt(h))
        weights = [
            ctx.param(name, shape, init.uniform(bound))
            for name, shape in weight_shapes(CELLS[op], attrs, features).items()
        ]
        state = [named.get("h0"), named.get("c0")]
        outputs = ctx.ops(op, [named["x"], named.get("lengths"), *state, *weights], **options)
        return dict(zip(("out", "h", "c"), outputs, strict=False))

    return lower


def _block(op: str, config: type[RecurrentConfig], attrs: type[RecurrentAttrs], summary: str) -> BlockType:
    lstm = op == "lstm"
    ports = ("out", "h", "c") if lstm else ("out", "h")
    doc = (
        f"{summary}; outputs the sequence (default port) and the final states "
        f"{', '.join(f'`<id>.{p}`' for p in ports[1:])}, with {CELLS[op].torch_class}'s parameters."
    )
    return BlockType(
        op, config, _lower(op, attrs), doc, inputs=(1, 4 if lstm else 3), outputs=ports, shorthand="hidden"
    )


BLOCKS = [
    _block("rnn", RnnConfig, RnnAttrs, "Elman RNN stack, h_t = tanh|relu(W_ih x_t + W_hh h_{t-1} + b)"),
    _block("lstm", LstmConfig, LstmAttrs, "LSTM stack, optionally projected (LSTMP)"),
    _block("gru", RecurrentConfig, RecurrentAttrs, "GRU stack"),
]
