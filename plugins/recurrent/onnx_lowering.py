"""ONNX lowering of the recurrent ops with ONNX's own ``RNN`` / ``LSTM`` / ``GRU``.

One ONNX op per layer, both directions in it (``direction="bidirectional"``). The
initializers are torch's tensors under torch's names; each layer's ``W``, ``R`` and
``B`` are built from them in the graph:

    W = stack over directions of reorder(weight_ih)          [D, G*h, i]
    R = stack over directions of reorder(weight_hh)          [D, G*h, h]
    B = stack over directions of concat(reorder(bias_ih), reorder(bias_hh))   [D, 2*G*h]

where `reorder` (Split + Concat) puts torch's gate blocks in ONNX's order: LSTM i,f,g,o ->
i,o,f,c; GRU r,z,n -> z,r,h (with ``linear_before_reset=1``, which is torch's GRU: the
reset gate multiplies ``W_hn h + b_hn``). The subgraph depends on initializers only, so
ONNX Runtime folds it into constants when the session starts: the file carries each
weight once, under the name torch and `--weights` use, and inference pays nothing.

ONNX Runtime rejects ``layout=1`` (batch-first), so batch-first sequences are transposed
around the ops. Per-sequence lengths become ``sequence_lens`` (int32): outputs past a
sequence's length are zero and ``Y_h`` is its state at its last step, as with torch's
packed sequences. An LSTM with a projection has no ONNX op: `onnx_scan` lowers it.
"""

from __future__ import annotations

from dlc.plugin_api import Node, OnnxBuilder

from .cells import CELLS, Cell, directions, node_weights, suffix


def to_gate_order(b: OnnxBuilder, tensor: str, cell: Cell, hidden: int) -> str:
    """Reorder the gate blocks along dim 0 from torch's order to ONNX's."""
    if cell.onnx_gate_order == tuple(range(cell.gates)):
        return tensor
    sizes = b.int64s([hidden] * cell.gates, "gate_sizes")
    blocks = b.op("Split", [tensor, sizes], cell.gates, axis=0)
    return b.op("Concat", [blocks[i] for i in cell.onnx_gate_order], axis=0)[0]


def stack(b: OnnxBuilder, tensors: list[str]) -> str:
    """Stack along a new leading (direction) axis."""
    axes = b.int64s([0], "axes")
    expanded = [b.op("Unsqueeze", [t, axes])[0] for t in tensors]
    return expanded[0] if len(expanded) == 1 else b.op("Concat", expanded, axis=0)[0]


def time_first(b: OnnxBuilder, node: Node) -> str:
    """The input sequence as [T, N, features] (ONNX Runtime supports only ``layout=0``)."""
    x = b.name(node.inputs[0])
    return b.op("Transpose", [x], perm=[1, 0, 2])[0] if node.attrs.batch_first else x


def finish_outputs(b: OnnxBuilder, node: Node, sequence: str, states: list[list[str]]) -> None:
    """Write the op's outputs: y in the input's layout, each state stacked over layers."""
    outputs = b.outputs(node)
    if node.attrs.batch_first:
        b.op("Transpose", [sequence], [outputs[0]], perm=[1, 0, 2])
    else:
        b.op("Identity", [sequence], [outputs[0]])
    for per_layer, name in zip(states, outputs[1:], strict=True):
        if len(per_layer) == 1:
            b.op("Identity", per_layer, [name])
        else:
            b.op("Concat", per_layer, [name], axis=0)


def recurrent_to_onnx(b: OnnxBuilder, node: Node) -> None:
    from onnx import TensorProto  # onnx is imported when a model is emitted, not at start-up

    cell = CELLS[node.op]
    attrs = node.attrs
    hidden, count = attrs.hidden, directions(attrs)
    _, lengths, h0, c0 = node.inputs[:4]
    weights = {name: b.name(value) for name, value in node_weights(node).items()}
    sequence = time_first(b, node)
    sequence_lens = b.op("Cast", [b.name(lengths)], to=TensorProto.INT32)[0] if lengths is not None else ""
    options: dict = {"hidden_size": hidden, "direction": "bidirectional" if count == 2 else "forward"}
    if cell.op == "gru":
        options["linear_before_reset"] = 1
    if cell.op == "rnn":
        options["activations"] = [attrs.nonlinearity.capitalize()] * count
    states: list[list[str]] = [[] for _ in range(2 if cell.op == "lstm" else 1)]
    for layer in range(attrs.layers):
        ends = [suffix(layer, d) for d in range(count)]
        w = stack(b, [to_gate_order(b, weights[f"weight_ih{e}"], cell, hidden) for e in ends])
        r = stack(b, [to_gate_order(b, weights[f"weight_hh{e}"], cell, hidden) for e in ends])
        bias = ""
        if attrs.bias:
            biases = [
                b.op(
                    "Concat",
                    [to_gate_order(b, weights[f"bias_{kind}{e}"], cell, hidden) for kind in ("ih", "hh")],
                    axis=0,
                )[0]
                for e in ends
            ]
            bias = stack(b, biases)
        initial = []
        for state in (h0, c0) if cell.op == "lstm" else (h0,):
            if state is None:
                initial.append("")
                continue
            bounds = [b.int64s([layer * count], "start"), b.int64s([(layer + 1) * count], "end")]
            initial.append(b.op("Slice", [b.name(state), *bounds])[0])
        results = b.op(
            cell.onnx_op, [sequence, w, r, bias, sequence_lens, *initial], 1 + len(states), **options
        )
        for per_layer, final in zip(states, results[1:], strict=True):
            per_layer.append(final)
        # Y is [T, D, N, h]; the next layer (and the output) reads [T, N, D*h].
        if count == 1:
            sequence = b.op("Squeeze", [results[0], b.int64s([1], "axes")])[0]
        else:
            merged = b.op("Transpose", [results[0]], perm=[0, 2, 1, 3])[0]
            sequence = b.op("Reshape", [merged, b.int64s([0, 0, count * hidden], "shape")])[0]
    finish_outputs(b, node, sequence, states)
