"""The generative family: normalizing flows (affine and additive couplings, permutations,
actnorm, Glow's invertible 1x1 convolution, a `flow` layer with log |det J| and a
compiler-derived inverse), DCGAN's generator and discriminator, and denoising diffusion.

The family is split into parts, each a module of this package that lists what it provides
in module-level `OPS`, `BLOCKS`, `PASSES` and `TEMPLATES` (paths of template YAML files).
The hooks below collect every part, so a part is added by adding its module: the parts
(flows, diffusion) are written independently and never edit this file.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

from dlc.plugin_api import BlockType, OpDef, PassInfo, TemplateLibrary, hookimpl


def _parts() -> list[ModuleType]:
    """Every module of this package that lists records (sorted by name, so that the
    registration order is stable)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    return [m for m in modules if any(hasattr(m, k) for k in ("OPS", "BLOCKS", "PASSES", "TEMPLATES"))]


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [op for part in _parts() for op in getattr(part, "OPS", ())]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [block for part in _parts() for block in getattr(part, "BLOCKS", ())]


@hookimpl
def dlc_passes() -> list[PassInfo]:
    return [info for part in _parts() for info in getattr(part, "PASSES", ())]


@hookimpl
def dlc_templates() -> list[TemplateLibrary]:
    return [TemplateLibrary(Path(path)) for part in _parts() for path in getattr(part, "TEMPLATES", ())]
