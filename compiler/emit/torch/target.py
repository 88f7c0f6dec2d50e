"""The `torch` emit target: a directory with model.py and weights.safetensors (the
ejector is imported when writing)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dlc.emit.targets import EmitTarget
from dlc.optional import check_torch

if TYPE_CHECKING:
    from dlc.api import CompiledModel


def _write(model: CompiledModel, path: Path) -> list[Path]:
    from dlc.emit.torch.eject import write_package

    # Writing needs only numpy and safetensors, but the package is useless without torch:
    # say so before writing rather than leave a model.py that cannot be imported here.
    check_torch("the torch target (model.py + weights.safetensors)")
    return write_package(model.torch_package(), path)


TORCH_TARGET = EmitTarget(
    name="torch",
    description="A directory with model.py (a readable nn.Module with load_model()) and weights.safetensors.",
    write=_write,
    default_output=lambda stem: f"{stem}_torch",
)
