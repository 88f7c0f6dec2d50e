"""The attention family: multi-head attention, Transformer encoder and decoder layers,
positional encodings and embeddings."""

from __future__ import annotations

from dlc.plugin_api import BlockType, OpDef, hookimpl

from . import attention, embeddings, layers


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [*attention.OPS, *embeddings.OPS]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [*attention.BLOCKS, *layers.BLOCKS, *embeddings.BLOCKS]
