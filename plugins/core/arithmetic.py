"""Generic arithmetic shared by every family: matmul, element-wise binary and unary
functions, scale, pow, comparisons, where and cast (ops and blocks)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
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
    TorchWriter,
    broadcast,
    product,
    require,
)

from .common import NoOptions, one_input_samples, sample_array, sample_rng, simple_block


def _matmul_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    a, b = inputs[0], inputs[1]
    require(a is not None and b is not None, "matmul needs two inputs")
    assert a is not None and b is not None
    require(a.dtype == b.dtype, f"matmul: dtypes differ: {a} and {b}")
    require(a.rank >= 1 and b.rank >= 1, f"matmul needs inputs with at least one dim, got {a} and {b}")
    a_shape = (1, *a.shape) if a.rank == 1 else a.shape
    b_shape = (*b.shape, 1) if b.rank == 1 else b.shape
    require(
        a_shape[-1] == b_shape[-2],
        f"matmul: inner dims differ: {a} @ {b} ({a_shape[-1]} vs {b_shape[-2]})",
    )
    batch = broadcast([TensorType(a.dtype, a_shape[:-2]), TensorType(b.dtype, b_shape[:-2])], "matmul")
    shape: list[Dim] = [*batch.shape, a_shape[-2], b_shape[-1]]
    if a.rank == 1:
        shape.pop(-2)
    if b.rank == 1:
        shape.pop(-1)
    return TensorType(a.dtype, tuple(shape))


def _matmul_macs(node: Node) -> Dim:
    a = node.inputs[0].type
    return product(node.outputs[0].type.shape) * a.shape[-1]


def _matmul_samples() -> list[OpSample]:
    rng = sample_rng(0)
    return [
        OpSample((sample_array(rng, 3, 4), sample_array(rng, 4, 5)), name="2d"),
        OpSample((sample_array(rng, 2, 3, 4), sample_array(rng, 2, 4, 5)), name="batched"),
        OpSample((sample_array(rng, 2, 3, 4), sample_array(rng, 4, 5)), name="broadcast"),
        OpSample((sample_array(rng, 2, 3, 4), sample_array(rng, 4)), name="vector"),
    ]


def _binary_infer(name: str):
    def infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
        require(len(inputs) == 2 and all(t is not None for t in inputs), f"{name} needs two inputs")
        return broadcast([t for t in inputs if t is not None], name)

    return infer


def _binary(name: str, onnx_op: str, symbol: str, doc: str) -> OpDef:
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, b.inputs(node), b.outputs(node))

    def to_torch(t: TorchWriter, node: Node) -> str:
        return f"{t.var(node.inputs[0])} {symbol} {t.var(node.inputs[1])}"

    def samples() -> list[OpSample]:
        rng = sample_rng(1)
        return [
            OpSample((sample_array(rng, 3, 4), sample_array(rng, 3, 4, positive=True)), name="same"),
            OpSample(
                (sample_array(rng, 2, 3, 4), sample_array(rng, 4, positive=True)),
                params=frozenset({1}),
                name="broadcast",
            ),
            *_integer_samples(name),
        ]

    return OpDef(name, _binary_infer(name), to_onnx, to_torch, samples, group=OpGroup.ELEMENTWISE, doc=doc)


def _integer_samples(name: str) -> list[OpSample]:
    """Integer operands for the ops that take them (`sub` of positions, `abs` of offsets);
    `div` stays float (integer division rounds differently in torch and ONNX)."""
    if name == "div":
        return []
    a = np.array([[3, -2, 0, 7], [1, 5, -4, 2]], dtype=np.int64)
    return [OpSample((a, np.array([[2], [-1]], dtype=np.int64)), symbolic_batch=False, name="int64")]


def _numeric_unary_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None and x.dtype is not DType.bool, f"expects a numeric input, got {x}")
    assert x is not None
    return x


def _float_unary_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None and x.dtype.is_float, f"expects a floating-point input, got {x}")
    assert x is not None
    return x


def _unary(
    name: str, onnx_op: str, torch_code: str, doc: str, positive: bool = False, integer: bool = False
) -> OpDef:
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, b.inputs(node), b.outputs(node))

    def to_torch(t: TorchWriter, node: Node) -> str:
        return torch_code.format(x=t.var(node.inputs[0]))

    def samples() -> list[OpSample]:
        rng = sample_rng(2)
        floats = [OpSample((sample_array(rng, 3, 5, positive=positive),), name="2d")]
        if not integer:
            return floats
        ints = np.array([[3, -2, 0], [-7, 1, 4]], dtype=np.int64)
        return [*floats, OpSample((ints,), symbolic_batch=False, name="int64")]

    infer = _numeric_unary_infer if integer else _float_unary_infer
    return OpDef(name, infer, to_onnx, to_torch, samples, group=OpGroup.ELEMENTWISE, doc=doc)


class EluAttrs(OpAttrs):
    alpha: float = 1.0


class ScaleAttrs(OpAttrs):
    factor: float


class PowAttrs(OpAttrs):
    exponent: float


def _scale_onnx(b: OnnxBuilder, node: Node) -> None:
    dtype = node.inputs[0].type.dtype.numpy
    factor = b.constant(np.array(node.attrs.factor, dtype=dtype), "factor")
    b.op("Mul", [b.name(node.inputs[0]), factor], b.outputs(node))


def _pow_onnx(b: OnnxBuilder, node: Node) -> None:
    dtype = node.inputs[0].type.dtype.numpy
    exponent = b.constant(np.array(node.attrs.exponent, dtype=dtype), "exponent")
    b.op("Pow", [b.name(node.inputs[0]), exponent], b.outputs(node))


def _less_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) == 2 and all(t is not None for t in inputs), "less needs two inputs")
    return TensorType(DType.bool, broadcast([t for t in inputs if t is not None], "less").shape)


def _less_samples() -> list[OpSample]:
    rng = sample_rng(12)
    positions = np.arange(5, dtype=np.int64)
    lengths = np.array([[3], [5], [1]], dtype=np.int64)
    return [
        OpSample((sample_array(rng, 3, 4), sample_array(rng, 3, 4)), name="float"),
        OpSample((positions, lengths), symbolic_batch=False, name="int-broadcast"),
    ]


def _where_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    cond, a, b = inputs[0], inputs[1], inputs[2]
    require(cond is not None and a is not None and b is not None, "where needs a condition and two values")
    assert cond is not None and a is not None and b is not None
    require(cond.dtype is DType.bool, f"where: the condition must be bool, got {cond}")
    values = broadcast([a, b], "where")
    shape = broadcast([TensorType(values.dtype, cond.shape), values], "where").shape
    return values.with_shape(shape)


def _where_samples() -> list[OpSample]:
    rng = sample_rng(4)
    return [
        OpSample(
            (rng.random((3, 4)) < 0.5, sample_array(rng, 3, 4), sample_array(rng, 1, 4)), name="broadcast"
        ),
        OpSample(
            (
                rng.random((3, 4)) < 0.5,
                np.arange(12, dtype=np.int64).reshape(3, 4),
                np.array([-1], dtype=np.int64),
            ),
            symbolic_batch=False,
            name="int64",
        ),
    ]


class CastAttrs(OpAttrs):
    dtype: DType


def _cast_infer(attrs: CastAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    return TensorType(attrs.dtype, x.shape)


def _cast_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Cast", b.inputs(node), b.outputs(node), to=node.attrs.dtype.onnx)


def _cast_torch(t: TorchWriter, node: Node) -> str:
    return f"{t.var(node.inputs[0])}.to({node.attrs.dtype.torch_name})"


def _matmul_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("MatMul", b.inputs(node), b.outputs(node))


def _matmul_torch(t: TorchWriter, node: Node) -> str:
    return f"torch.matmul({t.var(node.inputs[0])}, {t.var(node.inputs[1])})"


def _elu_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Elu", b.inputs(node), b.outputs(node), alpha=node.attrs.alpha)


def _where_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Where", b.inputs(node), b.outputs(node))


def _where_torch(t: TorchWriter, node: Node) -> str:
    return f"torch.where({', '.join(t.var(v) for v in node.inputs)})"


class EluConfig(BlockConfig):
    alpha: float = Field(1.0, description="Scale of the negative part: alpha * (exp(x) - 1) for x < 0.")


class ScaleConfig(BlockConfig):
    factor: float = Field(description="Multiplies the input by this constant.")


class PowConfig(BlockConfig):
    exponent: float = Field(description="Raises the input to this constant power.")


class CastConfig(BlockConfig):
    dtype: DType = Field(description="The element type to convert to.")


OPS = [
    OpDef(
        "matmul",
        _matmul_infer,
        _matmul_onnx,
        _matmul_torch,
        _matmul_samples,
        group=OpGroup.CONTRACTION,
        macs=_matmul_macs,
        doc="Matrix product with numpy broadcasting of batch dims.",
    ),
    _binary("sub", "Sub", "-", "a - b (with broadcasting)"),
    _binary("div", "Div", "/", "a / b (with broadcasting)"),
    _unary("exp", "Exp", "torch.exp({x})", "exp(x)"),
    _unary("log", "Log", "torch.log({x})", "natural logarithm", positive=True),
    _unary("sqrt", "Sqrt", "torch.sqrt({x})", "square root", positive=True),
    _unary("neg", "Neg", "-{x}", "-x", integer=True),
    _unary("abs", "Abs", "torch.abs({x})", "|x|", integer=True),
    _unary("softplus", "Softplus", "F.softplus({x})", "log(1 + exp(x))"),
    OpDef(
        "elu",
        _float_unary_infer,
        _elu_onnx,
        lambda t, n: f"F.elu({t.var(n.inputs[0])}, {n.attrs.alpha!r})",
        one_input_samples({"alpha": 1.0}),
        EluAttrs,
        OpGroup.ELEMENTWISE,
        doc="x if x > 0 else alpha (exp(x) - 1)",
    ),
    OpDef(
        "scale",
        _float_unary_infer,
        _scale_onnx,
        lambda t, n: f"{t.var(n.inputs[0])} * {n.attrs.factor!r}",
        one_input_samples({"factor": 0.125}),
        ScaleAttrs,
        OpGroup.ELEMENTWISE,
        doc="x * factor",
    ),
    OpDef(
        "pow",
        _float_unary_infer,
        _pow_onnx,
        lambda t, n: f"{t.var(n.inputs[0])} ** {n.attrs.exponent!r}",
        one_input_samples({"exponent": 2.0}),
        PowAttrs,
        OpGroup.ELEMENTWISE,
        doc="x ** exponent",
    ),
    OpDef(
        "less",
        _less_infer,
        lambda b, n: b.op("Less", b.inputs(n), b.outputs(n)),
        lambda t, n: f"{t.var(n.inputs[0])} < {t.var(n.inputs[1])}",
        _less_samples,
        group=OpGroup.ELEMENTWISE,
        doc="a < b (with broadcasting), as bool",
    ),
    OpDef(
        "where",
        _where_infer,
        _where_onnx,
        _where_torch,
        _where_samples,
        group=OpGroup.ELEMENTWISE,
        doc="a where cond else b",
    ),
    OpDef(
        "cast",
        _cast_infer,
        _cast_onnx,
        _cast_torch,
        lambda: [OpSample((sample_array(sample_rng(11), 3, 4),), {"dtype": DType.int64}, name="to-int")],
        CastAttrs,
        OpGroup.ELEMENTWISE,
        doc="Convert the element type.",
    ),
]


BLOCKS = [
    BlockType(
        "matmul",
        NoOptions,
        simple_block("matmul"),
        "Matrix product of two inputs (numpy semantics).",
        inputs=(2, 2),
    ),
    BlockType("sub", NoOptions, simple_block("sub"), "a - b (`in: [a, b]`).", inputs=(2, 2)),
    BlockType("div", NoOptions, simple_block("div"), "a / b (`in: [a, b]`).", inputs=(2, 2)),
    BlockType("exp", NoOptions, simple_block("exp"), "exp(x)."),
    BlockType("log", NoOptions, simple_block("log"), "Natural logarithm."),
    BlockType("sqrt", NoOptions, simple_block("sqrt"), "Square root."),
    BlockType("neg", NoOptions, simple_block("neg"), "-x."),
    BlockType("abs", NoOptions, simple_block("abs"), "|x|."),
    BlockType("softplus", NoOptions, simple_block("softplus"), "log(1 + exp(x))."),
    BlockType("elu", EluConfig, simple_block("elu"), "Exponential linear unit.", shorthand="alpha"),
    BlockType("scale", ScaleConfig, simple_block("scale"), "Multiply by a constant.", shorthand="factor"),
    BlockType("pow", PowConfig, simple_block("pow"), "Raise to a constant power.", shorthand="exponent"),
    BlockType("less", NoOptions, simple_block("less"), "`in: [a, b]`: a < b, as bool.", inputs=(2, 2)),
    BlockType(
        "where", NoOptions, simple_block("where"), "`in: [cond, a, b]`: a where cond else b.", inputs=(3, 3)
    ),
    BlockType("cast", CastConfig, simple_block("cast"), "Convert the element type.", shorthand="dtype"),
]
