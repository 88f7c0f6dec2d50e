"""The attention family: multi-head attention, Transformer encoder and decoder layers,
positional encodings and embeddings, BERT/GPT-2/ViT templates, and ONNX Runtime fused-op
emission."""

from __future__ import annotations

from pathlib import Path

from dlc.plugin_api import BlockType, OpDef, TemplateLibrary, hookimpl

from . import attention, embeddings, layers


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [*attention.OPS, *embeddings.OPS]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [*attention.BLOCKS, *layers.BLOCKS, *embeddings.BLOCKS]


@hookimpl
def dlc_templates() -> list[TemplateLibrary]:
    return [TemplateLibrary(Path(__file__).with_name("templates.yaml"))]
