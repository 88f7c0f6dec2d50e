"""Shared pieces of the graph ops' lowerings: ONNX subgraphs and the torch helper functions
that an ejected model.py defines once.

ONNX: scatters are `ScatterElements` with a reduction (add, max; opset 18+), the index
expanded to the rows' shape. `ScatterND` would be 10x faster in ONNX Runtime 1.31 (1,000,000
rows of 16 floats summed in 27 ms, against 560 ms, torch's `index_add_` 137 ms), but its
reductions race when the session has more than one intra-op thread: rows that several
edges reach lose updates (sums off by 4.4 on that test with 2 threads, exact with 1), so
it is not used. A node that no edge reaches gets 0, as in PyG: sums start from zeros;
maxima start from -inf and every -inf left is replaced by 0 (so a message that is itself
-inf also reads 0, the one place the two differ).

Torch: `index_add_` and `scatter_reduce_(..., include_self=False)`, PyG's own kernels,
without importing torch_geometric.
"""

from __future__ import annotations

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import DType, OnnxBuilder, TorchWriter

# -- ONNX --------------------------------------------------------------------------------


def edge_end(b: OnnxBuilder, edge_index: str, end: str) -> str:
    """Row 0 (source j) or row 1 (target i) of `edge_index` [2, E], as an [E] vector."""
    row = b.constant(np.array(0 if end == "source" else 1, dtype=np.int64), end)
    return b.op("Gather", [edge_index, row], axis=0)[0]


def row_count(b: OnnxBuilder, tensor: str) -> str:
    """The length of dim 0 of `tensor`, as a [1] int64 tensor."""
    return b.op("Shape", [tensor], end=1)[0]


def filled_rows(b: OnnxBuilder, rows: str, like: str, fill: float, dtype: DType) -> str:
    """A tensor of `rows` rows shaped like the rows of `like`, every entry `fill`."""
    trailing = b.op("Shape", [like], start=1)[0]
    shape = b.op("Concat", [rows, trailing], axis=0)[0]
    value = _scalar_tensor(fill, dtype)
    return b.op("ConstantOfShape", [shape], value=value)[0]


def filled_vector(b: OnnxBuilder, length: str, fill: float, dtype: DType) -> str:
    """A [length] vector of `fill` (`length` a [1] int64 tensor)."""
    return b.op("ConstantOfShape", [length], value=_scalar_tensor(fill, dtype))[0]


def _scalar_tensor(fill: float, dtype: DType):  # -> onnx.TensorProto
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array([fill], dtype=dtype.numpy))


def scatter_elements(
    b: OnnxBuilder,
    data: str,
    index: str,
    src: str,
    rank: int,
    width: int | None,
    reduction: str,
    outputs: list[str] | None = None,
) -> str:
    """`ScatterElements` of the rows of `src` [E, ...] into `data` by `index` [E]. Rows of a
    static `width` (elements after dim 0) are scattered as one flat vector, element
    ``index * width + j``: ONNX Runtime's 1-D path took 2.9 s where the row index expanded
    to [E, 16] took 4.0 s plus 0.8 s for the Expand (1,000,000 rows, loaded machine)."""
    if rank == 1:
        return b.op("ScatterElements", [data, index, src], outputs, axis=0, reduction=reduction)[0]
    if width is None:
        column = b.op("Unsqueeze", [index, b.int64s(list(range(1, rank)), "axes")])[0]
        spread = b.op("Expand", [column, b.op("Shape", [src])[0]])[0]
        return b.op("ScatterElements", [data, spread, src], outputs, axis=0, reduction=reduction)[0]
    flat = b.int64s([-1], "flat")
    column = b.op("Unsqueeze", [index, b.int64s([1], "axes")])[0]
    base = b.op("Mul", [column, b.constant(np.array(width, dtype=np.int64), "width")])[0]
    positions = b.op("Add", [base, b.constant(np.arange(width, dtype=np.int64), "columns")])[0]
    positions = b.op("Reshape", [positions, flat])[0]
    values = b.op("Reshape", [src, flat])[0]
    shape = b.op("Shape", [data])[0]
    scattered = b.op(
        "ScatterElements", [b.op("Reshape", [data, flat])[0], positions, values], axis=0, reduction=reduction
    )[0]
    return b.op("Reshape", [scattered, shape], outputs)[0]


