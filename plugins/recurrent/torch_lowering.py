"""Torch lowering of the recurrent ops: ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` submodules.

The module owns the op's weights under torch's own names, so the state_dict is exactly a
torch module's and torch checkpoints load unchanged. The common case reads as plain torch
(``y, (h, c) = self.lstm_0(x)``); padded batches go through `run_rnn`, which packs the
batch so that each sequence stops at its length and pads the outputs with zeros, as ONNX's
``sequence_lens`` does.
"""

from __future__ import annotations

from dlc.plugin_api import Node, TorchExpr, TorchWriter

from .cells import CELLS, RecurrentAttrs, node_weights, projection

RUN_RNN = '''
@torch.fx.wrap  # a leaf for torch.fx: packing cannot be traced
def run_rnn(rnn, x, state=None, lengths=None, weights=None):
    """Run a torch RNN module on `x`. With `lengths` ([N], int), `x` is a padded batch:
    each sequence stops at its length and outputs past it are zero (as ONNX's
    sequence_lens). With `weights`, the module runs with those tensors instead of its own."""
    total_length = x.size(1 if rnn.batch_first else 0)
    if lengths is not None:
        x = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=rnn.batch_first, enforce_sorted=False
        )
    if weights is None:
        y, state = rnn(x, state)
    else:
        y, state = torch.func.functional_call(rnn, weights, (x, state))
    if lengths is not None:
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=rnn.batch_first, total_length=total_length)
    return y, state
'''


def constructor(op: str, attrs: RecurrentAttrs, input_size: int, meta: bool = False) -> str:
    """``nn.LSTM(10, 20, num_layers=2, ...)``, only the options that differ from torch's defaults."""
    options = [str(input_size), str(attrs.hidden)]
    if attrs.layers != 1:
        options.append(f"num_layers={attrs.layers}")
    if getattr(attrs, "nonlinearity", "tanh") != "tanh":
        options.append(f"nonlinearity={attrs.nonlinearity!r}")
    if not attrs.bias:
        options.append("bias=False")
    if attrs.batch_first:
        options.append("batch_first=True")
    if attrs.dropout:
        options.append(f"dropout={attrs.dropout!r}")
    if attrs.bidirectional:
        options.append("bidirectional=True")
    if projection(attrs):
        options.append(f"proj_size={projection(attrs)}")
    if not meta:
        return f"{CELLS[op].torch_class}({', '.join(options)})"
    # Only a recipe, built in forward: the weights come from elsewhere, and its dropout
    # follows the model's training mode.
    options.append('device="meta"')
    mode = ".train(self.training)" if attrs.dropout else ""
    return f"{CELLS[op].torch_class}({', '.join(options)}){mode}"


def recurrent_to_torch(t: TorchWriter, node: Node) -> TorchExpr:
    x, lengths, h0, c0 = node.inputs[:4]
    assert x is not None
    input_size = int(x.type.shape[-1])
    weights = node_weights(node)
    module = t.module(node, constructor(node.op, node.attrs, input_size), weights)
    if h0 is None:
        state = None
    elif c0 is None:
        state = t.var(h0)
    else:
        state = f"({t.var(h0)}, {t.var(c0)})"
    unpack = "{0}, ({1}, {2})" if node.op == "lstm" else "{0}, {1}"
    if module and lengths is None:
        return TorchExpr(f"{module}({t.var(x)}{f', {state}' if state else ''})", unpack)
    t.helper("run_rnn", RUN_RNN)
    arguments = [module or constructor(node.op, node.attrs, input_size, meta=True), t.var(x)]
    if state:
        arguments.append(state)
    if lengths is not None:
        arguments.append(f"lengths={t.var(lengths)}")
    if not module:
        listed = ", ".join(f'"{name}": {t.var(value)}' for name, value in weights.items())
        arguments.append(f"weights={{{listed}}}")
    return TorchExpr(f"run_rnn({', '.join(arguments)})", unpack)
