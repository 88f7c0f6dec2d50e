"""Records that plugins return to describe spec-level blocks.

A `BlockType` is what a spec names in a layer (`linear`, `conv2d`, ...): a Pydantic config
model (``extra="forbid"``), a lowering function that adds IR nodes through a
`BlockContext`, and how many inputs it takes and which output ports it has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from dlc.ir.node import Value
from dlc.ir.types import TensorType

if TYPE_CHECKING:
    from dlc.spec.context import BlockContext


class BlockConfig(BaseModel):
    """Base for block config models: unknown keys are errors, values are validated strictly
    enough to catch typos (``"ten"`` for an int) but accept ``16.0`` for 16."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


LowerResult = Value | Sequence[Value] | Mapping[str, Value]
LowerFn = Callable[["BlockContext", Any, list[Value]], LowerResult]


@dataclass(frozen=True)
class BlockType:
    """A block a spec can name. `inputs` is (min, max) arity, max None for "any number";
    `outputs` names the ports (``lstm_0.h``), the first being the default; `shorthand`
    is the config field a bare scalar sets (``dropout: 0.1``). `inverse`, for an
    invertible block, lowers its inverse map with the same parameters and ports
    (`--direction inverse`, see `dlc.spec.direction`)."""

    name: str
    config: type[BaseModel]
    lower: LowerFn
    doc: str = ""
    inputs: tuple[int, int | None] = (1, 1)
    outputs: tuple[str, ...] = ("out",)
    shorthand: str | None = None
    plugin: str = ""
    inverse: LowerFn | None = None


@dataclass(frozen=True)
class ShortcutProjection:
    """How `residual: {shortcut: auto}` reshapes the input when it does not fit the body's
    output: `make(input_type, output_type)` returns ``(block_name, config)`` or None."""

    name: str
    make: Callable[[TensorType, TensorType], tuple[str, dict[str, Any]] | None]
    plugin: str = ""


@dataclass(frozen=True)
class TemplateLibrary:
    """A YAML file of `blocks:` templates shipped by a plugin, readable and copyable by users."""

    path: Path
    plugin: str = ""
