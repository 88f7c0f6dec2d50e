"""Emit targets: the output formats `dlc compile --target` can write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlc.api import CompiledModel


@dataclass(frozen=True)
class EmitTarget:
    """`write(model, path)` writes the output atomically and returns the paths it wrote.
    `default_output(spec_stem)` names the output when `-o` is not given."""

    name: str
    description: str
    write: Callable[[CompiledModel, Path], list[Path]]
    default_output: Callable[[str], str]
    plugin: str = ""
