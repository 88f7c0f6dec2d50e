"""Element-wise functions of modern architectures: the gated and hard activations
(`silu`, `hardswish`, `hardsigmoid`, `relu6`), `clip`, `sin`, `cos`, `erf`, `sign`, and the
binary `minimum` / `maximum` (ops and blocks).

The activations follow torch's definitions exactly:
``silu(x) = x * sigmoid(x)``, ``hardsigmoid(x) = clip(x / 6 + 1/2, 0, 1)``,
``hardswish(x) = x * hardsigmoid(x)``, ``relu6(x) = clip(x, 0, 6)``. ONNX's `HardSigmoid`
defaults to ``alpha = 0.2``; torch's slope is 1/6, so it is passed explicitly. ONNX has no
SiLU op at opset 21: it is written as ``x * Sigmoid(x)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, model_validator

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockType,
    DType,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    broadcast,
    require,
)

from .common import NoOptions, sample_array, sample_rng, simple_block


def _float_input(name: str):
    def infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
        x = inputs[0] if inputs else None
        require(x is not None and x.dtype.is_float, f"{name} expects a floating-point input, got {x}")
        assert x is not None
        return x

    return infer


def _numeric_input(name: str):
    def infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
        x = inputs[0] if inputs else None
        require(x is not None and x.dtype is not DType.bool, f"{name} expects a numeric input, got {x}")
        assert x is not None
        return x

    return infer


def _wide_samples(seed: int, scale: float = 4.0):
    """Samples spread over [-scale, scale] so the kinks of hard activations (at -3, 3, 6)
    are crossed."""

    def samples() -> list[OpSample]:
        rng = sample_rng(seed)
        return [
            OpSample(((sample_array(rng, 3, 7) * scale),), name="2d"),
            OpSample(((sample_array(rng, 2, 3, 4, 5) * scale),), name="4d"),
        ]

    return samples


def _unary(name: str, onnx_fn, torch_code: str, doc: str, *, numeric: bool = False, seed: int = 30) -> OpDef:
    def to_torch(t: TorchWriter, node: Node) -> str:
        return torch_code.format(x=t.var(node.inputs[0]))

    samples = _wide_samples(seed)
    if numeric:
        float_samples = samples

        def samples() -> list[OpSample]:  # type: ignore[no-redef]
            ints = np.array([[-3, 0, 2], [5, -1, 0]], dtype=np.int64)
            return [*float_samples(), OpSample((ints,), name="int64")]

    infer = _numeric_input(name) if numeric else _float_input(name)
    return OpDef(name, infer, onnx_fn, to_torch, samples, group=OpGroup.ELEMENTWISE, doc=doc)


def _plain(onnx_op: str, **attrs: float):
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, b.inputs(node), b.outputs(node), **attrs)

    return to_onnx


def _silu_onnx(b: OnnxBuilder, node: Node) -> None:
    x = b.name(node.inputs[0])
    gate = b.op("Sigmoid", [x])[0]
    b.op("Mul", [x, gate], b.outputs(node))


def _clip_constants(b: OnnxBuilder, node: Node, low: float | None, high: float | None) -> list[str]:
    dtype = node.inputs[0].type.dtype.numpy
    low_name = b.constant(np.array(low, dtype=dtype), "min") if low is not None else ""
    high_name = b.constant(np.array(high, dtype=dtype), "max") if high is not None else ""
    return [low_name, high_name]


def _relu6_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Clip", [b.name(node.inputs[0]), *_clip_constants(b, node, 0.0, 6.0)], b.outputs(node))


class ClipAttrs(OpAttrs):
    min: float | None = None
    max: float | None = None


def _clip_infer(attrs: ClipAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = _numeric_input("clip")(attrs, inputs)
    require(attrs.min is not None or attrs.max is not None, "clip needs `min`, `max` or both")
    if attrs.min is not None and attrs.max is not None:
        require(attrs.min <= attrs.max, f"clip: min {attrs.min} is larger than max {attrs.max}")
    if not x.dtype.is_float:
        for bound in (attrs.min, attrs.max):
            require(
                bound is None or float(bound).is_integer(), f"clip: bound {bound} of {x} is not an integer"
            )
    return x


def _clip_onnx(b: OnnxBuilder, node: Node) -> None:
    bounds = _clip_constants(b, node, node.attrs.min, node.attrs.max)
    b.op("Clip", [b.name(node.inputs[0]), *bounds], b.outputs(node))


def _bound_text(value: float | None, integer: bool) -> str:
    if value is None:
        return "None"
    return repr(int(value)) if integer else repr(value)


def _clip_torch(t: TorchWriter, node: Node) -> str:
    integer = not node.inputs[0].type.dtype.is_float
    low, high = (_bound_text(v, integer) for v in (node.attrs.min, node.attrs.max))
    return f"torch.clamp({t.var(node.inputs[0])}, {low}, {high})"


def _clip_samples() -> list[OpSample]:
    rng = sample_rng(31)
    x = sample_array(rng, 3, 7) * 3
    ints = np.arange(-6, 6, dtype=np.int64).reshape(3, 4)
    return [
        OpSample((x,), {"min": -1.0, "max": 2.5}, name="both"),
        OpSample((x,), {"min": 0.5}, name="min-only"),
        OpSample((x,), {"max": -0.5}, name="max-only"),
        OpSample((ints,), {"min": -2, "max": 3}, symbolic_batch=False, name="int64"),
    ]


def _binary_infer(name: str):
    def infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
        require(len(inputs) == 2 and all(t is not None for t in inputs), f"{name} needs two inputs")
        types = [t for t in inputs if t is not None]
        require(types[0].dtype is not DType.bool, f"{name} expects numeric inputs, got {types[0]}")
        return broadcast(types, name)

    return infer


def _binary(name: str, onnx_op: str, torch_fn: str, doc: str) -> OpDef:
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, b.inputs(node), b.outputs(node))

    def to_torch(t: TorchWriter, node: Node) -> str:
        return f"{torch_fn}({t.var(node.inputs[0])}, {t.var(node.inputs[1])})"

    def samples() -> list[OpSample]:
        rng = sample_rng(32)
        ints = rng.integers(-5, 5, (3, 4)).astype(np.int64)
        return [
            OpSample((sample_array(rng, 3, 4), sample_array(rng, 3, 4)), name="same"),
            OpSample(
                (sample_array(rng, 2, 3, 4), sample_array(rng, 4)), params=frozenset({1}), name="broadcast"
            ),
            OpSample((ints, np.array([0, 2, -1, 1], dtype=np.int64)), symbolic_batch=False, name="int64"),
        ]

    return OpDef(name, _binary_infer(name), to_onnx, to_torch, samples, group=OpGroup.ELEMENTWISE, doc=doc)


OPS = [
    _unary("silu", _silu_onnx, "F.silu({x})", "x * sigmoid(x) (swish)"),
    _unary("hardswish", _plain("HardSwish"), "F.hardswish({x})", "x * clip(x / 6 + 1/2, 0, 1)"),
    _unary(
        "hardsigmoid",
        _plain("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
        "F.hardsigmoid({x})",
        "clip(x / 6 + 1/2, 0, 1)",
    ),
    _unary("relu6", _relu6_onnx, "F.relu6({x})", "clip(x, 0, 6)"),
    _unary("sin", _plain("Sin"), "torch.sin({x})", "sin(x)"),
    _unary("cos", _plain("Cos"), "torch.cos({x})", "cos(x)"),
    _unary("erf", _plain("Erf"), "torch.erf({x})", "the Gauss error function"),
    _unary("sign", _plain("Sign"), "torch.sign({x})", "-1, 0 or 1", numeric=True),
    OpDef(
        "clip",
        _clip_infer,
        _clip_onnx,
        _clip_torch,
        _clip_samples,
        ClipAttrs,
        OpGroup.ELEMENTWISE,
        doc="min(max(x, min), max); either bound may be left out",
    ),
    _binary("minimum", "Min", "torch.minimum", "element-wise min(a, b) (with broadcasting)"),
    _binary("maximum", "Max", "torch.maximum", "element-wise max(a, b) (with broadcasting)"),
]


# -- blocks ------------------------------------------------------------------------------


class ClipConfig(BlockConfig):
    min: float | None = Field(None, description="Lower bound (none: unbounded).")
    max: float | None = Field(None, description="Upper bound (none: unbounded).")

    @model_validator(mode="after")
    def _some_bound(self) -> ClipConfig:
        if self.min is None and self.max is None:
            raise ValueError("clip needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is larger than max {self.max}")
        return self


BLOCKS = [
    BlockType("silu", NoOptions, simple_block("silu"), "SiLU (swish): x * sigmoid(x)."),
    BlockType(
        "hardswish", NoOptions, simple_block("hardswish"), "Hard swish (MobileNetV3): x * relu6(x + 3) / 6."
    ),
    BlockType("hardsigmoid", NoOptions, simple_block("hardsigmoid"), "Hard sigmoid: relu6(x + 3) / 6."),
    BlockType("relu6", NoOptions, simple_block("relu6"), "min(max(x, 0), 6) (MobileNetV2)."),
    BlockType("clip", ClipConfig, simple_block("clip"), "Clamp to [min, max] (`clip: {min: 0, max: 1}`)."),
    BlockType("sin", NoOptions, simple_block("sin"), "sin(x)."),
    BlockType("cos", NoOptions, simple_block("cos"), "cos(x)."),
    BlockType("erf", NoOptions, simple_block("erf"), "The Gauss error function."),
    BlockType("sign", NoOptions, simple_block("sign"), "-1, 0 or 1 (floats and integers)."),
    BlockType(
        "minimum", NoOptions, simple_block("minimum"), "Element-wise min(a, b) (`in: [a, b]`).", inputs=(2, 2)
    ),
    BlockType(
        "maximum", NoOptions, simple_block("maximum"), "Element-wise max(a, b) (`in: [a, b]`).", inputs=(2, 2)
    ),
]
