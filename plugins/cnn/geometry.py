"""Spatial arithmetic shared by convolution and pooling: per-dim arguments, padding
resolution and output sizes.

Ops carry padding in ONNX ``pads`` order: every begin, then every end
(``(top, left, bottom, right)`` in 2-D). Blocks accept friendlier forms (one int, one int
per dim, ``[begin, end]`` pairs per dim, ``same``, ``valid``, ``causal``) and resolve them
here into that explicit, canonical tuple, so passes never see a padding mode string.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from dlc.plugin_api import Dim, InferenceError, format_shape, is_static

PaddingMode = Literal["same", "valid", "causal"]
PaddingSpec = int | list[int] | list[list[int]] | PaddingMode

# The bound `check_per_dim(..., 1)` enforces, for the JSON Schema (`dlc schema`): an int, or
# each int of a per-dim list, at least 1 (`minimum` and `items` apply only to ints and lists).
PER_DIM_AT_LEAST_ONE = {"minimum": 1, "items": {"minimum": 1}}

SPATIAL_NAMES = {1: "L", 2: "H, W", 3: "D, H, W"}


def per_dim(value: int | Sequence[int], rank: int, what: str) -> tuple[int, ...]:
    """One int for every spatial dim, or exactly one per dim."""
    if isinstance(value, int):
        return (value,) * rank
    values = tuple(value)
    if len(values) != rank:
        raise ValueError(f"{what} takes one int or {rank} (one per spatial dim), got {list(values)}")
    return values


def check_per_dim(value: Any, rank: int, what: str, minimum: int) -> Any:
    """Validate an int-or-list argument for a block config (`rank` spatial dims)."""
    values = per_dim(value, rank, what)
    bad = [v for v in values if v < minimum]
    if bad:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def check_padding(value: Any, rank: int, allowed_modes: Sequence[str]) -> Any:
    """Validate a padding spec: an int, one int per dim, [begin, end] pairs, or a mode."""
    if isinstance(value, str):
        if value not in allowed_modes:
            modes = f"or one of {', '.join(allowed_modes)}" if allowed_modes else "only"
            raise ValueError(f"padding takes ints or [begin, end] pairs {modes} here, not '{value}'")
        if value == "causal" and rank != 1:
            raise ValueError("padding 'causal' pads the time axis of a 1-D input (conv1d)")
        return value
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        if len(value) != rank or any(len(pair) != 2 for pair in value):
            raise ValueError(f"per-side padding takes {rank} [begin, end] pair(s), got {value}")
        flat = [p for pair in value for p in pair]
    else:
        flat = list(per_dim(value, rank, "padding"))
    if any(p < 0 for p in flat):
        raise ValueError(f"padding must be >= 0, got {value}")
    return value


def resolve_padding(
    spec: PaddingSpec,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    spatial: Sequence[Dim],
) -> tuple[int, ...]:
    """Explicit pads (all begins, then all ends) for a padding spec.

    ``same`` keeps ``ceil(size / stride)`` outputs; the odd pad goes at the end (as torch
    and TensorFlow do). ``causal`` pads only the beginning, by ``dilation * (kernel - 1)``,
    so output t sees inputs up to t. Raises ValueError where the spec cannot apply."""
    rank = len(kernel)
    if spec == "valid":
        return (0,) * (2 * rank)
    if spec == "causal":
        return (*(d * (k - 1) for k, d in zip(kernel, dilation, strict=True)), *(0,) * rank)
    if spec == "same":
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, stride, dilation, strict=True):
            reach = d * (k - 1) + 1
            if s == 1:
                total = reach - 1
            elif is_static(size):
                total = max((math.ceil(int(size) / s) - 1) * s + reach - int(size), 0)
            else:
                raise ValueError(f"padding 'same' with stride {s} needs a static size, got {size}")
            begins.append(total // 2)
            ends.append(total - total // 2)
        return (*begins, *ends)
    if isinstance(spec, list) and spec and all(isinstance(v, list) for v in spec):
        return (*(pair[0] for pair in spec), *(pair[1] for pair in spec))
    symmetric = per_dim(spec, rank, "padding")  # type: ignore[arg-type]
    return (*symmetric, *symmetric)


def window_output_size(size: Dim, begin: int, end: int, kernel: int, stride: int, dilation: int) -> Dim:
    """floor((size + begin + end - dilation * (kernel - 1) - 1) / stride) + 1."""
    return (size + begin + end - dilation * (kernel - 1) - 1) // stride + 1


def windowed_shape(
    op: str,
    shape: Sequence[Dim],
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[int],
    dilation: Sequence[int],
) -> list[Dim]:
    """Output spatial dims of a sliding window over ``shape[2:]``; a window that does not
    fit the padded input is an InferenceError naming the shapes."""
    rank = len(kernel)
    spatial = shape[2:]
    result: list[Dim] = []
    for axis, (size, k, s, d) in enumerate(zip(spatial, kernel, stride, dilation, strict=True)):
        begin, end = pads[axis], pads[axis + rank]
        reach = d * (k - 1) + 1
        if is_static(size) and int(size) + begin + end < reach:
            dilated = f" (dilated to {reach})" if d > 1 else ""
            raise InferenceError(
                f"{op}: kernel {format_kernel(kernel)}{dilated} is larger than the input "
                f"{format_shape(shape)}: spatial dim {axis} is {size}, padded to {int(size) + begin + end}"
            )
        result.append(window_output_size(size, begin, end, k, s, d))
    return result


def format_kernel(kernel: Sequence[int]) -> str:
    return "x".join(str(k) for k in kernel)


def compact(values: Sequence[int]) -> str:
    """Python source for a torch size argument: ``3`` when all equal, else ``(3, 1)``."""
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        return str(values[0])
    return "(" + ", ".join(map(str, values)) + ")"


def torch_pad_order(pads: Sequence[int]) -> tuple[int, ...]:
    """ONNX pads (begins, then ends; first dim first) -> F.pad's (last dim first, begin/end pairs)."""
    rank = len(pads) // 2
    order: list[int] = []
    for axis in reversed(range(rank)):
        order += [pads[axis], pads[axis + rank]]
    return tuple(order)


def split_pads(pads: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rank = len(pads) // 2
    return tuple(pads[:rank]), tuple(pads[rank:])


def spatial_description(rank: int) -> str:
    return f"[N, C, {SPATIAL_NAMES[rank]}]"


def expect_spatial_input(shape: Sequence[Dim], rank: int) -> str | None:
    """An error message when `shape` is not [N, C, *spatial] of the given spatial rank."""
    if len(shape) != rank + 2:
        return f"expects an input {spatial_description(rank)}, got {format_shape(shape)}"
    return None


def ranked(config: type, rank: int) -> type:
    """A subclass of a block config for `rank` spatial dims: ``ranked(ConvConfig, 2)`` is
    ``Conv2dConfig``, whose validators check one value per spatial dim."""
    return type(f"{config.__name__.removesuffix('Config')}{rank}dConfig", (config,), {"rank": rank})
