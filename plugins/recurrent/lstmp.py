"""The `lstmp` block and op: one direction of an LSTM with a projection, one bias vector
and optional clipping, as bilm-tf's / AllenNLP's ``LstmCellWithProjection`` (ELMo's cell).

    gates = W_in x_t + W_state h + b                 i, f, g, o = split(gates)  (torch's order)
    c' = clip(sigmoid(f) c + sigmoid(i) tanh(g), cell_clip)
    h' = clip(W_proj (sigmoid(o) tanh(c')), proj_clip)

Parameters carry AllenNLP's names, so an AllenNLP ELMo state_dict's
``forward_layer_0.*`` keys load under a layer id ``forward_layer_0``:
``input_linearity.weight`` [4h, i], ``state_linearity.weight`` [4h, p],
``state_linearity.bias`` [4h], ``state_projection.weight`` [p, h]. 4h(i + p + 1) + ph
parameters, 4h fewer than torch's ``nn.LSTM(i, h, proj_size=p)``, which has two biases and
cannot clip (that is the `lstm` block); ``input_bias: true`` adds torch's second bias as
``input_linearity.bias`` (b_ih; ``state_linearity.bias`` is then b_hh). Initialization
is AllenNLP's: each [h, i] and [h, p] gate block of the two weights orthogonal, the bias
zero but 1 for the forget gate, the projection as torch's ``nn.Linear``.

Inputs and outputs as `lstm`'s with one layer and one direction: ``in: [x, lengths?,
h0?, c0?]``, the sequence and ports ``<id>.h`` [1, N, p] and ``<id>.c`` [1, N, h].
``reverse: true`` reads each sequence from its last step (its own, with lengths) to the
first: ELMo's backward language model. ONNX: a ``Scan`` (onnx_scan.py); torch: the
step-by-step `lstmp` helper (a loop over time, as any LSTM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    Dim,
    DType,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchExpr,
    TorchWriter,
    Value,
    format_shape,
    init,
    require,
)

from .blocks import check_inputs, named_inputs
from .cells import state_shapes, time_and_batch
from .onnx_lowering import finish_outputs, time_first
from .onnx_scan import scan_direction, step_mask, transposed, zeros_state
from .ops import SAMPLE_FEATURES, recurrent_sample

FIRST_WEIGHT = 4  # inputs before the weights: x, lengths, h0, c0


class LstmpAttrs(OpAttrs):
    layers: ClassVar[int] = 1  # for the state shapes shared with rnn/lstm/gru: [1, N, size]
    bidirectional: ClassVar[bool] = False

    hidden: int = Field(ge=1)
    proj_size: int = Field(ge=1)
    reverse: bool = False
    cell_clip: float | None = Field(None, gt=0)
    proj_clip: float | None = Field(None, gt=0)
    batch_first: bool = False
    input_bias: bool = False


class LstmpConfig(BlockConfig):
    hidden: int = Field(ge=1, description="Size of the cell state c (bilm-tf's dim).")
    proj_size: int = Field(ge=1, description="Size of the projected output and state h (projection_dim).")
    reverse: bool = Field(False, description="Run from each sequence's last step to its first.")
    cell_clip: float | None = Field(None, gt=0, description="Clip c to [-cell_clip, cell_clip] at each step.")
    proj_clip: float | None = Field(None, gt=0, description="Clip h to [-proj_clip, proj_clip] at each step.")
    batch_first: bool = Field(
        False, description="Sequences are [N, T, features]; by default [T, N, features], as in torch."
    )
    input_bias: bool = Field(
        False,
        description="Also a bias on the input projection (input_linearity.bias): two bias vectors, "
        "as torch's nn.LSTM (4 * hidden more parameters).",
    )
    lengths: bool = Field(
        False, description="The second input holds each sequence's length ([N], int64): a padded batch."
    )
    initial_state: bool = Field(
        False, description="The last inputs hold h0 [1, N, proj_size] and c0 [1, N, hidden]; zeros otherwise."
    )


def weight_shapes(attrs: LstmpAttrs, features: int) -> dict[str, tuple[int, ...]]:
    """The op's weights in input order, by their names (AllenNLP's) under the layer."""
    gates = 4 * attrs.hidden
    shapes: dict[str, tuple[int, ...]] = {"input_linearity.weight": (gates, features)}
    if attrs.input_bias:
        shapes["input_linearity.bias"] = (gates,)
    shapes["state_linearity.weight"] = (gates, attrs.proj_size)
    shapes["state_linearity.bias"] = (gates,)
    shapes["state_projection.weight"] = (attrs.proj_size, attrs.hidden)
    return shapes


def node_weights(node: Node) -> dict[str, Value]:
    x = node.inputs[0]
    assert x is not None
    names = weight_shapes(node.attrs, int(x.type.shape[-1]))
    return dict(zip(names, node.inputs[FIRST_WEIGHT:], strict=True))  # type: ignore[arg-type]


# -- initialization (AllenNLP's reset_parameters) ----------------------------------------------


def block_orthogonal(block_rows: int):
    """Each [block_rows, cols] row block an orthogonal matrix (torch's orthogonal_: the Q of
    a standard normal draw's QR, signs fixed by R's diagonal)."""

    def orthogonalize(values: np.ndarray) -> np.ndarray:
        # Each block's QR in float64, its signed Q rounded once into the result, which has
        # the draw's dtype (float32 for a float32 weight: the values a cast of the float64 Q
        # gives). Block by block, so no float64 copy of the whole weight is made.
        if values.shape[0] % block_rows:
            raise ValueError(f"{values.shape[0]} rows do not split into blocks of {block_rows}")
        result = np.empty(values.shape, dtype=values.dtype)
        for start in range(0, values.shape[0], block_rows):
            block = values[start : start + block_rows].astype(np.float64)
            tall = block if block.shape[0] >= block.shape[1] else block.T
            q, r = np.linalg.qr(tall)
            signs = np.sign(np.diag(r))
            signed = (q, signs) if tall is block else (q.T, signs[:, None])
            np.multiply(*signed, out=result[start : start + block_rows], casting="unsafe")
        return result

    return orthogonalize


def forget_gate_bias(hidden: int) -> init.Init:
    """Zeros with ones on the forget gate's block [hidden, 2 * hidden), made when the
    weights are (not when the spec is lowered, where a huge `hidden` would allocate)."""

    def open_forget_gate(values: np.ndarray) -> np.ndarray:
        values[hidden : 2 * hidden] = 1.0
        return values

    return init.transformed(init.zeros(), "forget_gate_ones", open_forget_gate)


def initializers(attrs: LstmpAttrs) -> dict[str, init.Init]:
    orthogonal = init.transformed(
        init.normal(1.0), f"block_orthogonal[{attrs.hidden}]", block_orthogonal(attrs.hidden)
    )
    return {
        "input_linearity.weight": orthogonal,
        "input_linearity.bias": init.zeros(),
        "state_linearity.weight": orthogonal,
        "state_linearity.bias": forget_gate_bias(attrs.hidden),
        "state_projection.weight": init.fan_in_uniform(attrs.hidden),
    }


# -- the block ---------------------------------------------------------------------------


def _lower(ctx: BlockContext, config: LstmpConfig, inputs: list[Value]) -> dict[str, Value]:
    named = named_inputs(ctx, "lstmp", config, inputs)
    attrs = LstmpAttrs(**config.model_dump(exclude={"lengths", "initial_state"}))
    check_inputs(ctx, attrs, named)
    features = int(named["x"].type.shape[-1])
    inits = initializers(attrs)
    weights = [ctx.param(name, shape, inits[name]) for name, shape in weight_shapes(attrs, features).items()]
    state = [named.get("h0"), named.get("c0")]
    outputs = ctx.ops("lstmp", [named["x"], named.get("lengths"), *state, *weights], **attrs.model_dump())
    return dict(zip(("out", "h", "c"), outputs, strict=True))


BLOCKS = [
    BlockType(
        "lstmp",
        LstmpConfig,
        _lower,
        "One-direction LSTM with a projection, one bias and optional clipping (bilm-tf's / AllenNLP's "
        "LstmCellWithProjection, ELMo); outputs the sequence and the final states `<id>.h`, `<id>.c`.",
        inputs=(1, 4),
        outputs=("out", "h", "c"),
        shorthand="hidden",
    )
]


# -- the op ------------------------------------------------------------------------------


def _infer(attrs: LstmpAttrs, inputs: Sequence[TensorType | None]) -> list[TensorType]:
    x, lengths, h0, c0 = [*inputs, None, None, None, None][:FIRST_WEIGHT]
    require(x is not None, "lstmp needs an input sequence")
    assert x is not None
    layout = "[N, T, features]" if attrs.batch_first else "[T, N, features]"
    require(x.rank == 3 and x.dtype is DType.float32, f"lstmp expects a float32 {layout} input, got {x}")
    require(isinstance(x.shape[-1], int), f"lstmp: the feature dim must be static, got {x}")
    expected = weight_shapes(attrs, int(x.shape[-1]))
    weights = inputs[FIRST_WEIGHT:]
    require(len(weights) == len(expected), f"lstmp expects {len(expected)} weights, got {len(weights)}")
    for (name, shape), weight in zip(expected.items(), weights, strict=True):
        require(
            weight is not None and weight.shape == shape and weight.dtype is DType.float32,
            f"lstmp: {name} must be float32{list(shape)}, got {weight}",
        )
    _, batch = time_and_batch(attrs, x)
    if lengths is not None:
        require(
            lengths.dtype in (DType.int64, DType.int32) and lengths.shape == (batch,),
            f"lstmp: sequence lengths must be int64 [{batch}], got {lengths}",
        )
    require((h0 is None) == (c0 is None), "lstmp: give both initial states h0 and c0, or neither")
    h_shape, c_shape = state_shapes(attrs, batch)
    for name, state, shape in (("h0", h0, h_shape), ("c0", c0, c_shape)):
        require(
            state is None or (state.shape == shape and state.dtype is DType.float32),
            f"lstmp: the initial state {name} must be float32{format_shape(shape)}, got {state}",
        )
    return [
        x.with_shape([*x.shape[:2], attrs.proj_size]),
        TensorType(x.dtype, h_shape),
        TensorType(x.dtype, c_shape),
    ]


def _macs(node: Node) -> Dim:
    """T * N * (4h i + 4h p + p h): every weight matrix once per step and sequence."""
    x = node.inputs[0]
    assert x is not None
    time, batch = time_and_batch(node.attrs, x.type)
    per_step = sum(
        int(math.prod(w.type.shape)) for w in node.inputs[FIRST_WEIGHT:] if w is not None and w.type.rank == 2
    )
    return time * batch * per_step


def _to_onnx(b: OnnxBuilder, node: Node) -> None:
    attrs: LstmpAttrs = node.attrs
    _, lengths, h0, c0 = node.inputs[:FIRST_WEIGHT]
    weights = {name: b.name(value) for name, value in node_weights(node).items()}
    sequence = time_first(b, node)
    mask = step_mask(b, sequence, b.name(lengths)) if lengths is not None else None
    gates_x = b.op("MatMul", [sequence, transposed(b, weights["input_linearity.weight"])])[0]
    for bias in ("input_linearity.bias", "state_linearity.bias"):
        if bias in weights:
            gates_x = b.op("Add", [gates_x, weights[bias]])[0]
    initial = tuple(
        b.op("Squeeze", [b.name(state), b.int64s([0], "axes")])[0]
        if state is not None
        else zeros_state(b, sequence, size)
        for state, size in ((h0, attrs.proj_size), (c0, attrs.hidden))
    )
    h_last, c_last, y = scan_direction(
        b,
        gates_x,
        mask,
        transposed(b, weights["state_linearity.weight"]),
        transposed(b, weights["state_projection.weight"]),
        initial,
        attrs.hidden,
        reverse=attrs.reverse,
        cell_clip=attrs.cell_clip,
        proj_clip=attrs.proj_clip,
    )
    axes = b.int64s([0], "axes")
    finals = [[b.op("Unsqueeze", [h_last, axes])[0]], [b.op("Unsqueeze", [c_last, axes])[0]]]
    finish_outputs(b, node, y, finals)


LSTMP = '''
@torch.fx.wrap  # a leaf for torch.fx: a loop over the time steps
def lstmp(x, w_input, b_input, w_state, b_state, w_projection, lengths=None, h0=None, c0=None,
          reverse=False, cell_clip=None, proj_clip=None, batch_first=False):
    """One direction of an LSTM with a projection, one bias and clipping (AllenNLP's
    LstmCellWithProjection): returns y [T, N, p] (or [N, T, p]) and (h [1, N, p], c [1, N, h]).
    With `lengths`, each sequence stops at its length (reverse: starts at its last step);
    outputs past it are zero and its state is kept."""
    if batch_first:
        x = x.transpose(0, 1)
    steps, batch = x.shape[:2]
    h = x.new_zeros(batch, w_projection.size(0)) if h0 is None else h0[0]
    c = x.new_zeros(batch, w_projection.size(1)) if c0 is None else c0[0]
    bias = b_state if b_input is None else b_input + b_state
    gates_x = F.linear(x, w_input, bias)  # all steps at once
    outputs = [None] * steps
    for t in reversed(range(steps)) if reverse else range(steps):
        i, f, g, o = (gates_x[t] + F.linear(h, w_state)).chunk(4, dim=1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if cell_clip is not None:
            c_next = c_next.clamp(-cell_clip, cell_clip)
        h_next = F.linear(torch.sigmoid(o) * torch.tanh(c_next), w_projection)
        if proj_clip is not None:
            h_next = h_next.clamp(-proj_clip, proj_clip)
        if lengths is not None:
            valid = (t < lengths)[:, None]
            h_next, c_next = torch.where(valid, h_next, h), torch.where(valid, c_next, c)
            outputs[t] = torch.where(valid, h_next, 0.0)
        else:
            outputs[t] = h_next
        h, c = h_next, c_next
    y = torch.stack(outputs)
    return (y.transpose(0, 1) if batch_first else y), (h[None], c[None])


class LSTMP(nn.Module):
    """One direction of an LSTM with a projection, one bias vector and optional clipping:
    bilm-tf's / AllenNLP's LstmCellWithProjection (ELMo), gates i, f, g, o."""

    def __init__(self, input_size, hidden_size, proj_size, reverse=False, cell_clip=None, proj_clip=None,
                 batch_first=False, input_bias=False):
        super().__init__()
        self.reverse, self.cell_clip, self.proj_clip = reverse, cell_clip, proj_clip
        self.batch_first = batch_first
        self.input_linearity = nn.Linear(input_size, 4 * hidden_size, bias=input_bias)
        self.state_linearity = nn.Linear(proj_size, 4 * hidden_size)
        self.state_projection = nn.Linear(hidden_size, proj_size, bias=False)
        with torch.no_grad():  # AllenNLP's: orthogonal gate blocks, forget-gate bias 1
            for weight in (self.input_linearity.weight, self.state_linearity.weight):
                for block in weight.split(hidden_size):
                    nn.init.orthogonal_(block)
            self.state_linearity.bias.zero_()
            self.state_linearity.bias[hidden_size : 2 * hidden_size] = 1.0
            if input_bias:
                self.input_linearity.bias.zero_()

    def forward(self, x, lengths=None, state=None):
        h0, c0 = state if state is not None else (None, None)
        return lstmp(
            x, self.input_linearity.weight, self.input_linearity.bias, self.state_linearity.weight,
            self.state_linearity.bias, self.state_projection.weight, lengths, h0, c0, self.reverse,
            self.cell_clip, self.proj_clip, self.batch_first,
        )
'''


def _to_torch(t: TorchWriter, node: Node) -> TorchExpr:
    t.helper("lstmp", LSTMP)
    attrs: LstmpAttrs = node.attrs
    x, lengths, h0, c0 = node.inputs[:FIRST_WEIGHT]
    assert x is not None
    weights = node_weights(node)
    options = [str(x.type.shape[-1]), str(attrs.hidden), str(attrs.proj_size)]
    defaults = LstmpAttrs(hidden=1, proj_size=1)
    for name in ("reverse", "cell_clip", "proj_clip", "batch_first", "input_bias"):
        if getattr(attrs, name) != getattr(defaults, name):
            options.append(f"{name}={getattr(attrs, name)!r}")
    module = t.module(node, f"LSTMP({', '.join(options)})", weights)
    unpack = "{0}, ({1}, {2})"
    if module:
        arguments = [t.var(x)]
        if lengths is not None:
            arguments.append(f"lengths={t.var(lengths)}")
        if h0 is not None:
            arguments.append(f"state=({t.var(h0)}, {t.var(c0)})")
        return TorchExpr(f"{module}({', '.join(arguments)})", unpack)
    order = ("input_linearity.weight", "input_linearity.bias", "state_linearity.weight")
    order += ("state_linearity.bias", "state_projection.weight")
    arguments = [t.var(x), *(t.var(weights.get(name)) for name in order)]
    for name, value in (("lengths", lengths), ("h0", h0), ("c0", c0)):
        if value is not None:
            arguments.append(f"{name}={t.var(value)}")
    arguments += [option for option in options[3:] if not option.startswith("input_bias")]
    return TorchExpr(f"lstmp({', '.join(arguments)})", unpack)


def _samples() -> list[OpSample]:
    def sample(name: str, module: bool = True, seed: int = 0, **options: Any) -> OpSample:
        sample_options = {k: options.pop(k) for k in ("lengths", "initial_state") if k in options}
        attrs = LstmpAttrs(hidden=6, proj_size=3, **options)
        shapes = weight_shapes(attrs, SAMPLE_FEATURES).values()
        # Weights in U(-1, 1): large enough for the clips to act.
        return recurrent_sample(
            name, attrs, shapes, bound=1.0, cell_state=True, module=module, seed=seed, **sample_options
        )

    return [
        sample("forward"),
        sample("reverse-clipped", reverse=True, cell_clip=0.5, proj_clip=0.3, seed=1),
        sample(
            "lengths-initial-state-batch-first",
            lengths=[5, 2, 3],
            initial_state=True,
            batch_first=True,
            seed=2,
        ),
        sample(
            "reverse-lengths-functional", lengths=[1, 5, 4], reverse=True, cell_clip=1.0, module=False, seed=3
        ),
        sample("input-bias", input_bias=True, seed=4),
        sample("input-bias-functional", input_bias=True, proj_clip=0.5, module=False, seed=5),
    ]


OPS = [
    OpDef(
        "lstmp",
        _infer,
        _to_onnx,
        _to_torch,
        _samples,
        LstmpAttrs,
        OpGroup.CONTRACTION,
        outputs=("out", "h", "c"),
        macs=_macs,
        doc="One-direction LSTM with a projection, one bias and optional clipping (ELMo's cell).",
    )
]
