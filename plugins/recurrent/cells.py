"""The recurrent IR ops' shared facts: cell kinds, attributes, torch's weight layout,
shape inference and MACs.

A recurrent op holds torch's parameters exactly: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}`` (and ``weight_hr_l{k}`` for an LSTM with projection),
``..._reverse`` for the backward direction, gates stacked in torch's order (LSTM i, f, g,
o; GRU r, z, n). The torch lowering hands them to ``nn.RNN/LSTM/GRU`` unchanged; the ONNX
lowering reorders gates for ONNX's ops.

Inputs of every recurrent op, in order: ``x``, ``lengths?``, ``h0?``, ``c0?`` (LSTM only),
then the weights in torch's ``_flat_weights`` order (layer by layer, forward before
reverse). Outputs: ``y``, ``h_n``, and ``c_n`` for the LSTM, shaped as torch's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from dlc.plugin_api import Dim, DType, Node, OpAttrs, TensorType, Value, format_shape, product, require

FIRST_WEIGHT = 4  # inputs before the weights: x, lengths, h0, c0


@dataclass(frozen=True)
class Cell:
    """One kind of recurrent cell. `onnx_gate_order` lists torch's gate blocks in the
    order ONNX's op expects them."""

    op: str
    gates: int
    onnx_op: str
    onnx_gate_order: tuple[int, ...]
    torch_class: str


CELLS = {
    "rnn": Cell("rnn", 1, "RNN", (0,), "nn.RNN"),
    "lstm": Cell("lstm", 4, "LSTM", (0, 3, 1, 2), "nn.LSTM"),  # torch i f g o -> ONNX i o f c
    "gru": Cell("gru", 3, "GRU", (1, 0, 2), "nn.GRU"),  # torch r z n -> ONNX z r h
}


class RecurrentAttrs(OpAttrs):
    hidden: int = Field(ge=1)
    layers: int = Field(1, ge=1)
    bidirectional: bool = False
    batch_first: bool = False
    bias: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # between layers, in training only


class RnnAttrs(RecurrentAttrs):
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class LstmAttrs(RecurrentAttrs):
    proj_size: int = Field(0, ge=0)


def directions(attrs: RecurrentAttrs) -> int:
    return 2 if attrs.bidirectional else 1


def projection(attrs: RecurrentAttrs) -> int:
    return getattr(attrs, "proj_size", 0)


def output_size(attrs: RecurrentAttrs) -> int:
    """Size of h (and of each direction's output): the projection size if any."""
    return projection(attrs) or attrs.hidden


def suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def weight_shapes(cell: Cell, attrs: RecurrentAttrs, input_size: int) -> dict[str, tuple[int, ...]]:
    """torch's parameters of this cell stack, in `_flat_weights` order, with their shapes."""
    gates = cell.gates * attrs.hidden
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(attrs.layers):
        layer_input = input_size if layer == 0 else directions(attrs) * output_size(attrs)
        for direction in range(directions(attrs)):
            end = suffix(layer, direction)
            shapes[f"weight_ih{end}"] = (gates, layer_input)
            shapes[f"weight_hh{end}"] = (gates, output_size(attrs))
            if attrs.bias:
                shapes[f"bias_ih{end}"] = (gates,)
                shapes[f"bias_hh{end}"] = (gates,)
            if projection(attrs):
                shapes[f"weight_hr{end}"] = (projection(attrs), attrs.hidden)
    return shapes


def node_weights(node: Node) -> dict[str, Value]:
    """torch parameter name -> the op's weight input."""
    x = node.inputs[0]
    assert x is not None
    names = weight_shapes(CELLS[node.op], node.attrs, int(x.type.shape[-1]))
    weights = node.inputs[FIRST_WEIGHT:]
    assert all(w is not None for w in weights) and len(weights) == len(names)
    return dict(zip(names, weights, strict=True))  # type: ignore[arg-type]


