"""The core family: MLP layers, activations, normalization, shape and merge blocks."""

from __future__ import annotations

from dlc.plugin_api import BlockType, OpDef, ShortcutProjection, TensorType, hookimpl

from . import (
    activations,
    arithmetic,
    functions,
    indexing,
    layers,
    normalization,
    parameters,
    reductions,
    shape_ops,
    tensors,
)

# Activations, weighted layers, shape/merge blocks, arithmetic, shape ops, reductions,
# element-wise functions, normalizations, indexing, free parameters.
MODULES = (
    activations,
    layers,
    tensors,
    arithmetic,
    shape_ops,
    reductions,
    functions,
    normalization,
    indexing,
    parameters,
)


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [op for module in MODULES for op in module.OPS]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [block for module in MODULES for block in module.BLOCKS]


def _linear_projection(source: TensorType, target: TensorType) -> tuple[str, dict] | None:
    """A bias-free linear map when only the feature (last) dim differs."""
    if source.rank != target.rank or source.rank < 2 or source.shape[:-1] != target.shape[:-1]:
        return None
    if not isinstance(target.shape[-1], int):
        return None
    return "linear", {"out": target.shape[-1], "bias": False}


@hookimpl
def dlc_shortcut_projections() -> list[ShortcutProjection]:
    return [ShortcutProjection("linear", _linear_projection)]
