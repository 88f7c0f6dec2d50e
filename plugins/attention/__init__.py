"""The attention family: multi-head and grouped-query attention, Transformer encoder and
decoder layers, positional encodings (sinusoidal, learned, rotary) and embeddings,
BERT/GPT-2/ViT/Llama templates, and passes that emit ONNX Runtime's fused attention kernels."""

from __future__ import annotations

from pathlib import Path

from dlc.plugin_api import PHASE_FUSION, BlockType, OpDef, PassInfo, TemplateLibrary, hookimpl

from . import attention, embeddings, fused, layers, rotary
from .fusion import FuseSelfAttention, UseGroupQueryAttention, UseMultiHeadAttention


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [*attention.OPS, *embeddings.OPS, *fused.OPS, *rotary.OPS]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [*attention.BLOCKS, *layers.BLOCKS, *embeddings.BLOCKS, *rotary.BLOCKS]


# The attention passes rewrite `scaled_dot_product_attention` alone: a graph without one is
# optimized without importing this family.
ATTENTION_OPS = frozenset({"scaled_dot_product_attention"})


@hookimpl
def dlc_passes() -> list[PassInfo]:
    return [
        # Self-attention with its q/k/v projections: one ONNX Runtime Attention kernel.
        PassInfo(
            FuseSelfAttention.name,
            FuseSelfAttention,
            "Self-attention and its projections -> ONNX Runtime Attention (not --portable).",
            2,
            PHASE_FUSION,
            needs_ops=ATTENTION_OPS,
        ),
        # Causal grouped-query self-attention (Llama): ONNX Runtime's GroupQueryAttention.
        PassInfo(
            UseGroupQueryAttention.name,
            UseGroupQueryAttention,
            "Causal grouped-query self-attention -> ONNX Runtime GroupQueryAttention (not --portable).",
            2,
            PHASE_FUSION,
            needs_ops=ATTENTION_OPS,
        ),
        # What is left (cross-attention): ONNX Runtime's MultiHeadAttention.
        PassInfo(
            UseMultiHeadAttention.name,
            UseMultiHeadAttention,
            "Other attention -> ONNX Runtime MultiHeadAttention (not --portable).",
            2,
            PHASE_FUSION,
            needs_ops=ATTENTION_OPS,
        ),
    ]


@hookimpl
def dlc_templates() -> list[TemplateLibrary]:
    return [TemplateLibrary(Path(__file__).with_name("templates.yaml"))]
