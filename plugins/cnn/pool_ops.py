"""Pooling ops: `max_pool`, `avg_pool` (1-D/2-D/3-D by input rank) and `adaptive_avg_pool`.

Windows follow torch's ``ceil_mode=False`` arithmetic; padding is explicit, in ONNX pads
order, and may be asymmetric (blocks turn ``ceil_mode=True`` into extra end padding, which
is exact for max pooling). Every window must overlap the input: each pad is smaller than
the (dilated) kernel. Max pooling ignores padded positions; average pooling counts them
as zeros unless ``count_include_pad=False`` (torch's default is True).

`adaptive_avg_pool` has torch's bins: output i of n averages inputs
``floor(i * L / n)`` to ``ceil((i + 1) * L / n)`` (exclusive), so bins may overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import model_validator

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    format_shape,
    is_static,
    require,
)

from .geometry import compact, split_pads, torch_pad_order, windowed_shape


class PoolAttrs(OpAttrs):
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]  # ONNX pads: all begins, then all ends

    @model_validator(mode="after")
    def _consistent(self) -> PoolAttrs:
        rank = len(self.kernel)
        if len(self.stride) != rank or len(self.padding) != 2 * rank:
            raise ValueError(
                f"kernel {self.kernel}, stride {self.stride} and padding {self.padding} disagree"
            )
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError("kernel and stride must be >= 1 and padding >= 0")
        return self

    @property
    def dilations(self) -> tuple[int, ...]:
        return (1,) * len(self.kernel)


class MaxPoolAttrs(PoolAttrs):
    dilation: tuple[int, ...]

    @property
    def dilations(self) -> tuple[int, ...]:
        return self.dilation


class AvgPoolAttrs(PoolAttrs):
    count_include_pad: bool = True


class AdaptivePoolAttrs(OpAttrs):
    output_size: tuple[int, ...]


def _pool_infer(name: str):
    def infer(attrs: PoolAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
        x = inputs[0]
        require(x is not None, f"{name} needs an input")
        assert x is not None
        rank = len(attrs.kernel)
        require(x.dtype.is_float, f"{name} expects a floating-point input, got {x}")
        require(
            x.rank == rank + 2,
            f"{name}: a {rank}-D window needs an input [N, C, *{rank} spatial dims], got {x}",
        )
        dilation = attrs.dilations
        for axis, k in enumerate(attrs.kernel):
            reach = dilation[axis] * (k - 1) + 1
            pads = (attrs.padding[axis], attrs.padding[axis + rank])
            require(
                max(pads) < reach,
                f"{name}: padding {list(attrs.padding)} must be smaller than the kernel "
                f"{list(attrs.kernel)} in every dim, so that every window sees the input",
            )
        if isinstance(attrs, AvgPoolAttrs) and not attrs.count_include_pad:
            begins, ends = split_pads(attrs.padding)
            require(
                begins == ends and all(2 * p <= k for p, k in zip(begins, attrs.kernel, strict=True)),
                f"{name}: count_include_pad=False needs symmetric padding of at most half the kernel "
                f"(as torch), got {list(attrs.padding)}",
            )
        spatial = windowed_shape(name, x.shape, attrs.kernel, attrs.stride, attrs.padding, dilation)
        return x.with_shape([*x.shape[:2], *spatial])

    return infer


def _pool_onnx(b: OnnxBuilder, node: Node) -> None:
    a = node.attrs
    options = {"kernel_shape": list(a.kernel), "strides": list(a.stride), "pads": list(a.padding)}
    if isinstance(a, MaxPoolAttrs):
        b.op("MaxPool", b.inputs(node), b.outputs(node), dilations=list(a.dilation), **options)
    else:
        count = int(a.count_include_pad)
        b.op("AveragePool", b.inputs(node), b.outputs(node), count_include_pad=count, **options)


def _torch_ceil_mode(node: Node) -> bool:
    """Whether torch's ceil_mode, with the begin pads as its padding, gives this max pool:
    the extra end padding then only adds the partial windows that ceil_mode keeps, and
    max pooling ignores padding either way."""
    a = node.attrs
    begins, ends = split_pads(a.padding)
    if not isinstance(a, MaxPoolAttrs) or any(
        e < b or 2 * b > k for b, e, k in zip(begins, ends, a.kernel, strict=True)
    ):
        return False
    sizes = node.inputs[0].type.shape[2:]
    if not all(is_static(d) for d in sizes):
        return False
    for size, out, k, s, d, p in zip(
        sizes, node.outputs[0].type.shape[2:], a.kernel, a.stride, a.dilation, begins, strict=True
    ):
        count = -(-(int(size) + 2 * p - d * (k - 1) - 1) // s) + 1
        if (count - 1) * s >= int(size) + p:
            count -= 1
        if count != out:
            return False
    return True


def _pool_torch(t: TorchWriter, node: Node) -> str:
    """torch pads symmetrically by at most half the (undilated) kernel, or rounds up with
    ceil_mode; other padding is an explicit F.pad (-inf for max, zeros for average, which
    is what count_include_pad=True means)."""
    a = node.attrs
    rank = len(a.kernel)
    is_max = isinstance(a, MaxPoolAttrs)
    begins, ends = split_pads(a.padding)
    native = begins == ends and all(2 * p <= k for p, k in zip(begins, a.kernel, strict=True))
    ceil_mode = not native and _torch_ceil_mode(node)
    source = t.var(node.inputs[0])
    if not native and not ceil_mode:
        fill = ', value=float("-inf")' if is_max else ""
        source = f"F.pad({source}, {torch_pad_order(a.padding)}{fill})"
    arguments = [source, compact(a.kernel)]
    if a.stride != a.kernel:
        arguments.append(f"stride={compact(a.stride)}")
    if (native or ceil_mode) and any(begins):
        arguments.append(f"padding={compact(begins)}")
    if is_max and set(a.dilation) != {1}:
        arguments.append(f"dilation={compact(a.dilation)}")
    if ceil_mode:
        arguments.append("ceil_mode=True")
    if not is_max and not a.count_include_pad:
        arguments.append("count_include_pad=False")
    return f"F.{'max' if is_max else 'avg'}_pool{rank}d({', '.join(arguments)})"


def _pool_samples(kind: str):
    def samples() -> list[OpSample]:
        rng = np.random.default_rng(40 if kind == "max" else 41)

        def arr(*shape: int) -> np.ndarray:
            return rng.standard_normal(shape).astype(np.float32)

        def attrs(kernel, stride, padding, **extra) -> dict:
            return {"kernel": kernel, "stride": stride, "padding": padding, **extra}

        dilation = (lambda rank, d=1: {"dilation": (d,) * rank}) if kind == "max" else (lambda rank, d=1: {})
        cases = [
            OpSample((arr(2, 3, 10),), attrs((3,), (2,), (1, 1), **dilation(1)), name="1d-padded"),
            OpSample((arr(2, 3, 8, 8),), attrs((2, 2), (2, 2), (0, 0, 0, 0), **dilation(2)), name="2d"),
            OpSample((arr(2, 2, 9, 7),), attrs((3, 3), (2, 1), (1, 0, 1, 0), **dilation(2)), name="2d-rect"),
            OpSample(
                (arr(2, 2, 7, 7),),
                attrs((3, 3), (2, 2), (0, 0, 1, 1), **dilation(2)),
                name="2d-asymmetric-ceil",
            ),
            OpSample(
                (arr(1, 2, 5, 6, 4),),
                attrs((2, 3, 2), (1, 2, 2), (0, 1, 0, 0, 1, 0), **dilation(3)),
                name="3d",
            ),
        ]
        if kind == "max":
            cases.append(
                OpSample(
                    (arr(2, 2, 9, 9),), attrs((3, 3), (1, 1), (2, 2, 2, 2), dilation=(2, 2)), name="dilated"
                )
            )
        else:
            cases.append(
                OpSample(
                    (arr(2, 2, 6, 6),),
                    attrs((3, 3), (2, 2), (1, 1, 1, 1), count_include_pad=False),
                    name="exclude-pad",
                )
            )
        return cases

    return samples


# -- adaptive average pooling ------------------------------------------------------------


def adaptive_bins(length: int, count: int) -> list[tuple[int, int]]:
    """torch's bins: [floor(i L / n), ceil((i + 1) L / n)) for i < n."""
    return [((i * length) // count, -((-(i + 1) * length) // count)) for i in range(count)]


def _adaptive_infer(attrs: AdaptivePoolAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None, "adaptive_avg_pool needs an input")
    assert x is not None
    rank = len(attrs.output_size)
    require(
        min(attrs.output_size, default=0) >= 1,
        f"adaptive_avg_pool: output size {attrs.output_size} must be >= 1",
    )
    require(
        x.rank == rank + 2,
        f"adaptive_avg_pool to {list(attrs.output_size)} needs [N, C, *{rank} spatial dims], got {x}",
    )
    require(
        all(is_static(d) for d in x.shape[2:]),
        f"adaptive_avg_pool needs static spatial dims, got {format_shape(x.shape)}",
    )
    return x.with_shape([*x.shape[:2], *attrs.output_size])


def _adaptive_onnx(b: OnnxBuilder, node: Node) -> None:
    """Even bins are an AveragePool (or GlobalAveragePool); uneven ones are a matrix
    product per spatial axis with the bin-averaging matrix (exact torch semantics)."""
    x = node.inputs[0]
    sizes = [int(d) for d in x.type.shape[2:]]
    outputs = list(node.attrs.output_size)
    if all(o == 1 for o in outputs):
        b.op("GlobalAveragePool", b.inputs(node), b.outputs(node))
        return
    if all(s % o == 0 for s, o in zip(sizes, outputs, strict=True)):
        kernel = [s // o for s, o in zip(sizes, outputs, strict=True)]
        if all(k == 1 for k in kernel):
            b.op("Identity", b.inputs(node), b.outputs(node))
            return
        b.op("AveragePool", b.inputs(node), b.outputs(node), kernel_shape=kernel, strides=kernel)
        return
    current = b.name(x)
    pending = [axis for axis in range(len(sizes)) if sizes[axis] != outputs[axis]]
    for axis in pending:
        matrix = np.zeros((sizes[axis], outputs[axis]), dtype=x.type.dtype.numpy)
        for column, (start, end) in enumerate(adaptive_bins(sizes[axis], outputs[axis])):
            matrix[start:end, column] = 1.0 / (end - start)
        final = b.outputs(node) if axis == pending[-1] else None
        current = _average_bins(b, current, 2 + axis, x.type.rank, matrix, final)


def _average_bins(
    b: OnnxBuilder, source: str, axis: int, rank: int, matrix: np.ndarray, outputs: list[str] | None
) -> str:
    """`source` averaged over bins along `axis`: a product with the [size, count] bin matrix."""
    if axis == rank - 1:
        return b.op("MatMul", [source, b.constant(matrix, "bins")], outputs)[0]
    if axis == rank - 2:
        return b.op("MatMul", [b.constant(np.ascontiguousarray(matrix.T), "bins"), source], outputs)[0]
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    moved = b.op("Transpose", [source], perm=perm)[0]
    pooled = b.op("MatMul", [moved, b.constant(matrix, "bins")])[0]
    return b.op("Transpose", [pooled], outputs, perm=perm)[0]


def _adaptive_torch(t: TorchWriter, node: Node) -> str:
    rank = len(node.attrs.output_size)
    return f"F.adaptive_avg_pool{rank}d({t.var(node.inputs[0])}, {compact(node.attrs.output_size)})"


def _adaptive_samples() -> list[OpSample]:
    rng = np.random.default_rng(42)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    return [
        OpSample((arr(2, 3, 10),), {"output_size": (4,)}, name="1d-overlapping"),
        OpSample((arr(2, 3, 12, 12),), {"output_size": (6, 6)}, name="2d-even"),
        OpSample((arr(2, 3, 7, 5),), {"output_size": (1, 1)}, name="2d-global"),
        OpSample((arr(2, 3, 6, 6),), {"output_size": (6, 6)}, name="2d-identity"),
        OpSample((arr(2, 3, 2, 3),), {"output_size": (7, 7)}, name="2d-upsampling-bins"),
        OpSample((arr(2, 3, 13, 8),), {"output_size": (5, 3)}, name="2d-uneven"),
        OpSample((arr(1, 2, 5, 4, 6),), {"output_size": (2, 3, 4)}, name="3d"),
    ]


OPS = [
    OpDef(
        "max_pool",
        _pool_infer("max_pool"),
        _pool_onnx,
        _pool_torch,
        _pool_samples("max"),
        MaxPoolAttrs,
        OpGroup.REDUCTION,
        doc="Maximum over each window (padding ignored); 1-D/2-D/3-D by input rank.",
    ),
    OpDef(
        "avg_pool",
        _pool_infer("avg_pool"),
        _pool_onnx,
        _pool_torch,
        _pool_samples("avg"),
        AvgPoolAttrs,
        OpGroup.REDUCTION,
        doc="Mean over each window (padding counts as zeros unless count_include_pad=False).",
    ),
    OpDef(
        "adaptive_avg_pool",
        _adaptive_infer,
        _adaptive_onnx,
        _adaptive_torch,
        _adaptive_samples,
        AdaptivePoolAttrs,
        OpGroup.REDUCTION,
        doc="Average over torch's adaptive bins to a fixed output size.",
    ),
]
