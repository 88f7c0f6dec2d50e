"""The pluggy hooks through which every block family, built-in or third-party, extends dlc.

Hooks take no arguments and return lists of typed records. A plugin implements any of
them with ``@dlc.plugin_api.hookimpl`` and is found through the ``dlc.plugins`` entry-point
group (built-in families are the packages under `dlc.plugins`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from dlc.emit.targets import EmitTarget
    from dlc.ir.ops import OpDef
    from dlc.passes.manager import PassInfo
    from dlc.spec.blocks import BlockType, ShortcutProjection, TemplateLibrary
    from dlc.training.datasets import DatasetInfo
    from dlc.tuning import Tuner

PROJECT = "dlc"
ENTRY_POINT_GROUP = "dlc.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def dlc_block_types() -> list[BlockType]:
    """Blocks that specs can name in their layers."""
    return []


@hookspec
def dlc_ops() -> list[OpDef]:
    """IR ops, each with inference, ONNX and torch lowerings and sample inputs."""
    return []


@hookspec
def dlc_passes() -> list[PassInfo]:
    """Optimization passes, with the -O level and pipeline phase they run in."""
    return []


@hookspec
def dlc_emit_targets() -> list[EmitTarget]:
    """Output formats for `dlc compile --target`."""
    return []


@hookspec
def dlc_shortcut_projections() -> list[ShortcutProjection]:
    """How `residual` shortcuts project inputs whose shape differs from the body output."""
    return []


@hookspec
def dlc_templates() -> list[TemplateLibrary]:
    """YAML files of block templates (`blocks:` mappings) that specs can use by name."""
    return []


@hookspec
def dlc_tuners() -> list[Tuner]:
    """Calibrations of cost models, run by `dlc tune` on the user's machine."""
    return []


@hookspec
def dlc_datasets() -> list[DatasetInfo]:
    """Datasets `dlc train` can name in `data: {dataset: NAME}` (built without a download
    where possible)."""
    return []


HOOK_NAMES = (
    "dlc_block_types",
    "dlc_ops",
    "dlc_passes",
    "dlc_emit_targets",
    "dlc_shortcut_projections",
    "dlc_templates",
    "dlc_tuners",
    "dlc_datasets",
)
