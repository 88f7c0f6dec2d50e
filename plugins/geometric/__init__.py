"""The geometric family: graphs (message passing, GCN, ChebNet, GAT, GraphSAGE, GIN, global
pooling per graph), sets and point clouds (Deep Sets, PointNet) and spectral convolution.

Every module of this package that defines `OPS` (a list of `OpDef`) or `BLOCKS` (a list of
`BlockType`) contributes them, and every `templates*.yaml` beside this file is a template
library: the graph and the set halves of the family live in separate modules and are
collected here without either editing the other's registration.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

from dlc.plugin_api import BlockType, OpDef, TemplateLibrary, hookimpl


def _family_modules() -> list[ModuleType]:
    """The modules of this package, in name order (a stable registration order)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg)
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [op for module in _family_modules() for op in getattr(module, "OPS", [])]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [block for module in _family_modules() for block in getattr(module, "BLOCKS", [])]


@hookimpl
def dlc_templates() -> list[TemplateLibrary]:
    return [TemplateLibrary(path) for path in sorted(Path(__file__).parent.glob("templates*.yaml"))]
