"""Element-wise activations, softmax, dropout and identity: ops and blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    InferenceError,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    Value,
    axis_in_range,
)


def _sample_inputs(seed: int = 0) -> list[OpSample]:
    rng = np.random.default_rng(seed)
    return [
        OpSample((rng.standard_normal((3, 7)).astype(np.float32),), name="2d"),
        OpSample((rng.standard_normal((2, 3, 4, 5)).astype(np.float32),), name="4d"),
    ]


def _same_type(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    if len(inputs) != 1 or inputs[0] is None:
        raise InferenceError("expects exactly one input")
    if not inputs[0].dtype.is_float:
        raise InferenceError(f"expects a floating-point input, got {inputs[0]}")
    return inputs[0]


def _unary(name: str, onnx_op: str, torch_fn: str, doc: str) -> OpDef:
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, b.inputs(node), b.outputs(node))

    def to_torch(t: TorchWriter, node: Node) -> str:
        return f"{torch_fn}({t.var(node.inputs[0])})"

    return OpDef(name, _same_type, to_onnx, to_torch, _sample_inputs, group=OpGroup.ELEMENTWISE, doc=doc)


class LeakyReluAttrs(OpAttrs):
    negative_slope: float = 0.01


class GeluAttrs(OpAttrs):
    approximate: Literal["none", "tanh"] = "none"


class AxisAttrs(OpAttrs):
    axis: int = -1


class DropoutAttrs(OpAttrs):
    p: float = Field(0.5, ge=0.0, lt=1.0)


def _softmax_infer(attrs: AxisAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    result = _same_type(attrs, inputs)
    axis_in_range(attrs.axis, result.rank, "softmax")
    return result


def _softmax(name: str, onnx_op: str, torch_fn: str, doc: str) -> OpDef:
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, b.inputs(node), b.outputs(node), axis=node.attrs.axis)

    def to_torch(t: TorchWriter, node: Node) -> str:
        return f"{torch_fn}({t.var(node.inputs[0])}, dim={node.attrs.axis})"

    def samples() -> list[OpSample]:
        return [*_sample_inputs(), OpSample(_sample_inputs()[1].inputs, {"axis": 1}, name="axis1")]

    return OpDef(name, _softmax_infer, to_onnx, to_torch, samples, AxisAttrs, OpGroup.NORMALIZATION, doc=doc)


def _leaky_relu_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("LeakyRelu", b.inputs(node), b.outputs(node), alpha=node.attrs.negative_slope)


def _leaky_relu_torch(t: TorchWriter, node: Node) -> str:
    return f"F.leaky_relu({t.var(node.inputs[0])}, {node.attrs.negative_slope!r})"


def _gelu_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Gelu", b.inputs(node), b.outputs(node), approximate=node.attrs.approximate)


def _gelu_torch(t: TorchWriter, node: Node) -> str:
    x = t.var(node.inputs[0])
    return f"F.gelu({x})" if node.attrs.approximate == "none" else f"F.gelu({x}, approximate='tanh')"


def _dropout_onnx(b: OnnxBuilder, node: Node) -> None:
    # Inference-mode Dropout is the identity; ONNX Runtime treats it so (training_mode=False).
    ratio = b.constant(np.array(node.attrs.p, dtype=np.float32), "ratio")
    b.op("Dropout", [*b.inputs(node), ratio], b.outputs(node))


def _dropout_torch(t: TorchWriter, node: Node) -> str:
    module = t.module(node, f"nn.Dropout({node.attrs.p!r})")
    x = t.var(node.inputs[0])
    return f"{module}({x})" if module else f"F.dropout({x}, {node.attrs.p!r}, self.training)"


def _identity_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Identity", b.inputs(node), b.outputs(node))


def _identity_torch(t: TorchWriter, node: Node) -> str:
    return t.var(node.inputs[0])


def _any_type(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    if len(inputs) != 1 or inputs[0] is None:
        raise InferenceError("expects exactly one input")
    return inputs[0]


OPS = [
    _unary("relu", "Relu", "torch.relu", "max(x, 0)"),
    _unary("sigmoid", "Sigmoid", "torch.sigmoid", "1 / (1 + exp(-x))"),
    _unary("tanh", "Tanh", "torch.tanh", "tanh(x)"),
    OpDef(
        "leaky_relu",
        _same_type,
        _leaky_relu_onnx,
        _leaky_relu_torch,
        _sample_inputs,
        LeakyReluAttrs,
        OpGroup.ELEMENTWISE,
        doc="x if x > 0 else negative_slope * x",
    ),
    OpDef(
        "gelu",
        _same_type,
        _gelu_onnx,
        _gelu_torch,
        lambda: [
            *_sample_inputs(),
            OpSample(_sample_inputs()[0].inputs, {"approximate": "tanh"}, name="tanh"),
        ],
        GeluAttrs,
        OpGroup.ELEMENTWISE,
        doc="x * Phi(x), exact or with the tanh approximation",
    ),
    _softmax("softmax", "Softmax", "torch.softmax", "exp(x) / sum(exp(x)) along `axis`"),
    _softmax("log_softmax", "LogSoftmax", "torch.log_softmax", "log of softmax along `axis`"),
    OpDef(
        "dropout",
        _any_type,
        _dropout_onnx,
        _dropout_torch,
        _sample_inputs,
        DropoutAttrs,
        OpGroup.ELEMENTWISE,
        inference_identity=True,
        doc="Zeroes elements with probability p in training; the identity in inference.",
    ),
    OpDef(
        "identity",
        _any_type,
        _identity_onnx,
        _identity_torch,
        _sample_inputs,
        group=OpGroup.ELEMENTWISE,
        inference_identity=True,
        doc="Returns its input.",
    ),
]


# -- blocks ------------------------------------------------------------------------------


class NoOptions(BlockConfig):
    pass


class LeakyReluConfig(BlockConfig):
    negative_slope: float = Field(0.01, description="Slope for negative inputs: x if x > 0 else slope * x.")


class GeluConfig(BlockConfig):
    approximate: Literal["none", "tanh"] = Field(
        "none", description="'none': the exact erf form; 'tanh': GPT-2's tanh approximation."
    )


class SoftmaxConfig(BlockConfig):
    axis: int = Field(-1, description="The axis normalized over.")


class DropoutConfig(BlockConfig):
    p: float = Field(0.5, ge=0.0, lt=1.0, description="Probability of zeroing an element in training.")


def _pass_through(op: str):
    def lower(ctx: BlockContext, config: BlockConfig, inputs: list[Value]) -> Value:
        return ctx.op(op, inputs[0], **config.model_dump())

    return lower


def _identity(ctx: BlockContext, config: NoOptions, inputs: list[Value]) -> Value:
    return ctx.op("identity", inputs[0])


BLOCKS = [
    BlockType("relu", NoOptions, _pass_through("relu"), "Rectified linear unit, max(x, 0)."),
    BlockType("sigmoid", NoOptions, _pass_through("sigmoid"), "Logistic sigmoid."),
    BlockType("tanh", NoOptions, _pass_through("tanh"), "Hyperbolic tangent."),
    BlockType(
        "leaky_relu",
        LeakyReluConfig,
        _pass_through("leaky_relu"),
        "Leaky ReLU.",
        shorthand="negative_slope",
    ),
    BlockType(
        "gelu",
        GeluConfig,
        _pass_through("gelu"),
        "Gaussian error linear unit (exact or tanh).",
        shorthand="approximate",
    ),
    BlockType(
        "softmax",
        SoftmaxConfig,
        _pass_through("softmax"),
        "Softmax along an axis.",
        shorthand="axis",
    ),
    BlockType(
        "log_softmax",
        SoftmaxConfig,
        _pass_through("log_softmax"),
        "Log-softmax along an axis.",
        shorthand="axis",
    ),
    BlockType(
        "dropout",
        DropoutConfig,
        _pass_through("dropout"),
        "Dropout (the identity in inference).",
        shorthand="p",
    ),
    BlockType("identity", NoOptions, _identity, "Passes its input through."),
]