def time_and_batch(attrs: RecurrentAttrs, x: TensorType) -> tuple[Dim, Dim]:
    return (x.shape[1], x.shape[0]) if attrs.batch_first else (x.shape[0], x.shape[1])


def state_shapes(attrs: RecurrentAttrs, batch: Dim) -> tuple[tuple[Dim, ...], tuple[Dim, ...]]:
    """Shapes of h0/h_n and of c0/c_n: [layers * directions, N, size], as torch's."""
    stack = attrs.layers * directions(attrs)
    return (stack, batch, output_size(attrs)), (stack, batch, attrs.hidden)


def infer(cell: Cell):
    def infer_types(attrs: RecurrentAttrs, inputs: Sequence[TensorType | None]) -> list[TensorType]:
        padded = [*inputs, None, None, None, None]
        x, lengths, h0, c0 = padded[:FIRST_WEIGHT]
        require(x is not None, f"{cell.op} needs an input sequence")
        assert x is not None
        layout = "[N, T, features]" if attrs.batch_first else "[T, N, features]"
        require(x.rank == 3, f"{cell.op} expects a 3-D input {layout}, got {x}")
        require(x.dtype is DType.float32, f"{cell.op} expects a float32 input, got {x}")
        require(isinstance(x.shape[-1], int), f"{cell.op}: the feature dim must be static, got {x}")
        require(cell.op == "lstm" or not projection(attrs), "only the lstm has a projection")
        _, batch = time_and_batch(attrs, x)
        expected = weight_shapes(cell, attrs, int(x.shape[-1]))
        weights = list(inputs[FIRST_WEIGHT:])
        require(
            len(weights) == len(expected), f"{cell.op} expects {len(expected)} weights, got {len(weights)}"
        )
        for (name, shape), weight in zip(expected.items(), weights, strict=True):
            require(weight is not None, f"{cell.op}: weight {name} is missing")
            assert weight is not None
            require(
                weight.shape == shape and weight.dtype == x.dtype,
                f"{cell.op}: {name} must be float32{list(shape)}, got {weight}",
            )
        if lengths is not None:
            require(
                lengths.dtype in (DType.int64, DType.int32) and lengths.shape == (batch,),
                f"{cell.op}: sequence lengths must be int64 [{batch}] (one per sequence), got {lengths}",
            )
        h_shape, c_shape = state_shapes(attrs, batch)
        if h0 is not None:
            require(
                h0.shape == h_shape and h0.dtype == x.dtype,
                f"{cell.op}: the initial state h0 must be float32{format_shape(h_shape)} "
                f"([layers * directions, batch, size]), got {h0}",
            )
        if cell.op == "lstm":
            require((h0 is None) == (c0 is None), "lstm: give both initial states h0 and c0, or neither")
            if c0 is not None:
                require(
                    c0.shape == c_shape and c0.dtype == x.dtype,
                    f"lstm: the initial cell state c0 must be float32{format_shape(c_shape)}, got {c0}",
                )
        else:
            require(c0 is None, f"{cell.op} has no cell state c0")
        features = directions(attrs) * output_size(attrs)
        y = x.with_shape([*x.shape[:2], features])
        states = [TensorType(x.dtype, h_shape)]
        if cell.op == "lstm":
            states.append(TensorType(x.dtype, c_shape))
        return [y, *states]

    return infer_types


def macs(node: Node) -> Dim:
    """Each weight matrix is applied once per step and sequence: T * N * sum(rows * cols)
    (the reference's ``seq_len * G*h*(i+h)`` per layer and direction, plus ``p*h`` for a
    projection). Padded steps are counted: the op's work does not depend on the lengths."""
    x = node.inputs[0]
    assert x is not None
    time, batch = time_and_batch(node.attrs, x.type)
    per_step = sum(
        int(product(w.type.shape)) for name, w in node_weights(node).items() if name.startswith("weight")
    )
    return time * batch * per_step
