"""Model inputs for `dlc run`: random ones for every symbolic dim size, or an .npz file."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dlc.errors import RuntimeSessionError
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
    rng = np.random.default_rng(seed)
    arrays = {}
    for info in session.inputs:
        shape = tuple(dims[d] if isinstance(d, str) else (d if d is not None else 1) for d in info.shape)
        low, high = session.input_ranges.get(info.name, DEFAULT_INT_RANGE)
        if np.issubdtype(info.dtype, np.floating):
            array = rng.standard_normal(shape).astype(info.dtype)
        elif info.dtype == np.bool_:
            array = rng.random(shape) < 0.5
        else:
            array = rng.integers(int(low), int(high), size=shape).astype(info.dtype)
        arrays[info.name] = array
    return arrays


def read_inputs(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise RuntimeSessionError(f"inputs file not found: {path}")
    if not _is_zip(path):  # an .npz is a zip archive; numpy's own message talks about pickles
        spec_hint = (
            f"; to run a spec: dlc run {path} --random-inputs" if path.suffix in (".yaml", ".yml") else ""
        )
        raise RuntimeSessionError(
            f"--inputs takes an .npz archive with one array per model input; {path} is not one",
            hint="write one with numpy: np.savez('inputs.npz', x=array), named as the model's inputs "
            f"(or use --random-inputs){spec_hint}",
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as error:
        raise RuntimeSessionError(
            f"cannot read inputs from {path} (expected an .npz file): {error}"
        ) from None


def _is_zip(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(4) == b"PK\x03\x04"
