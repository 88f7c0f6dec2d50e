"""Reading weight files: safetensors (what dlc and HF write) and PyTorch checkpoints
(`torch.save` of a state_dict, or of a dict holding one under "state_dict").

The format is told from the file's first bytes, not its name: a safetensors file starts
with its header's length and a JSON object; `torch.save` writes a zip archive (or, before
torch 1.6, a pickle). Checkpoints load with `weights_only=True`, which refuses arbitrary
pickled objects, so a checkpoint cannot run code.
"""

from __future__ import annotations

import struct
from pathlib import Path

from dlc.errors import Location, WeightsError
from dlc.lazy_imports import numpy as np
from dlc.optional import require_torch

ACCEPTED_FORMATS = (
    ".safetensors (safetensors, as `dlc compile --target torch` writes)",
    ".pt / .pth / .bin (torch.save of a state_dict, or of {'state_dict': ...}; needs dlc[torch])",
)
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL_MARK = 0x80


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of the file by name, as numpy arrays."""
    location = Location(str(path))
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}", location=location)
    with path.open("rb") as stream:
        head = stream.read(9)
    size = path.stat().st_size
    if _looks_like_safetensors(head, size):
        return _read_safetensors(path)
    if head.startswith(ZIP_MAGIC) or (head[:1] and head[0] == PICKLE_PROTOCOL_MARK):
        return _read_torch_checkpoint(path)
    raise WeightsError(
        f"{path} is not a weights file dlc can read (neither safetensors nor a PyTorch checkpoint)",
        location=location,
        notes=[f"accepted: {fmt}" for fmt in ACCEPTED_FORMATS],
    )


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (header_length,) = struct.unpack("<Q", head[:8])
    return 8 + header_length <= size and head[8:9] == b"{"


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise WeightsError(
            f"cannot read weights file {path}: {error}",
            location=Location(str(path)),
            notes=[f"accepted: {fmt}" for fmt in ACCEPTED_FORMATS],
        ) from None


def _read_torch_checkpoint(path: Path) -> dict[str, np.ndarray]:
    torch = require_torch(f"reading the PyTorch checkpoint {path}")
    location = Location(str(path))
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike
        raise WeightsError(
            f"cannot read PyTorch checkpoint {path}: {type(error).__name__}: {str(error).splitlines()[0]}",
            location=location,
            hint="dlc loads checkpoints with torch.load(weights_only=True): save a state_dict "
            "(torch.save(model.state_dict(), path)), not a whole module",
        ) from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        kind = type(state).__name__
        raise WeightsError(
            f"PyTorch checkpoint {path} holds a {kind}, not a state_dict of tensors",
            location=location,
            notes=[f"accepted: {fmt}" for fmt in ACCEPTED_FORMATS],
        )
    arrays = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            raise WeightsError(
                f"'{name}' in {path} is bfloat16, which numpy cannot hold",
                location=location,
                hint="convert the checkpoint to float32 first",
            )
        arrays[str(name)] = tensor.numpy().copy()
    return arrays
