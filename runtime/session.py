"""`Session`: a thin layer over an ONNX Runtime InferenceSession.

Providers: ``auto`` (CUDA when it works, else CPU), ``cpu``, ``cuda``, ``tensorrt``.
onnxruntime-gpu lists CUDA as available even where the CUDA libraries are missing and then
silently falls back to the CPU, so `Session.providers` reports what the session really
got, and asking explicitly for ``cuda`` or ``tensorrt`` fails loudly when it did not.
Inputs are checked (names, dtypes, ranks, static dims) before they reach ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlc.errors import RuntimeSessionError
from dlc.spec.suggest import did_you_mean

from .providers import PROVIDER_CHOICES, PROVIDER_NAMES

log = logging.getLogger(__name__)

_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


# Integer inputs are drawn as int64: a range must fit it.
_RANGE_BOUND = 2**63


def parse_input_ranges(text: str) -> dict[str, tuple[float, float]]:
    """``{"input": [low, high], ...}`` from model metadata, or an error naming what is wrong."""

    def bad(reason: str) -> RuntimeSessionError:
        shown = text if len(text) <= 80 else text[:77] + "..."
        return RuntimeSessionError(
            f"the model's dlc.input_ranges metadata is malformed ({reason}): {shown}",
            hint="recompile the model with dlc, or give the inputs with --inputs FILE.npz",
        )

    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise bad("not JSON") from None
    if not isinstance(data, dict):
        raise bad("expected an object of input names")
    ranges = {}
    for name, bounds in data.items():
        if not isinstance(bounds, list) or len(bounds) != 2 or not all(_is_bound(b) for b in bounds):
            raise bad(f"'{name}' needs [low, high]")
        low, high = bounds
        if isinstance(low, str) or isinstance(high, str):  # a dim name: checked once resolved
            ranges[name] = (low, high)
            continue
        if not all(np.isfinite(b) and abs(b) <= _RANGE_BOUND for b in bounds):
            raise bad(f"'{name}' has a bound that is not a finite number within +-2**63")
        if not low < high:
            raise bad(f"'{name}' is an empty interval")
        ranges[name] = (low, high)
    return ranges


def _is_bound(bound: object) -> bool:
    """A range bound is a number, or the name of a symbolic dim (`V`, resolved per run)."""
    if isinstance(bound, str):
        return bound.isidentifier() and len(bound) <= 64
    return isinstance(bound, (int, float)) and not isinstance(bound, bool)


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: its name, shape (ints and dim names) and numpy dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


def _requested_providers(provider: str, available: list[str]) -> list[str]:
    if provider not in PROVIDER_CHOICES:
        raise RuntimeSessionError(
            f"unknown provider '{provider}'",
            hint=did_you_mean(provider, PROVIDER_CHOICES) or f"choose one of {', '.join(PROVIDER_CHOICES)}",
        )
    if provider == "auto":
        chosen = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
        return [*chosen, "CPUExecutionProvider"]
    wanted = PROVIDER_NAMES[provider]
    if wanted not in available:
        raise RuntimeSessionError(
            f"provider '{provider}' is not available in this onnxruntime build",
            notes=[f"available: {', '.join(available)}"],
            hint="install onnxruntime-gpu (Linux or Windows, x86-64) for cuda and tensorrt",
        )
    if provider == "tensorrt":
        return [wanted, "CUDAExecutionProvider", "CPUExecutionProvider"]
    return [wanted, "CPUExecutionProvider"] if provider != "cpu" else [wanted]


class Session:
    """Run an ONNX model (a path, serialized bytes, or a ModelProto) in ONNX Runtime."""

    def __init__(self, model: Any, provider: str = "auto", *, threads: int | None = None) -> None:
        import onnxruntime

        onnxruntime.set_default_logger_severity(4)  # our own errors say what went wrong
        self.requested = provider
        requested = _requested_providers(provider, onnxruntime.get_available_providers())
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        if threads:
            options.intra_op_num_threads = threads
        source = model
        if hasattr(model, "SerializeToString"):
            source = model.SerializeToString()
        elif isinstance(model, (str, Path)):
            path = Path(model)
            if not path.is_file():
                raise RuntimeSessionError(f"model file not found: {path}")
            source = str(path)
        start = time.perf_counter()
        try:
            self._session = onnxruntime.InferenceSession(source, options, providers=requested)
        except Exception as error:  # onnxruntime raises several unrelated exception types
            raise RuntimeSessionError(f"ONNX Runtime cannot load the model: {error}") from None
        self.providers: list[str] = self._session.get_providers()
        log.info(
            "ONNX Runtime session in %.2f s: asked for %s (%s), got %s",
            time.perf_counter() - start,
            ", ".join(requested),
            provider,
            ", ".join(self.providers),
        )
        if provider in ("cuda", "tensorrt") and PROVIDER_NAMES[provider] not in self.providers:
            raise RuntimeSessionError(
                f"asked for the {provider} provider, but ONNX Runtime fell back to "
                f"{', '.join(self.providers)}",
                hint="check that the CUDA and cuDNN libraries onnxruntime-gpu needs are installed",
            )
        self.inputs = [_info(i) for i in self._session.get_inputs()]
        self.outputs = [_info(o) for o in self._session.get_outputs()]
        metadata = self._session.get_modelmeta().custom_metadata_map
        self._input_ranges_text = metadata.get("dlc.input_ranges", "{}")

    @property
    def input_ranges(self) -> dict[str, tuple[float | str, float | str]]:
        """The `[low, high)` ranges dlc recorded for inputs (random integer inputs use them).

        Read from the model's metadata, which any file can carry: checked, not trusted."""
        return parse_input_ranges(self._input_ranges_text)

    @property
    def provider(self) -> str:
        """The main provider the session runs on."""
        return self.providers[0]

    def dim_names(self) -> list[str]:
        return sorted({d for i in self.inputs for d in i.shape if isinstance(d, str)})

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; returns outputs by name."""
        feed = self._check_inputs(inputs)
        try:
            results = self._session.run(None, feed)
        except Exception as error:
            raise RuntimeSessionError(f"ONNX Runtime failed while running the model: {error}") from None
        return {o.name: r for o, r in zip(self.outputs, results, strict=True)}

    def _check_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = {i.name: i for i in self.inputs}
        problems = []
        missing = [name for name in expected if name not in inputs]
        if missing:
            problems.append(f"missing input(s): {', '.join(missing)}")
        for name in inputs:
            if name not in expected:
                hint = did_you_mean(name, expected)
                problems.append(f"unexpected input '{name}'" + (f" ({hint})" if hint else ""))
        feed = {}
        bound: dict[str, int] = {}
        for name, info in expected.items():
            if name not in inputs:
                continue
            array = np.asarray(inputs[name])
            if array.dtype != info.dtype:
                if (
                    np.can_cast(array.dtype, info.dtype, casting="same_kind")
                    and array.dtype.kind == np.dtype(info.dtype).kind
                ):
                    array = array.astype(info.dtype)
                else:
                    problems.append(
                        f"input '{name}' has dtype {array.dtype}, the model takes {np.dtype(info.dtype)}"
                    )
                    continue
            if array.ndim != len(info.shape):
                problems.append(
                    f"input '{name}' has shape {list(array.shape)}, the model takes {info.describe()}"
                )
                continue
            for axis, (size, dim) in enumerate(zip(array.shape, info.shape, strict=True)):
                if isinstance(dim, int) and size != dim:
                    problems.append(
                        f"input '{name}' dim {axis} is {size}, the model takes {dim} ({info.describe()})"
                    )
                elif isinstance(dim, str) and bound.setdefault(dim, size) != size:
                    problems.append(f"dim {dim} is {bound[dim]} in one input and {size} in '{name}'")
            feed[name] = array
        if problems:
            raise RuntimeSessionError("the inputs do not fit the model", notes=problems)
        return feed


def _info(arg: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, (int, str)) else None for d in arg.shape)
    return TensorInfo(arg.name, shape, np.dtype(_NUMPY_TYPES.get(arg.type, np.float32)))
