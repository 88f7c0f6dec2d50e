"""Shape-inference helpers shared by op definitions: broadcasting, reshape, concat."""

from __future__ import annotations

from collections.abc import Sequence

from dlc.ir.ops import InferenceError
from dlc.ir.symbolic import Dim, Sym, product
from dlc.ir.types import TensorType, format_shape, normalize_axis


def require(condition: bool, message: str) -> None:
    if not condition:
        raise InferenceError(message)


def present(inputs: Sequence[TensorType | None], count: int, op: str) -> list[TensorType]:
    """The first `count` inputs, which must all be given."""
    if len(inputs) < count or any(t is None for t in inputs[:count]):
        raise InferenceError(f"{op} needs {count} input(s)")
    return [t for t in inputs[:count] if t is not None]


def same_dtype(types: Sequence[TensorType], op: str) -> None:
    dtypes = {t.dtype for t in types}
    if len(dtypes) > 1:
        listed = ", ".join(str(t) for t in types)
        raise InferenceError(f"{op}: inputs have different dtypes: {listed}")


def broadcast(types: Sequence[TensorType], op: str) -> TensorType:
    """numpy-style broadcasting; symbolic dims broadcast only with equal dims or 1."""
    same_dtype(types, op)
    rank = max(t.rank for t in types)
    result: list[Dim] = []
    for axis in range(rank):
        dims = [t.shape[axis - rank + t.rank] for t in types if axis - rank + t.rank >= 0]
        chosen: Dim = 1
        for dim in dims:
            if dim == 1 or dim == chosen:
                continue
            if chosen == 1:
                chosen = dim
            else:
                shapes = " and ".join(format_shape(t.shape) for t in types)
                raise InferenceError(f"{op}: shapes {shapes} do not match (dims {chosen} and {dim} differ)")
        result.append(chosen)
    return TensorType(types[0].dtype, tuple(result))


def concat(types: Sequence[TensorType], axis: int, op: str) -> TensorType:
    same_dtype(types, op)
    ranks = {t.rank for t in types}
    shapes = ", ".join(format_shape(t.shape) for t in types)
    require(len(ranks) == 1, f"{op}: inputs have different ranks: {shapes}")
    rank = types[0].rank
    try:
        axis = normalize_axis(axis, rank)
    except ValueError as error:
        raise InferenceError(f"{op}: {error}") from None
    out = list(types[0].shape)
    for t in types[1:]:
        for i in range(rank):
            if i != axis and t.shape[i] != out[i]:
                raise InferenceError(
                    f"{op}: shapes {shapes} differ in dim {i}, not only in the concat axis {axis}"
                )
        out[axis] = out[axis] + t.shape[axis]
    return TensorType(types[0].dtype, tuple(out))


def divide_exact(total: Dim, known: Dim) -> Dim | None:
    """total / known when it divides exactly (ints, or a polynomial by an int or a monomial)."""
    if isinstance(known, int):
        if known == 0:
            return None
        if isinstance(total, int):
            return total // known if total % known == 0 else None
        if all(c % known == 0 for _, c in total.terms):
            return Sym._build({m: c // known for m, c in total.terms})
        return None
    if len(known.terms) != 1 or isinstance(total, int):
        return None
    ((atoms, coeff),) = known.terms
    result: dict[tuple, int] = {}
    for monomial, c in total.terms:
        remaining = list(monomial)
        for atom in atoms:
            if atom not in remaining:
                return None
            remaining.remove(atom)
        if c % coeff:
            return None
        result[tuple(remaining)] = result.get(tuple(remaining), 0) + c // coeff
    return Sym._build(result)


def reshape(source: TensorType, target: Sequence[Dim], op: str = "reshape") -> TensorType:
    """Resolve at most one -1 in `target` and check the element counts agree."""
    unknown = [i for i, d in enumerate(target) if isinstance(d, int) and d == -1]
    require(len(unknown) <= 1, f"{op}: at most one -1 in the target shape {format_shape(target)}")
    for dim in target:
        require(not ((isinstance(dim, int) and dim < -1) or dim == 0), f"{op}: bad target dim {dim}")
    total = product(source.shape)
    known = product([d for d in target if not (isinstance(d, int) and d == -1)])
    resolved = list(target)
    if unknown:
        inferred = divide_exact(total, known)
        if inferred is None:
            raise InferenceError(
                f"{op}: cannot reshape {format_shape(source.shape)} to {format_shape(target)} "
                f"({total} elements are not a multiple of {known})"
            )
        resolved[unknown[0]] = inferred
    elif total != known:
        raise InferenceError(
            f"{op}: cannot reshape {format_shape(source.shape)} ({total} elements) "
            f"to {format_shape(target)} ({known} elements)"
        )
    return TensorType(source.dtype, tuple(resolved))


def axis_in_range(axis: int, rank: int, op: str) -> int:
    try:
        return normalize_axis(axis, rank)
    except ValueError as error:
        raise InferenceError(f"{op}: {error}") from None
