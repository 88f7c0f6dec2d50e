"""Running ONNX models with ONNX Runtime: `Session`, random inputs, .npz inputs.

The names are imported on first use, so that `dlc.runtime.providers` (what the command
line needs) comes without numpy and onnxruntime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .providers import PROVIDER_CHOICES

if TYPE_CHECKING:
    from .inputs import random_inputs, read_inputs
    from .session import Session, TensorInfo

__all__ = ["PROVIDER_CHOICES", "Session", "TensorInfo", "random_inputs", "read_inputs"]


def __getattr__(name: str) -> Any:
    if name in ("Session", "TensorInfo"):
        from . import session

        return getattr(session, name)
    if name in ("random_inputs", "read_inputs"):
        from . import inputs

        return getattr(inputs, name)
    raise AttributeError(f"module 'dlc.runtime' has no attribute {name!r}")
