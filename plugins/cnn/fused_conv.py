"""`fused_conv`: ONNX Runtime's contrib op FusedConv (domain ``com.microsoft``), a conv with
bias, an optional sum input and an activation in one kernel:

    fused_conv(x, W, b, z) = activation(conv(x, W, b) + z)

Only the `fuse-conv-activation` pass creates it, and only for ONNX Runtime output (never
with ``--portable``). The torch lowering is the plain expression, e.g.
``torch.relu(self.conv2(x) + identity)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import Node, OnnxBuilder, OpDef, OpGroup, OpSample, TensorType, TorchWriter, require

from .conv_ops import ConvAttrs, _conv_infer, _conv_macs, _conv_torch, onnx_conv_attributes

# The IR activations FusedConv can run: ONNX Runtime's name, and the torch call.
ACTIVATIONS = {
    "relu": ("Relu", "torch.relu({x})"),
    "leaky_relu": ("LeakyRelu", "F.leaky_relu({x}, {alpha!r})"),
    "sigmoid": ("Sigmoid", "torch.sigmoid({x})"),
    "tanh": ("Tanh", "torch.tanh({x})"),
}


class FusedConvAttrs(ConvAttrs):
    activation: Literal["relu", "leaky_relu", "sigmoid", "tanh"]
    alpha: float | None = None  # leaky_relu's negative slope


def _fused_conv_infer(attrs: FusedConvAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    out = _conv_infer(attrs, inputs[:3])
    addend = inputs[3] if len(inputs) > 3 else None
    if addend is not None:
        require(addend == out, f"fused_conv: the sum input {addend} must match the conv's output {out}")
    return out


def _fused_conv_onnx(b: OnnxBuilder, node: Node) -> None:
    b.require_domain("com.microsoft", 1)
    activation = node.attrs.activation
    options = onnx_conv_attributes(node)
    if activation == "leaky_relu":
        options["activation_params"] = [_slope(node)]
    inputs = b.inputs(node)
    b.op(
        "FusedConv",
        inputs,
        b.outputs(node),
        domain="com.microsoft",
        activation=ACTIVATIONS[activation][0],
        **options,
    )


def _fused_conv_torch(t: TorchWriter, node: Node) -> str:
    value = _conv_torch(t, node)
    addend = node.inputs[3] if len(node.inputs) > 3 else None
    if addend is not None:
        value = f"{value} + {t.var(addend)}"
    return ACTIVATIONS[node.attrs.activation][1].format(x=value, alpha=_slope(node))


def _slope(node: Node) -> float:
    return 0.01 if node.attrs.alpha is None else node.attrs.alpha  # torch's default slope


def _fused_conv_samples() -> list[OpSample]:
    rng = np.random.default_rng(32)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def attrs(rank: int, activation: str, padding: int = 0, stride: int = 1, groups: int = 1) -> dict:
        return {
            "stride": (stride,) * rank,
            "padding": (padding,) * (2 * rank),
            "dilation": (1,) * rank,
            "groups": groups,
            "activation": activation,
        }

    return [
        OpSample(
            (arr(2, 4, 6, 6), arr(4, 4, 3, 3), arr(4), arr(2, 4, 6, 6)),
            attrs(2, "relu", padding=1),
            frozenset({1, 2}),
            name="2d-relu-sum-module",
        ),
        OpSample(
            (arr(2, 4, 7, 7), arr(6, 2, 3, 3), arr(6)),
            {**attrs(2, "leaky_relu", stride=2, groups=2), "alpha": 0.2},
            frozenset({1, 2}),
            name="2d-leaky-relu-grouped-strided",
        ),
        OpSample(
            (arr(2, 3, 9), arr(5, 3, 3), None, arr(2, 5, 7)),
            attrs(1, "tanh"),
            frozenset({1}),
            name="1d-tanh-no-bias-sum",
        ),
        OpSample(
            (arr(2, 3, 5, 5), arr(4, 3, 1, 1), arr(4)), attrs(2, "sigmoid"), name="2d-sigmoid-functional"
        ),
    ]


OPS = [
    OpDef(
        "fused_conv",
        _fused_conv_infer,
        _fused_conv_onnx,
        _fused_conv_torch,
        _fused_conv_samples,
        FusedConvAttrs,
        OpGroup.CONTRACTION,
        macs=_conv_macs,
        doc="ONNX Runtime's FusedConv: activation(conv(x, W, b) + z), z optional.",
    ),
]
