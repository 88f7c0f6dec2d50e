"""Optional dependencies: PyTorch is the `dlc[torch]` extra, needed only by the torch target,
the eager and fx modules, and checkpoint reading. The ONNX path (compile, summary, run)
never imports it, so `pip install dlc` stays small; whoever reaches for a torch feature
without torch gets one message that says what to install.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from dlc.errors import DlcError

TORCH_INSTALL_HINT = (
    "install the extra: pip install 'dlc[torch]' (PyPI's torch on Linux is the CUDA build, "
    "several GB; for a CPU-only torch first run: "
    "pip install torch --index-url https://download.pytorch.org/whl/cpu)"
)


class MissingDependencyError(DlcError):
    """A feature needs an optional package that is not installed."""


def check_torch(feature: str) -> None:
    """Fail early when `feature` will need torch, without paying for importing it."""
    try:
        found = importlib.util.find_spec("torch") is not None
    except ImportError:
        found = False
    if not found:
        raise MissingDependencyError(
            f"{feature} needs PyTorch, which is not installed", hint=TORCH_INSTALL_HINT
        )


def require_torch(feature: str) -> ModuleType:
    """Import torch for `feature` (e.g. "the torch target"), or say which extra provides it."""
    try:
        import torch
    except ImportError as error:
        raise MissingDependencyError(
            f"{feature} needs PyTorch, which is not installed ({error})",
            hint=TORCH_INSTALL_HINT,
        ) from None
    return torch
