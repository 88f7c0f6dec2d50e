"""Generic tensor ops shared by every family: matmul, transposes, slicing, splitting,
element-wise arithmetic, comparison, reductions, expand, cast, where and arange (ops and
blocks).

Families build on these instead of defining their own `transpose` or `matmul`, so op
names never clash between plugins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    Dim,
    DType,
    InferenceError,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    Sym,
    TensorType,
    TorchWriter,
    Value,
    axis_in_range,
    broadcast,
    product,
    require,
)

INT64_MAX = 2**63 - 1


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(100 + seed)


def _arr(rng: np.random.Generator, *shape: int, positive: bool = False) -> np.ndarray:
    values = rng.standard_normal(shape).astype(np.float32)
    return np.abs(values) + 0.1 if positive else values


# -- matmul ------------------------------------------------------------------------------


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
    rng = _rng(0)
    return [
        OpSample((_arr(rng, 3, 4), _arr(rng, 4, 5)), name="2d"),
        OpSample((_arr(rng, 2, 3, 4), _arr(rng, 2, 4, 5)), name="batched"),
        OpSample((_arr(rng, 2, 3, 4), _arr(rng, 4, 5)), name="broadcast"),
        OpSample((_arr(rng, 2, 3, 4), _arr(rng, 4)), name="vector"),
    ]


# -- transpose ----------------------------------------------------------------------------


class TransposeAttrs(OpAttrs):
    perm: tuple[int, ...]


def _transpose_infer(attrs: TransposeAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    require(
        sorted(attrs.perm) == list(range(x.rank)),
        f"transpose: perm {list(attrs.perm)} is not a permutation of the {x.rank} dims of {x}",
    )
    return x.with_shape([x.shape[i] for i in attrs.perm])


def _transpose_torch(t: TorchWriter, node: Node) -> str:
    return f"{t.var(node.inputs[0])}.permute({', '.join(map(str, node.attrs.perm))})"


# -- slice --------------------------------------------------------------------------------


class SliceAttrs(OpAttrs):
    axis: int
    start: int = 0
    end: int | None = None  # None: to the end
    step: int = Field(1, ge=1)


def slice_length(dim: Dim, start: int, end: int | None, step: int) -> Dim:
    """Length of x[start:end:step] along a dim of size `dim` (Python semantics).

    On a symbolic dim, bounds counted from the front (>= 0) and from the back (< 0) are
    taken at face value, as if the dim were long enough; mixing a negative start with a
    non-negative end has no symbolic answer."""
    if isinstance(dim, int):
        return len(range(*slice(start, end, step).indices(dim)))
    if start >= 0:
        stop: Dim = dim if end is None else (dim + end if end < 0 else end)
    elif end is None or end < 0:
        stop = 0 if end is None else end
    else:
        raise InferenceError(f"slice [{start}:{end}] of the symbolic dim {dim} has no static length")
    return (stop - start + step - 1) // step


def _slice_infer(attrs: SliceAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank, "slice")
    length = slice_length(x.shape[axis], attrs.start, attrs.end, attrs.step)
    require(not isinstance(length, int) or length > 0, f"slice [{attrs.start}:{attrs.end}] of {x} is empty")
    shape = list(x.shape)
    shape[axis] = length
    return x.with_shape(shape)


def _slice_onnx(b: OnnxBuilder, node: Node) -> None:
    a = node.attrs
    end = INT64_MAX if a.end is None else a.end
    b.op(
        "Slice",
        [
            b.name(node.inputs[0]),
            b.int64s([a.start], "starts"),
            b.int64s([end], "ends"),
            b.int64s([a.axis], "axes"),
            b.int64s([a.step], "steps"),
        ],
        b.outputs(node),
    )


def _slice_torch(t: TorchWriter, node: Node) -> str:
    a = node.attrs
    rank = node.inputs[0].type.rank
    axis = a.axis % rank
    bounds = f"{a.start or ''}:{'' if a.end is None else a.end}" + (f":{a.step}" if a.step != 1 else "")
    prefix = "..., " if axis == rank - 1 and rank > 1 else ":, " * axis
    return f"{t.var(node.inputs[0])}[{prefix}{bounds}]"


# -- split --------------------------------------------------------------------------------


class SplitAttrs(OpAttrs):
    axis: int
    sizes: tuple[int, ...]


def _split_infer(attrs: SplitAttrs, inputs: Sequence[TensorType | None]) -> list[TensorType]:
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank, "split")
    require(all(s > 0 for s in attrs.sizes), f"split sizes must be positive, got {list(attrs.sizes)}")
    require(
        x.shape[axis] == sum(attrs.sizes),
        f"split sizes {list(attrs.sizes)} add up to {sum(attrs.sizes)}, "
        f"but dim {attrs.axis} of {x} is {x.shape[axis]}",
    )
    outputs = []
    for size in attrs.sizes:
        shape = list(x.shape)
        shape[axis] = size
        outputs.append(x.with_shape(shape))
    return outputs


def _split_onnx(b: OnnxBuilder, node: Node) -> None:
    sizes = b.int64s(node.attrs.sizes, "sizes")
    b.op("Split", [b.name(node.inputs[0]), sizes], b.outputs(node), axis=node.attrs.axis)


def _split_torch(t: TorchWriter, node: Node) -> str:
    sizes = list(node.attrs.sizes)
    return f"torch.split({t.var(node.inputs[0])}, {sizes}, dim={node.attrs.axis})"


# -- unsqueeze / squeeze ------------------------------------------------------------------


class AxisAttrs(OpAttrs):
    axis: int


def _unsqueeze_infer(attrs: AxisAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank + 1, "unsqueeze")
    return x.with_shape([*x.shape[:axis], 1, *x.shape[axis:]])


def _squeeze_infer(attrs: AxisAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank, "squeeze")
    require(x.shape[axis] == 1, f"squeeze: dim {attrs.axis} of {x} is {x.shape[axis]}, not 1")
    return x.with_shape([*x.shape[:axis], *x.shape[axis + 1 :]])


def _axes_onnx(onnx_op: str):
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, [b.name(node.inputs[0]), b.int64s([node.attrs.axis], "axes")], b.outputs(node))

    return to_onnx


def _method_torch(method: str):
    def to_torch(t: TorchWriter, node: Node) -> str:
        return f"{t.var(node.inputs[0])}.{method}({node.attrs.axis})"

    return to_torch


# -- element-wise ------------------------------------------------------------------------


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
        rng = _rng(1)
        return [
            OpSample((_arr(rng, 3, 4), _arr(rng, 3, 4, positive=True)), name="same"),
            OpSample(
                (_arr(rng, 2, 3, 4), _arr(rng, 4, positive=True)), params=frozenset({1}), name="broadcast"
            ),
        ]

    return OpDef(name, _binary_infer(name), to_onnx, to_torch, samples, group=OpGroup.ELEMENTWISE, doc=doc)


def _float_unary_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None and x.dtype.is_float, f"expects a floating-point input, got {x}")
    assert x is not None
    return x


def _unary(name: str, onnx_op: str, torch_code: str, doc: str, positive: bool = False) -> OpDef:
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        b.op(onnx_op, b.inputs(node), b.outputs(node))

    def to_torch(t: TorchWriter, node: Node) -> str:
        return torch_code.format(x=t.var(node.inputs[0]))

    def samples() -> list[OpSample]:
        rng = _rng(2)
        return [OpSample((_arr(rng, 3, 5, positive=positive),), name="2d")]

    return OpDef(name, _float_unary_infer, to_onnx, to_torch, samples, group=OpGroup.ELEMENTWISE, doc=doc)


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


def _one_input_samples(attrs: dict[str, Any], positive: bool = False):
    def samples() -> list[OpSample]:
        return [OpSample((_arr(_rng(3), 3, 5, positive=positive),), attrs, name="2d")]

    return samples


# -- less / arange -----------------------------------------------------------------------


def _less_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) == 2 and all(t is not None for t in inputs), "less needs two inputs")
    return TensorType(DType.bool, broadcast([t for t in inputs if t is not None], "less").shape)


def _less_samples() -> list[OpSample]:
    rng = _rng(12)
    positions = np.arange(5, dtype=np.int64)
    lengths = np.array([[3], [5], [1]], dtype=np.int64)
    return [
        OpSample((_arr(rng, 3, 4), _arr(rng, 3, 4)), name="float"),
        OpSample((positions, lengths), symbolic_batch=False, name="int-broadcast"),
    ]


class ArangeAttrs(OpAttrs):
    axis: int


def _arange_infer(attrs: ArangeAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    """arange(x): 0, 1, ..., n - 1 (int64) where n is dim `axis` of x, static or symbolic."""
    x = inputs[0]
    assert x is not None
    axis = axis_in_range(attrs.axis, x.rank, "arange")
    return TensorType(DType.int64, (x.shape[axis],))


def _arange_onnx(b: OnnxBuilder, node: Node) -> None:
    x = node.inputs[0]
    axis = axis_in_range(node.attrs.axis, x.type.rank, "arange")
    length = b.op("Shape", [b.name(x)], start=axis, end=axis + 1)[0]
    limit = b.op("Squeeze", [length])[0]  # Range takes scalars
    start = b.constant(np.array(0, dtype=np.int64), "start")
    delta = b.constant(np.array(1, dtype=np.int64), "delta")
    b.op("Range", [start, limit, delta], b.outputs(node))


def _arange_torch(t: TorchWriter, node: Node) -> str:
    x = t.var(node.inputs[0])
    return f"torch.arange({x}.size({node.attrs.axis}), device={x}.device)"


def _arange_samples() -> list[OpSample]:
    x = _arr(_rng(13), 3, 5)
    return [
        OpSample((x,), {"axis": 0}, name="symbolic"),
        OpSample((x,), {"axis": -1}, name="static"),
    ]


# -- where / expand / cast ------------------------------------------------------------------


def _where_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    cond, a, b = inputs[0], inputs[1], inputs[2]
    require(cond is not None and a is not None and b is not None, "where needs a condition and two values")
    assert cond is not None and a is not None and b is not None
    require(cond.dtype is DType.bool, f"where: the condition must be bool, got {cond}")
    values = broadcast([a, b], "where")
    shape = broadcast([TensorType(values.dtype, cond.shape), values], "where").shape
    return values.with_shape(shape)


def _where_samples() -> list[OpSample]:
    rng = _rng(4)
    return [OpSample((rng.random((3, 4)) < 0.5, _arr(rng, 3, 4), _arr(rng, 1, 4)), name="broadcast")]


class ExpandAttrs(OpAttrs):
    shape: tuple[Any, ...]  # ints and symbolic dims


def _expand_infer(attrs: ExpandAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    """expand(x, like?): `like`, when given, only supplies the sizes of symbolic dims."""
    x = inputs[0]
    assert x is not None
    target = TensorType(x.dtype, tuple(attrs.shape))
    require(target.rank >= x.rank, f"expand: cannot expand {x} to fewer dims {list(map(str, attrs.shape))}")
    known = x.symbols | (inputs[1].symbols if len(inputs) > 1 and inputs[1] is not None else frozenset())
    missing = target.symbols - known
    require(not missing, f"expand: the sizes of {sorted(missing)} are unknown; give a tensor that has them")
    result = broadcast([x, target], "expand")
    require(result.shape == target.shape, f"expand: {x} does not expand to {target}")
    return result


def _expand_onnx(b: OnnxBuilder, node: Node) -> None:
    x, *donors = node.input_values
    b.op("Expand", [b.name(x), b.expand_shape(x, node.outputs[0].type.shape, donors)], b.outputs(node))


def _expand_torch(t: TorchWriter, node: Node) -> str:
    x, *donors = node.input_values
    return f"{t.var(x)}.expand({t.shape_args(x, node.outputs[0].type.shape, donors)})"


def _expand_samples() -> list[OpSample]:
    rng = _rng(5)
    n = Sym.symbol("N")
    return [
        OpSample((_arr(rng, 3, 1),), {"shape": (n, 4)}, name="symbolic"),
        OpSample((_arr(rng, 1, 4),), {"shape": (2, 3, 4)}, symbolic_batch=False, name="new-dims"),
        OpSample(
            (_arr(rng, 1, 1, 4), _arr(rng, 3, 5, 4)),
            {"shape": (n, 1, 4)},
            symbols={1: {0: "N"}},
            name="size-from-another",
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


# -- reductions ---------------------------------------------------------------------------


class ReduceAttrs(OpAttrs):
    axes: tuple[int, ...]
    keepdims: bool = False


def _reduce_infer(attrs: ReduceAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    require(bool(attrs.axes), "a reduction needs at least one axis")
    axes = {axis_in_range(a, x.rank, "reduce") for a in attrs.axes}
    shape = (
        [1 if i in axes else d for i, d in enumerate(x.shape)]
        if attrs.keepdims
        else [d for i, d in enumerate(x.shape) if i not in axes]
    )
    return x.with_shape(shape)


def _reduce(name: str, onnx_op: str, torch_method: str, doc: str) -> OpDef:
    def to_onnx(b: OnnxBuilder, node: Node) -> None:
        axes = b.int64s(node.attrs.axes, "axes")
        b.op(onnx_op, [b.name(node.inputs[0]), axes], b.outputs(node), keepdims=int(node.attrs.keepdims))

    def to_torch(t: TorchWriter, node: Node) -> str:
        axes = node.attrs.axes
        dims = str(axes[0]) if len(axes) == 1 else repr(tuple(axes))
        keep = ", keepdim=True" if node.attrs.keepdims else ""
        return f"{t.var(node.inputs[0])}.{torch_method}(dim={dims}{keep})"

    def samples() -> list[OpSample]:
        x = _arr(_rng(6), 2, 3, 4)
        return [
            OpSample((x,), {"axes": (-1,)}, name="last"),
            OpSample((x,), {"axes": (1, 2), "keepdims": True}, name="keepdims"),
        ]

    return OpDef(name, _reduce_infer, to_onnx, to_torch, samples, ReduceAttrs, OpGroup.REDUCTION, doc=doc)


def _transpose_onnx(b: OnnxBuilder, node: Node) -> None:
    b.op("Transpose", b.inputs(node), b.outputs(node), perm=list(node.attrs.perm))


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


def _slice_samples() -> list[OpSample]:
    x = _arr(_rng(7), 3, 6, 5)
    return [
        OpSample((x,), {"axis": 1, "start": 1, "end": 4}, name="middle"),
        OpSample((x,), {"axis": -1, "start": 2}, name="to-end"),
        OpSample((x,), {"axis": 1, "start": -3, "step": 2}, name="negative-step2"),
        OpSample((x,), {"axis": 0, "start": 1}, name="symbolic-axis"),
    ]


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
    OpDef(
        "transpose",
        _transpose_infer,
        _transpose_onnx,
        _transpose_torch,
        lambda: [OpSample((_arr(_rng(8), 2, 3, 4),), {"perm": (0, 2, 1)}, name="last-two")],
        TransposeAttrs,
        OpGroup.MOVEMENT,
        doc="Permute dims.",
    ),
    OpDef(
        "slice",
        _slice_infer,
        _slice_onnx,
        _slice_torch,
        _slice_samples,
        SliceAttrs,
        OpGroup.MOVEMENT,
        doc="x[start:end:step] along one axis (Python semantics).",
    ),
    OpDef(
        "split",
        _split_infer,
        _split_onnx,
        _split_torch,
        lambda: [OpSample((_arr(_rng(9), 2, 7, 3),), {"axis": 1, "sizes": (3, 4)}, name="two")],
        SplitAttrs,
        OpGroup.MOVEMENT,
        outputs=(),
        doc="Split along an axis into pieces of the given sizes.",
    ),
    OpDef(
        "unsqueeze",
        _unsqueeze_infer,
        _axes_onnx("Unsqueeze"),
        _method_torch("unsqueeze"),
        _one_input_samples({"axis": 1}),
        AxisAttrs,
        OpGroup.MOVEMENT,
        doc="Insert a dim of size 1.",
    ),
    OpDef(
        "squeeze",
        _squeeze_infer,
        _axes_onnx("Squeeze"),
        _method_torch("squeeze"),
        lambda: [OpSample((_arr(_rng(10), 3, 1, 4),), {"axis": 1}, name="middle")],
        AxisAttrs,
        OpGroup.MOVEMENT,
        doc="Remove a dim of size 1.",
    ),
    _binary("sub", "Sub", "-", "a - b (with broadcasting)"),
    _binary("div", "Div", "/", "a / b (with broadcasting)"),
    _unary("exp", "Exp", "torch.exp({x})", "exp(x)"),
    _unary("log", "Log", "torch.log({x})", "natural logarithm", positive=True),
    _unary("sqrt", "Sqrt", "torch.sqrt({x})", "square root", positive=True),
    _unary("neg", "Neg", "-{x}", "-x"),
    _unary("abs", "Abs", "torch.abs({x})", "|x|"),
    _unary("softplus", "Softplus", "F.softplus({x})", "log(1 + exp(x))"),
    OpDef(
        "elu",
        _float_unary_infer,
        _elu_onnx,
        lambda t, n: f"F.elu({t.var(n.inputs[0])}, {n.attrs.alpha!r})",
        _one_input_samples({"alpha": 1.0}),
        EluAttrs,
        OpGroup.ELEMENTWISE,
        doc="x if x > 0 else alpha (exp(x) - 1)",
    ),
    OpDef(
        "scale",
        _float_unary_infer,
        _scale_onnx,
        lambda t, n: f"{t.var(n.inputs[0])} * {n.attrs.factor!r}",
        _one_input_samples({"factor": 0.125}),
        ScaleAttrs,
        OpGroup.ELEMENTWISE,
        doc="x * factor",
    ),
    OpDef(
        "pow",
        _float_unary_infer,
        _pow_onnx,
        lambda t, n: f"{t.var(n.inputs[0])} ** {n.attrs.exponent!r}",
        _one_input_samples({"exponent": 2.0}),
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
        "arange",
        _arange_infer,
        _arange_onnx,
        _arange_torch,
        _arange_samples,
        ArangeAttrs,
        OpGroup.OTHER,
        doc="0, 1, ..., n - 1 (int64), n being dim `axis` of the input (positions along a dynamic dim).",
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
        "expand",
        _expand_infer,
        _expand_onnx,
        _expand_torch,
        _expand_samples,
        ExpandAttrs,
        OpGroup.MOVEMENT,
        doc="Broadcast to a larger shape.",
    ),
    OpDef(
        "cast",
        _cast_infer,
        _cast_onnx,
        _cast_torch,
        lambda: [OpSample((_arr(_rng(11), 3, 4),), {"dtype": DType.int64}, name="to-int")],
        CastAttrs,
        OpGroup.ELEMENTWISE,
        doc="Convert the element type.",
    ),
    _reduce("reduce_mean", "ReduceMean", "mean", "Mean over axes."),
    _reduce("reduce_sum", "ReduceSum", "sum", "Sum over axes."),
    _reduce("reduce_max", "ReduceMax", "amax", "Maximum over axes."),
    _reduce("reduce_min", "ReduceMin", "amin", "Minimum over axes."),
]


# -- blocks ------------------------------------------------------------------------------


class NoOptions(BlockConfig):
    pass


class TransposeConfig(BlockConfig):
    perm: list[int] = Field(description="The new order of the dims, batch included.")


class SliceConfig(BlockConfig):
    axis: int
    start: int = 0
    end: int | None = Field(None, description="Exclusive; omitted: to the end.")
    step: int = Field(1, ge=1)


class SplitConfig(BlockConfig):
    axis: int = -1
    sizes: list[int] = Field(min_length=1, description="Sizes of the pieces; outputs are ports 0, 1, ...")


class AxisConfig(BlockConfig):
    axis: int


class EluConfig(BlockConfig):
    alpha: float = 1.0


class ScaleConfig(BlockConfig):
    factor: float


class PowConfig(BlockConfig):
    exponent: float


class ReduceConfig(BlockConfig):
    axes: list[int] = Field(min_length=1)
    keepdims: bool = False


class CastConfig(BlockConfig):
    dtype: DType


def _simple(op: str):
    def lower(ctx: BlockContext, config: BlockConfig, inputs: list[Value]) -> Value:
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in config.model_dump().items()}
        return ctx.op(op, *inputs, **options)

    return lower


def _split_block(ctx: BlockContext, config: SplitConfig, inputs: list[Value]) -> dict[str, Value]:
    pieces = ctx.ops("split", inputs, axis=config.axis, sizes=tuple(config.sizes))
    return {str(i): v for i, v in enumerate(pieces)}


BLOCKS = [
    BlockType(
        "matmul",
        NoOptions,
        _simple("matmul"),
        "Matrix product of two inputs (numpy semantics).",
        inputs=(2, 2),
    ),
    BlockType("transpose", TransposeConfig, _simple("transpose"), "Permute dims.", shorthand="perm"),
    BlockType("slice", SliceConfig, _simple("slice"), "x[start:end:step] along one axis."),
    BlockType(
        "split",
        SplitConfig,
        _split_block,
        "Split into pieces; refer to them as `name.0`, `name.1`, ...",
        outputs=("0",),
    ),
    BlockType("unsqueeze", AxisConfig, _simple("unsqueeze"), "Insert a dim of size 1.", shorthand="axis"),
    BlockType("squeeze", AxisConfig, _simple("squeeze"), "Remove a dim of size 1.", shorthand="axis"),
    BlockType("sub", NoOptions, _simple("sub"), "a - b (`in: [a, b]`).", inputs=(2, 2)),
    BlockType("div", NoOptions, _simple("div"), "a / b (`in: [a, b]`).", inputs=(2, 2)),
    BlockType("exp", NoOptions, _simple("exp"), "exp(x)."),
    BlockType("log", NoOptions, _simple("log"), "Natural logarithm."),
    BlockType("sqrt", NoOptions, _simple("sqrt"), "Square root."),
    BlockType("neg", NoOptions, _simple("neg"), "-x."),
    BlockType("abs", NoOptions, _simple("abs"), "|x|."),
    BlockType("softplus", NoOptions, _simple("softplus"), "log(1 + exp(x))."),
    BlockType("elu", EluConfig, _simple("elu"), "Exponential linear unit.", shorthand="alpha"),
    BlockType("scale", ScaleConfig, _simple("scale"), "Multiply by a constant.", shorthand="factor"),
    BlockType("pow", PowConfig, _simple("pow"), "Raise to a constant power.", shorthand="exponent"),
    BlockType("less", NoOptions, _simple("less"), "`in: [a, b]`: a < b, as bool.", inputs=(2, 2)),
    BlockType(
        "arange",
        AxisConfig,
        _simple("arange"),
        "0, 1, ..., n - 1 (int64), n being dim `axis` of the input.",
        shorthand="axis",
    ),
    BlockType(
        "where", NoOptions, _simple("where"), "`in: [cond, a, b]`: a where cond else b.", inputs=(3, 3)
    ),
    BlockType("cast", CastConfig, _simple("cast"), "Convert the element type.", shorthand="dtype"),
    BlockType("reduce_mean", ReduceConfig, _simple("reduce_mean"), "Mean over axes.", shorthand="axes"),
    BlockType("reduce_sum", ReduceConfig, _simple("reduce_sum"), "Sum over axes.", shorthand="axes"),
    BlockType("reduce_max", ReduceConfig, _simple("reduce_max"), "Maximum over axes.", shorthand="axes"),
    BlockType("reduce_min", ReduceConfig, _simple("reduce_min"), "Minimum over axes.", shorthand="axes"),
]
