"""The recurrent IR ops `rnn`, `lstm` and `gru`, with samples that cover every option
(layers, directions, batch-first, lengths, initial states, projection, module and
functional torch forms) for the registry-wide torch vs ONNX Runtime parity test."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import Node, OnnxBuilder, OpAttrs, OpDef, OpGroup, OpSample

from .cells import CELLS, LstmAttrs, RecurrentAttrs, RnnAttrs, infer, macs, projection, state_shapes
from .cells import weight_shapes as cell_weight_shapes
from .onnx_lowering import recurrent_to_onnx
from .onnx_scan import projected_lstm_to_onnx
from .torch_lowering import recurrent_to_torch

SAMPLE_FEATURES = 4


def _to_onnx(b: OnnxBuilder, node: Node) -> None:
    if projection(node.attrs):
        projected_lstm_to_onnx(b, node)
    else:
        recurrent_to_onnx(b, node)


def recurrent_sample(
    name: str,
    attrs: OpAttrs,
    weight_shapes: Iterable[tuple[int, ...]],
    *,
    bound: float,
    lengths: list[int] | None = None,
    initial_state: bool = False,
    cell_state: bool = False,
    module: bool = True,
    seed: int = 0,
) -> OpSample:
    """A sample with T = 5 steps, N = 3 sequences and 4 input features: x, lengths, h0, c0
    (those asked for), then weights of these shapes drawn from U(-bound, bound)."""
    rng = np.random.default_rng(seed)
    time, batch, features = 5, 3, SAMPLE_FEATURES
    x = rng.standard_normal((batch, time, features) if attrs.batch_first else (time, batch, features))
    h_shape, c_shape = state_shapes(attrs, batch)
    inputs: list[np.ndarray | None] = [
        x.astype(np.float32),
        np.array(lengths, dtype=np.int64) if lengths else None,
        rng.standard_normal(h_shape).astype(np.float32) if initial_state else None,
        rng.standard_normal(c_shape).astype(np.float32) if initial_state and cell_state else None,
    ]
    for shape in weight_shapes:
        inputs.append(rng.uniform(-bound, bound, shape).astype(np.float32))
    symbols = {0: {0: "N", 1: "T"} if attrs.batch_first else {0: "T", 1: "N"}, 1: {0: "N"}}
    symbols.update({2: {1: "N"}, 3: {1: "N"}})
    params = frozenset(range(4, len(inputs))) if module else frozenset()
    return OpSample(tuple(inputs), attrs.model_dump(), params=params, symbols=symbols, name=name)


def _sample(op: str, name: str, **options: Any) -> OpSample:
    sample_options = {
        k: options.pop(k) for k in ("lengths", "initial_state", "module", "seed") if k in options
    }
    attrs = {"rnn": RnnAttrs, "lstm": LstmAttrs}.get(op, RecurrentAttrs)(**options)
    shapes = cell_weight_shapes(CELLS[op], attrs, SAMPLE_FEATURES).values()
    bound = 1 / np.sqrt(attrs.hidden)
    return recurrent_sample(name, attrs, shapes, bound=bound, cell_state=op == "lstm", **sample_options)


def _rnn_samples() -> list[OpSample]:
    return [
        _sample("rnn", "tanh", hidden=6),
        _sample(
            "rnn",
            "relu-bidirectional-2-layers-lengths-batch-first",
            hidden=6,
            layers=2,
            bidirectional=True,
            batch_first=True,
            nonlinearity="relu",
            lengths=[5, 2, 3],
            seed=1,
        ),
        _sample("rnn", "initial-state-functional", hidden=6, initial_state=True, module=False, seed=2),
    ]


def _lstm_samples() -> list[OpSample]:
    return [
        _sample("lstm", "one-layer", hidden=6),
        _sample(
            "lstm",
            "bidirectional-2-layers-lengths-initial-state",
            hidden=6,
            layers=2,
            bidirectional=True,
            lengths=[4, 1, 3],
            initial_state=True,
            seed=1,
        ),
        _sample(
            "lstm",
            "batch-first-lengths-functional",
            hidden=6,
            batch_first=True,
            lengths=[2, 5, 3],
            module=False,
        ),
        _sample("lstm", "no-bias-dropout", hidden=6, layers=2, bias=False, dropout=0.3, seed=3),
        _sample("lstm", "projection", hidden=6, proj_size=4, seed=4),
        _sample(
            "lstm",
            "projection-bidirectional-2-layers-lengths-initial-state-batch-first",
            hidden=6,
            proj_size=3,
            layers=2,
            bidirectional=True,
            batch_first=True,
            lengths=[5, 2, 3],
            initial_state=True,
            seed=5,
        ),
        _sample(
            "lstm", "projection-no-bias-functional", hidden=6, proj_size=2, bias=False, module=False, seed=6
        ),
    ]


def _gru_samples() -> list[OpSample]:
    return [
        _sample("gru", "one-layer", hidden=6),
        _sample(
            "gru",
            "bidirectional-2-layers-lengths-initial-state-batch-first",
            hidden=6,
            layers=2,
            bidirectional=True,
            batch_first=True,
            lengths=[3, 5, 1],
            initial_state=True,
            seed=1,
        ),
        _sample("gru", "no-bias-functional", hidden=6, bias=False, module=False, seed=2),
    ]


def _op(name: str, attrs: type[RecurrentAttrs], samples, doc: str) -> OpDef:
    cell = CELLS[name]
    outputs = ("out", "h", "c") if name == "lstm" else ("out", "h")
    return OpDef(
        name,
        infer(cell),
        _to_onnx,
        recurrent_to_torch,
        samples,
        attrs,
        OpGroup.CONTRACTION,
        outputs=outputs,
        macs=macs,
        doc=doc,
    )


OPS = [
    _op("rnn", RnnAttrs, _rnn_samples, "Elman RNN stack: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."),
    _op("lstm", LstmAttrs, _lstm_samples, "LSTM stack (torch's nn.LSTM, optional projection)."),
    _op(
        "gru", RecurrentAttrs, _gru_samples, "GRU stack (torch's nn.GRU: reset gate after the W_hn product)."
    ),
]
