"""ONNX lowering of an LSTM with a projection (LSTMP, torch's ``proj_size``) as a ``Scan``.

ONNX's ``LSTM`` op has no projection, so each layer and direction is one ``Scan`` over
time whose body is one step of torch's cell (gates in torch's order, no reordering):

    gates = x_t W_ih^T + b_ih + b_hh + h W_hh^T         (x W_ih^T for all steps at once, outside)
    i, f, g, o = split(gates)
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h' = (sigmoid(o) * tanh(c')) W_hr^T

`lstmp` (bilm-tf's cell) runs the same step with one bias, and may clip c' and h'. The
graph has the same ops for every T: no Python-level loop over time. The backward
direction scans in reverse (``scan_input_directions`` / ``scan_output_directions``).
With per-sequence lengths, a mask ``t < length`` is scanned along: past a sequence's
length its state is kept and its output is zero. Keeping the state is what makes the
reverse scan start each sequence at its own last step, as torch's packed sequences do.
"""

from __future__ import annotations

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import Node, OnnxBuilder

from .cells import directions, node_weights, projection, suffix
from .onnx_lowering import finish_outputs, time_first


def transposed(b: OnnxBuilder, weight: str) -> str:
    return b.op("Transpose", [weight], perm=[1, 0])[0]


def step_mask(b: OnnxBuilder, sequence: str, lengths: str) -> str:
    """[T, N, 1] bool: t < length of sequence n."""
    from onnx import TensorProto  # onnx is imported when a model is emitted, not at start-up

    steps = b.op("Squeeze", [b.op("Shape", [sequence], start=0, end=1)[0]])[0]
    zero = b.constant(np.array(0, dtype=np.int64), "zero")
    one = b.constant(np.array(1, dtype=np.int64), "one")
    positions = b.op("Range", [zero, steps, one])[0]
    positions = b.op("Unsqueeze", [positions, b.int64s([1], "axes")])[0]
    lengths = b.op("Cast", [lengths], to=TensorProto.INT64)[0]
    mask = b.op("Less", [positions, lengths])[0]  # [T, 1] < [N] -> [T, N]
    return b.op("Unsqueeze", [mask, b.int64s([2], "axes")])[0]


def zeros_state(b: OnnxBuilder, sequence: str, size: int) -> str:
    """[N, size] zeros, N read from the [T, N, features] sequence."""
    from onnx import TensorProto, helper  # onnx is imported when a model is emitted, not at start-up

    batch = b.op("Shape", [sequence], start=1, end=2)[0]
    shape = b.op("Concat", [batch, b.int64s([size], "size")], axis=0)[0]
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    return b.op("ConstantOfShape", [shape], value=zero)[0]


def clip(b: OnnxBuilder, value: str, bound: float | None) -> str:
    """value clipped to [-bound, bound] (unchanged without a bound)."""
    if bound is None:
        return value
    low = b.constant(np.array(-bound, dtype=np.float32), "clip_min")
    high = b.constant(np.array(bound, dtype=np.float32), "clip_max")
    return b.op("Clip", [value, low, high])[0]


def scan_direction(
    b: OnnxBuilder,
    gates_x: str,
    mask: str | None,
    weight_hh_t: str,
    weight_hr_t: str,
    initial: tuple[str, str],
    hidden: int,
    reverse: bool,
    cell_clip: float | None = None,
    proj_clip: float | None = None,
) -> list[str]:
    """One direction of one layer: returns [h_last, c_last, y] (y: [T, N, p]). With
    clips (bilm-tf's cell), c' and h' are clipped to [-clip, clip] after each step."""
    from onnx import TensorProto, helper  # onnx is imported when a model is emitted, not at start-up

    h, c, x_t = b.fresh("h"), b.fresh("c"), b.fresh("gates_x_t")
    m_t = b.fresh("mask_t")
    with b.subgraph() as nodes:
        gates = b.op("Add", [x_t, b.op("MatMul", [h, weight_hh_t])[0]])[0]
        sizes = b.int64s([hidden] * 4, "gate_sizes")
        i, f, g, o = b.op("Split", [gates, sizes], 4, axis=1)
        kept = b.op("Mul", [b.op("Sigmoid", [f])[0], c])[0]
        added = b.op("Mul", [b.op("Sigmoid", [i])[0], b.op("Tanh", [g])[0]])[0]
        c_next = clip(b, b.op("Add", [kept, added])[0], cell_clip)
        out = b.op("Mul", [b.op("Sigmoid", [o])[0], b.op("Tanh", [c_next])[0]])[0]
        h_next = clip(b, b.op("MatMul", [out, weight_hr_t])[0], proj_clip)
        if mask is None:
            y_t = b.op("Identity", [h_next])[0]
        else:
            zero = b.constant(np.array(0.0, dtype=np.float32), "zero")
            y_t = b.op("Where", [m_t, h_next, zero])[0]
            h_next = b.op("Where", [m_t, h_next, h])[0]
            c_next = b.op("Where", [m_t, c_next, c])[0]
    floats = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in (h, c, x_t)]
    inputs = floats + ([helper.make_tensor_value_info(m_t, TensorProto.BOOL, None)] if mask else [])
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in (h_next, c_next, y_t)]
    body = helper.make_graph(nodes, b.fresh("lstm_step"), inputs, outputs)
    scanned = [gates_x, mask] if mask else [gates_x]
    order = [1 if reverse else 0]
    return b.op(
        "Scan",
        [*initial, *scanned],
        3,
        body=body,
        num_scan_inputs=len(scanned),
        scan_input_directions=order * len(scanned),
        scan_output_directions=order,
    )


def projected_lstm_to_onnx(b: OnnxBuilder, node: Node) -> None:
    attrs = node.attrs
    hidden, size, count = attrs.hidden, projection(attrs), directions(attrs)
    _, lengths, h0, c0 = node.inputs[:4]
    weights = {name: b.name(value) for name, value in node_weights(node).items()}
    sequence = time_first(b, node)
    mask = step_mask(b, sequence, b.name(lengths)) if lengths is not None else None
    finals: list[list[str]] = [[], []]
    for layer in range(attrs.layers):
        outputs = []
        for direction in range(count):
            end = suffix(layer, direction)
            gates_x = b.op("MatMul", [sequence, transposed(b, weights[f"weight_ih{end}"])])[0]
            if attrs.bias:
                bias = b.op("Add", [weights[f"bias_ih{end}"], weights[f"bias_hh{end}"]])[0]
                gates_x = b.op("Add", [gates_x, bias])[0]
            index = b.constant(np.array(layer * count + direction, dtype=np.int64), "index")
            initial = tuple(
                b.op("Gather", [b.name(state), index], axis=0)[0]  # a scalar index drops the axis
                if state is not None
                else zeros_state(b, sequence, width)
                for state, width in ((h0, size), (c0, hidden))
            )
            h_last, c_last, y = scan_direction(
                b,
                gates_x,
                mask,
                transposed(b, weights[f"weight_hh{end}"]),
                transposed(b, weights[f"weight_hr{end}"]),
                initial,
                hidden,
                reverse=direction == 1,
            )
            outputs.append(y)
            axes = b.int64s([0], "axes")
            finals[0].append(b.op("Unsqueeze", [h_last, axes])[0])
            finals[1].append(b.op("Unsqueeze", [c_last, axes])[0])
        sequence = outputs[0] if count == 1 else b.op("Concat", outputs, axis=2)[0]
    finish_outputs(b, node, sequence, finals)
