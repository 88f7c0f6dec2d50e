"""dlc: a declarative graph-spec compiler for neural networks.

YAML spec -> Pydantic validation -> IR graph -> passes -> ONNX / PyTorch -> ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from dlc.errors import (
    DlcError,
    EmitError,
    PassError,
    PluginError,
    RuntimeSessionError,
    ShapeError,
    SpecError,
    WeightsError,
)

if TYPE_CHECKING:
    from dlc.api import CompiledModel, compile
    from dlc.spec.loader import Spec, load_spec

__all__ = [
    "CompiledModel",
    "DlcError",
    "EmitError",
    "PassError",
    "PluginError",
    "RuntimeSessionError",
    "ShapeError",
    "Spec",
    "SpecError",
    "WeightsError",
    "__version__",
    "compile",
    "load_spec",
]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import dlc.errors` (and the CLI's --help) stay fast.
    if name in ("compile", "CompiledModel"):
        from dlc import api

        return getattr(api, name)
    if name in ("load_spec", "Spec"):
        from dlc.spec import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'dlc' has no attribute {name!r}")