def static_width(shape: tuple) -> int | None:
    """The number of elements after dim 0, if every trailing dim is a number."""
    width = 1
    for dim in shape[1:]:
        if not isinstance(dim, int):
            return None
        width *= dim
    return width


def scatter_rows(
    b: OnnxBuilder,
    src: str,
    index: str,
    rows: str,
    reduce: str,
    dtype: DType,
    rank: int,
    output: str | None = None,
    width: int | None = None,
) -> str:
    """Rows of `src` [E, ...] (of rank `rank`, `width` elements per row if static) reduced
    into `rows` rows by `index` [E] (sum, mean or max); a row that no index reaches is 0."""
    outputs = [output] if output else None
    if reduce == "max":
        lowest = filled_rows(b, rows, src, -np.inf, dtype)
        peak = scatter_elements(b, lowest, index, src, rank, width, "max")
        empty = b.op("IsInf", [peak], detect_positive=0)[0]
        zero = b.constant(np.array(0, dtype=dtype.numpy), "zero")
        return b.op("Where", [empty, zero, peak], outputs)[0]
    zeros = filled_rows(b, rows, src, 0.0, dtype)
    if reduce == "sum":
        return scatter_elements(b, zeros, index, src, rank, width, "add", outputs)
    total = scatter_elements(b, zeros, index, src, rank, width, "add")
    ones = filled_vector(b, b.op("Shape", [index])[0], 1.0, dtype)
    empty = filled_vector(b, rows, 0.0, dtype)
    counts = b.op("ScatterElements", [empty, index, ones], axis=0, reduction="add")[0]
    one = b.constant(np.array(1, dtype=dtype.numpy), "one")
    counts = b.op("Max", [counts, one])[0]  # mean over no rows is 0, as PyG's clamp(min=1)
    if rank > 1:
        counts = b.op("Unsqueeze", [counts, b.int64s(list(range(1, rank)), "axes")])[0]
    return b.op("Div", [total, counts], outputs)[0]


# -- torch -------------------------------------------------------------------------------

_SCATTER_SUM = '''
def scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Row index[e] of the [size, ...] result sums src[e]; rows no index reaches are 0."""
    return src.new_zeros((size, *src.shape[1:])).index_add_(0, index, src)
'''

_SCATTER_MEAN = '''
def scatter_mean(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """The mean of the rows of src sent to each of `size` rows (0 where none are)."""
    total = scatter_sum(src, index, size)
    count = scatter_sum(torch.ones_like(index, dtype=src.dtype), index, size).clamp_(min=1)
    return total / count.view(-1, *[1] * (src.dim() - 1))
'''

_SCATTER_MAX = '''
def scatter_max(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """The elementwise maximum of the rows of src sent to each of `size` rows (0 where none are)."""
    spread = index.view(-1, *[1] * (src.dim() - 1)).expand_as(src)
    peak = src.new_zeros((size, *src.shape[1:])).scatter_reduce_(0, spread, src, "amax", include_self=False)
    return peak.masked_fill_(peak == float("-inf"), 0.0)
'''


def scatter_helper(t: TorchWriter, reduce: str) -> str:
    """The name of the model.py helper that scatters rows with `reduce` (defined once)."""
    sum_name = t.helper("scatter_sum", _SCATTER_SUM)
    if reduce == "sum":
        return sum_name
    if reduce == "mean":
        return t.helper("scatter_mean", _SCATTER_MEAN.replace("scatter_sum(", f"{sum_name}("))
    return t.helper("scatter_max", _SCATTER_MAX)
