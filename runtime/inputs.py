"""Model inputs for `dlc run`: random ones for every symbolic dim size, or an .npz file."""

from __future__ import annotations

import logging
import math
import os
import stat
import zipfile
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
        low, high = (
            _resolve_bound(info.name, bound, dims)
            for bound in session.input_ranges.get(info.name, DEFAULT_INT_RANGE)
        )
        if np.issubdtype(info.dtype, np.floating):
            array = rng.standard_normal(shape).astype(info.dtype)
        elif info.dtype == np.bool_:
            array = rng.random(shape) < 0.5
        else:
            low, high = math.ceil(low), math.ceil(high)  # integers in [low, high)
            if low >= high:
                raise RuntimeSessionError(f"input '{info.name}' has no integer in its range [{low}, {high})")
            array = rng.integers(low, high, size=shape).astype(info.dtype)
        arrays[info.name] = array
    return arrays


def _resolve_bound(name: str, bound: float | str, dims: Mapping[str, int]) -> float:
    """A range bound; one that names a symbolic dim (`[0, V]`) takes that dim's size."""
    if not isinstance(bound, str):
        return bound
    if bound not in dims:
        raise RuntimeSessionError(f"input '{name}' has a range bound '{bound}' that is no dim of the model")
    return dims[bound]


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


# Refused before reading: the inputs of one run may not decompress past this many bytes.
DEFAULT_MAX_INPUT_BYTES = 2**31


def read_inputs(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, by name, after checking that every array's header agrees
    with the bytes stored for it and that all of them fit `DEFAULT_MAX_INPUT_BYTES` (or
    DLC_MAX_INPUT_BYTES): a header may claim 10^11 elements, an archive may be a zip bomb."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        raise RuntimeSessionError(f"inputs file not found: {path}") from None
    if not stat.S_ISREG(mode):
        raise RuntimeSessionError(f"inputs file {path} is not a regular file")
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
        _check_archive(path)
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise RuntimeSessionError(
            f"cannot read inputs from {path} (expected an .npz file): {error}"
        ) from None


def _check_archive(path: Path) -> None:
    text = os.environ.get("DLC_MAX_INPUT_BYTES", "")
    limit = int(text) if text.isdigit() else DEFAULT_MAX_INPUT_BYTES
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise RuntimeSessionError(f"inputs file {path}: '{info.filename}' is not an array (.npy)")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            size = math.prod(shape) * dtype.itemsize
            name = info.filename.removesuffix(".npy")
            if size > info.file_size:
                raise RuntimeSessionError(
                    f"inputs file {path}: array '{name}' claims shape {list(shape)} "
                    f"({size:,} bytes) but holds only {info.file_size:,} bytes"
                )
            total += size
            if total > limit:
                raise RuntimeSessionError(
                    f"inputs file {path} holds more than {limit:,} bytes of arrays",
                    hint="set DLC_MAX_INPUT_BYTES to raise the limit",
                )


def _is_zip(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(4) == b"PK\x03\x04"
