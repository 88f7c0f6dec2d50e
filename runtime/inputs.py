"""Model inputs for `dlc run`: random ones for every symbolic dim size, or an .npz file."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dlc.errors import RuntimeSessionError
from dlc.limits import format_bytes
from dlc.spec.suggest import did_you_mean

from .session import Session

log = logging.getLogger(__name__)

DEFAULT_INT_RANGE = (0, 10)


def random_inputs(
    session: Session, dims: Mapping[str, int] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random inputs: floats from N(0, 1), integers in the input's declared range.

    Symbolic dims take their size from `dims`; those not given are 1."""
    dims = dict(dims or {})
    known = session.dim_names()
    for name in dims:
        if name not in known:
            hint = did_you_mean(name, known) or (
                f"its dims are: {', '.join(known)}" if known else "it has no symbolic dims"
            )
            raise RuntimeSessionError(f"--dim {name}: the model has no dim named '{name}'", hint=hint)
    for name in known:
        if name not in dims:
            log.info("dim %s not given; using 1", name)
            dims[name] = 1
    shapes = {
        info.name: tuple(dims[d] if isinstance(d, str) else (d if d is not None else 1) for d in info.shape)
        for info in session.inputs
    }
    _check_memory(session, shapes, dims)
    rng = np.random.default_rng(seed)
    arrays = {}
    for info in session.inputs:
        shape = shapes[info.name]
        low, high = session.input_ranges.get(info.name, DEFAULT_INT_RANGE)
        if np.issubdtype(info.dtype, np.floating):
            array = rng.standard_normal(shape).astype(info.dtype)
        elif info.dtype == np.bool_:
            array = rng.random(shape) < 0.5
        else:
            array = rng.integers(int(low), int(high), size=shape).astype(info.dtype)
        arrays[info.name] = array
    return arrays


def _check_memory(session: Session, shapes: Mapping[str, tuple[int, ...]], dims: Mapping[str, int]) -> None:
    """Refuse random inputs that cannot fit in memory before drawing them (a `--dim
    N=100000000000`, or an .onnx file with a static 10^12 dim, would end in a MemoryError)."""
    sizes = {}
    for info in session.inputs:
        count = 1
        for dim in shapes[info.name]:
            count *= int(dim)
        sizes[info.name] = count * np.dtype(info.dtype).itemsize
    total = sum(sizes.values())
    available = _available_memory()
    if total <= available // 2:
        return
    largest = max(sizes, key=sizes.__getitem__)
    at = ", ".join(f"{k}={v}" for k, v in dims.items())
    raise RuntimeSessionError(
        f"random inputs{f' at {at}' if at else ''} need {format_bytes(total)} "
        f"(input '{largest}' is {list(shapes[largest])}), more than half the {format_bytes(available)} "
        "of memory available",
        hint="give the symbolic dims smaller sizes with --dim NAME=SIZE",
    )


def _available_memory() -> int:
    """Bytes this process may still allocate: free physical memory, capped by RLIMIT_AS."""
    import os
    import resource

    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 1 << 62
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        available = min(available, soft)
    return available


def read_inputs(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise RuntimeSessionError(f"inputs file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as error:
        raise RuntimeSessionError(
            f"cannot read inputs from {path} (expected an .npz file): {error}"
        ) from None
