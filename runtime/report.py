"""What `dlc run` reports about a run: the providers the session got, the run time, and
per input and output its shape, dtype and summary statistics (JSON-ready)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def array_report(array: np.ndarray) -> dict[str, Any]:
    """Shape, dtype, and mean/std/min/max as floats (None for an empty array)."""
    entry: dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    if array.size:
        numeric = array.astype(np.float64)
        stats = (numeric.mean(), numeric.std(), numeric.min(), numeric.max())
        entry.update(zip(("mean", "std", "min", "max"), (float(v) for v in stats), strict=True))
    else:
        entry.update(dict.fromkeys(("mean", "std", "min", "max")))
    return entry


def run_report(
    providers: Sequence[str],
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    seconds: float,
    saved: str | None = None,
) -> dict[str, Any]:
    return {
        "providers": list(providers),
        "run_ms": seconds * 1e3,
        "inputs": {name: array_report(array) for name, array in inputs.items()},
        "outputs": {name: array_report(array) for name, array in outputs.items()},
        "saved": saved,
    }
