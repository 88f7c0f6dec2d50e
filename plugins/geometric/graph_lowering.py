"""Shared pieces of the graph ops' lowerings: ONNX subgraphs and the torch helper functions
that an ejected model.py defines once.

ONNX: scatters are `ScatterND` with a reduction (add, max; opset 18+), not
`ScatterElements`: ONNX Runtime's ScatterND copies whole rows and summed 1,000,000 rows of
16 floats in 27 ms here, ScatterElements (one index per element) took 560 ms, torch's
`index_add_` 137 ms. A node that no edge reaches gets 0, as in PyG: sums start from zeros;
maxima start from -inf and every -inf left is replaced by 0 (so a message that is itself
-inf also reads 0, the one place the two differ).

Torch: `index_add_` and `scatter_reduce_(..., include_self=False)`, PyG's own kernels,
without importing torch_geometric.
"""

from __future__ import annotations

import numpy as np

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


def scatter_rows(
    b: OnnxBuilder,
    src: str,
    index: str,
    rows: str,
    reduce: str,
    dtype: DType,
    rank: int,
    output: str | None = None,
) -> str:
    """Rows of `src` [E, ...] (of rank `rank`) reduced into `rows` rows by `index` [E] (sum,
    mean or max); a row that no index reaches is 0."""
    outputs = [output] if output else None
    positions = b.op("Unsqueeze", [index, b.int64s([1], "axes")])[0]  # [E, 1] for ScatterND
    if reduce == "max":
        lowest = filled_rows(b, rows, src, -np.inf, dtype)
        peak = b.op("ScatterND", [lowest, positions, src], reduction="max")[0]
        empty = b.op("IsInf", [peak], detect_positive=0)[0]
        zero = b.constant(np.array(0, dtype=dtype.numpy), "zero")
        return b.op("Where", [empty, zero, peak], outputs)[0]
    zeros = filled_rows(b, rows, src, 0.0, dtype)
    if reduce == "sum":
        return b.op("ScatterND", [zeros, positions, src], outputs, reduction="add")[0]
    total = b.op("ScatterND", [zeros, positions, src], reduction="add")[0]
    ones = filled_vector(b, b.op("Shape", [index])[0], 1.0, dtype)
    counts = b.op("ScatterND", [filled_vector(b, rows, 0.0, dtype), positions, ones], reduction="add")[0]
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
