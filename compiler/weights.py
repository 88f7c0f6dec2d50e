"""Parameter data: drawing initial weights from the seed, and loading weight files.

A weights file (safetensors as written by `dlc compile --target torch`, or a PyTorch
checkpoint) must match the model exactly; every missing, unexpected or mis-shaped tensor
is reported by name, all at once.
"""

from __future__ import annotations

from pathlib import Path

from dlc.errors import Location, WeightsError
from dlc.ir.graph import Graph
from dlc.ir.init import from_array
from dlc.ir.node import Node
from dlc.ir.source_ops import ParameterAttrs
from dlc.lazy_imports import numpy as np


def parameter_data(node: Node, seed: int) -> np.ndarray:
    """The data of one `parameter` node: its initializer drawn with `seed`."""
    attrs: ParameterAttrs = node.attrs
    value = node.output
    shape = tuple(int(d) for d in value.type.shape)
    return attrs.init.materialize(shape, value.type.dtype.numpy, seed, attrs.name)


def read_weights_file(path: str | Path) -> dict[str, np.ndarray]:
    """A safetensors file or a PyTorch checkpoint, told apart by content (see weight_files)."""
    from dlc.weight_files import read_weights

    path = Path(path)
    if path.is_file():
        _check_dtypes(path)  # float8 and bfloat16 tensors by name, before safetensors fails obscurely
    return read_weights(path)


# safetensors dtypes that have a numpy dtype (float8 and bfloat16 have none).
_NUMPY_DTYPES = ("BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "F32", "F64")


def _check_dtypes(path: Path) -> None:
    """Refuse tensors numpy cannot hold, by name, before safetensors fails obscurely."""
    import json
    import struct

    try:
        with path.open("rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > min(path.stat().st_size, 2**27):
                return  # not a header safetensors would accept either; it reports that
            header = json.loads(file.read(length))
    except (OSError, struct.error, ValueError):
        return
    if not isinstance(header, dict):
        return
    unreadable = {
        name: entry.get("dtype")
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and entry.get("dtype") not in _NUMPY_DTYPES
    }
    if unreadable:
        listed = ", ".join(f"'{name}' ({dtype})" for name, dtype in sorted(unreadable.items())[:5])
        raise WeightsError(
            f"weights file {path} holds tensors of a dtype dlc cannot read: {listed}",
            location=Location(str(path)),
            hint="save the weights as float32 (in torch: {k: v.float() for k, v in state.items()})",
        )


def apply_weights(graph: Graph, arrays: dict[str, np.ndarray], origin: str) -> None:
    """Give each parameter its tensor from `arrays`; report every mismatch by name."""
    parameters = {n.attrs.name: n for n in graph.parameters()}
    problems = []
    missing = sorted(set(parameters) - set(arrays))
    unexpected = sorted(set(arrays) - set(parameters))
    if missing:
        problems.append(f"missing tensors: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {', '.join(unexpected)}")
    for name in sorted(set(parameters) & set(arrays)):
        expected = parameters[name].output.type
        array = arrays[name]
        want = tuple(int(d) for d in expected.shape)
        if tuple(array.shape) != want:
            problems.append(f"'{name}' has shape {list(array.shape)}, the model needs {list(want)}")
        elif np.dtype(array.dtype) != expected.dtype.numpy:
            problems.append(f"'{name}' has dtype {array.dtype}, the model needs {expected.dtype.value}")
    if problems:
        raise WeightsError(
            f"weights file {origin} does not fit the model",
            location=Location(origin),
            notes=problems,
        )
    for name, node in parameters.items():
        attrs = ParameterAttrs(name=name, init=from_array(arrays[name]), trainable=node.attrs.trainable)
        graph.replace_node(node, node.replace(attrs=attrs))
