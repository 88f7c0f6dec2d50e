"""Binary masks of coupling layers: which entries of x a coupling keeps (mask 1) and
which it transforms (mask 0), as functions of the input's shape without the batch dim.

- `halves`: the first half of the features (dim 1) kept, the second transformed;
- `alternate`: every other feature kept, starting with the first;
- `checkerboard`: over the last two (spatial) dims, (h + w) even kept (RealNVP, images);
- `channel`: the first half of the channels kept, for [N, C, H, W] (RealNVP, images);
- a list: the mask itself, with exactly the input's shape without the batch dim.

`parity: 1` swaps kept and transformed entries, so that consecutive couplings alternate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from dlc.lazy_imports import numpy as np

MaskKind = Literal["halves", "alternate", "checkerboard", "channel"]
MASK_KINDS: tuple[str, ...] = ("halves", "alternate", "checkerboard", "channel")


class MaskError(ValueError):
    """A mask that does not fit the input; the block reports it at its layer."""


def build_mask(kind: MaskKind | list[Any], parity: int, shape: Sequence[int]) -> np.ndarray:
    """The float32 mask of one coupling for inputs of `shape` (without the batch dim)."""
    shape = tuple(int(d) for d in shape)
    if isinstance(kind, list):
        mask = _given(kind, shape)
    elif kind == "halves":
        mask = _first_half(shape, axis=0, what="features")
    elif kind == "alternate":
        mask = np.zeros(shape, np.float32)
        mask[0::2] = 1.0
    elif kind == "checkerboard":
        if len(shape) < 2:
            raise MaskError(
                f"a checkerboard mask needs spatial dims, but the input has shape [N, {_dims(shape)}]"
            )
        rows = np.arange(shape[-2])[:, None]
        cols = np.arange(shape[-1])[None, :]
        mask = np.broadcast_to(((rows + cols) % 2 == 0).astype(np.float32), shape).copy()
    else:
        if len(shape) < 3:
            raise MaskError(f"a channel mask needs [N, C, H, W] inputs, got [N, {_dims(shape)}]")
        mask = _first_half(shape, axis=0, what="channels")
    return 1.0 - mask if parity else mask


def _first_half(shape: tuple[int, ...], axis: int, what: str) -> np.ndarray:
    count = shape[axis]
    if count < 2:
        raise MaskError(f"splitting {count} {what} in halves leaves one half empty")
    mask = np.zeros(shape, np.float32)
    index = [slice(None)] * len(shape)
    index[axis] = slice(0, count // 2)
    mask[tuple(index)] = 1.0
    return mask


def _given(values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    try:
        mask = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError) as error:
        raise MaskError(f"the mask must be a (nested) list of 0s and 1s: {error}") from None
    if mask.shape != shape:
        raise MaskError(
            f"the mask has shape [{_dims(mask.shape)}], but the input is [N, {_dims(shape)}]: "
            f"it needs shape [{_dims(shape)}]"
        )
    if not np.isin(mask, (0.0, 1.0)).all():
        raise MaskError("the mask must hold only 0s (transformed) and 1s (kept)")
    if mask.all() or not mask.any():
        raise MaskError(
            "the mask keeps every entry or none: the coupling would be the identity, "
            "or its nets would see only zeros"
        )
    return mask


def _dims(shape: Sequence[int]) -> str:
    return ", ".join(str(d) for d in shape)
