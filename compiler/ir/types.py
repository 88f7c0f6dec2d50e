"""Tensor types of IR values: a dtype and a shape whose dims are ints or symbols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dlc.ir.symbolic import Dim, Sym, dim_symbols, evaluate_dim, product
from dlc.lazy_imports import numpy as np
from dlc.limits import dim_problem

# The lowest float32, float(np.finfo(np.float32).min), written out so that importing the
# modules that use it does not import numpy (`dlc.lazy_imports`); a test checks the value.
FLOAT32_LOWEST = -3.4028234663852886e38


class DType(StrEnum):
    """Element types dlc knows, named as in specs; values map to numpy, ONNX and torch."""

    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"
    float64 = "float64"
    int64 = "int64"
    int32 = "int32"
    int8 = "int8"
    uint8 = "uint8"
    bool = "bool"

    @property
    def is_float(self) -> bool:
        return self in (DType.float32, DType.float16, DType.bfloat16, DType.float64)

    @property
    def numpy(self) -> np.dtype:
        if self is DType.bfloat16:
            raise TypeError("numpy has no bfloat16; convert through float32")
        return np.dtype(self.value)

    @property
    def onnx(self) -> int:
        from onnx import TensorProto

        return {
            DType.float32: TensorProto.FLOAT,
            DType.float16: TensorProto.FLOAT16,
            DType.bfloat16: TensorProto.BFLOAT16,
            DType.float64: TensorProto.DOUBLE,
            DType.int64: TensorProto.INT64,
            DType.int32: TensorProto.INT32,
            DType.int8: TensorProto.INT8,
            DType.uint8: TensorProto.UINT8,
            DType.bool: TensorProto.BOOL,
        }[self]

    @property
    def torch_name(self) -> str:
        return f"torch.{self.value}"

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE[self]

    @staticmethod
    def from_numpy(dtype: np.dtype) -> DType:
        return DType(np.dtype(dtype).name)


# Bytes per element (numpy's itemsize; bfloat16 has none there), without importing numpy.
_ITEMSIZE = {
    DType.float32: 4,
    DType.float16: 2,
    DType.bfloat16: 2,
    DType.float64: 8,
    DType.int64: 8,
    DType.int32: 4,
    DType.int8: 1,
    DType.uint8: 1,
    DType.bool: 1,
}


@dataclass(frozen=True)
class TensorType:
    """The type of an IR value: dtype plus shape (ints and symbolic dims)."""

    dtype: DType
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def symbols(self) -> frozenset[str]:
        names: frozenset[str] = frozenset()
        for dim in self.shape:
            names |= dim_symbols(dim)
        return names

    def numel(self) -> Dim:
        return product(self.shape)

    def concrete_shape(self, bindings: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(evaluate_dim(d, bindings) for d in self.shape)

    def with_shape(self, shape: Sequence[Dim]) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def __str__(self) -> str:
        return f"{self.dtype.value}{format_shape(self.shape)}"


def format_shape(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def parse_dim(value: int | str) -> Dim:
    """A spec dim: a non-negative int or a symbol name such as `N`."""
    if isinstance(value, bool):
        raise ValueError("a dimension must be an int or a symbol name")
    if isinstance(value, int):
        problem = dim_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value
    if isinstance(value, str) and value.isidentifier():
        return Sym.symbol(value)
    raise ValueError(f"a dimension must be a positive int or a symbol name such as N, got {value!r}")


def normalize_axis(axis: int, rank: int) -> int:
    """Turn a possibly negative axis into a positive one; raise ValueError when out of range."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank
