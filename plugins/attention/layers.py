"""Transformer encoder and decoder layers, as torch's nn.TransformerEncoderLayer and
nn.TransformerDecoderLayer (batch first), with the same submodule and parameter names
(`self_attn`, `multihead_attn`, `linear1`, `linear2`, `norm1`..`norm3`), so their state
dicts load into each other.

Post-LN (the original Transformer, BERT):  x = norm(x + sublayer(x))
Pre-LN (GPT-2, ViT; `norm_first: true`):   x = x + sublayer(norm(x))
The feed-forward sublayer is linear2(dropout(activation(linear1(x)))).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field

from dlc.plugin_api import BlockConfig, BlockContext, BlockType, Value

from .attention import split_mask

Activation = Literal["relu", "gelu", "gelu_tanh"]


class EncoderLayerConfig(BlockConfig):
    heads: int = Field(ge=1, description="Attention heads; the model width must divide by it.")
    ff: int = Field(2048, ge=1, description="Width of the feed-forward hidden layer.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout (training only).")
    activation: Activation = Field("relu", description="relu, gelu (exact) or gelu_tanh.")
    norm_first: bool = Field(False, description="Pre-LN (true) or post-LN (false).")
    eps: float = Field(1e-5, gt=0, description="LayerNorm epsilon.")
    bias: bool = Field(True, description="Biases in the linears and norms.")
    causal: bool = Field(False, description="Causal self-attention (a decoder-only stack).")


class DecoderLayerConfig(EncoderLayerConfig):
    causal: bool = Field(True, description="Causal self-attention over the target.")


def _activation(ctx: BlockContext, x: Value, activation: Activation) -> Value:
    if activation == "relu":
        return ctx.block_call("relu", {}, [x], name="activation")
    approximate = "tanh" if activation == "gelu_tanh" else "none"
    return ctx.block_call("gelu", {"approximate": approximate}, [x], name="activation")


def _feed_forward(ctx: BlockContext, config: EncoderLayerConfig, x: Value) -> Value:
    width = x.type.shape[-1]
    hidden = ctx.block_call("linear", {"out": config.ff, "bias": config.bias}, [x], name="linear1")
    hidden = _activation(ctx, hidden, config.activation)
    hidden = ctx.block_call("dropout", {"p": config.dropout}, [hidden], name="dropout")
    return ctx.block_call("linear", {"out": width, "bias": config.bias}, [hidden], name="linear2")


def _sublayer(
    ctx: BlockContext, config: EncoderLayerConfig, x: Value, index: int, body: Callable[[Value], Value]
) -> Value:
    """One residual sublayer with its norm (`norm<index>`) and dropout (`dropout<index>`)."""
    norm = {"eps": config.eps, "bias": config.bias}
    inner = ctx.block_call("layer_norm", norm, [x], name=f"norm{index}") if config.norm_first else x
    update = ctx.block_call("dropout", {"p": config.dropout}, [body(inner)], name=f"dropout{index}")
    total = ctx.op("add", x, update)
    return total if config.norm_first else ctx.block_call("layer_norm", norm, [total], name=f"norm{index}")


def _attention(ctx: BlockContext, config: EncoderLayerConfig, name: str, causal: bool):
    def body(inputs: list[Value]) -> Value:
        options = {"heads": config.heads, "dropout": config.dropout, "bias": config.bias, "causal": causal}
        return ctx.block_call("multi_head_attention", options, inputs, name=name)

    return body


def _check_width(ctx: BlockContext, config: EncoderLayerConfig, x: Value) -> None:
    width = x.type.shape[-1]
    if not isinstance(width, int):
        raise ctx.error(f"the model width (last dim) must be static, got {x.type}")
    if width % config.heads:
        raise ctx.error(f"the model width {width} does not split into {config.heads} heads")


def encoder_layer(ctx: BlockContext, config: EncoderLayerConfig, inputs: list[Value]) -> Value:
    (x, *extra), mask = split_mask(ctx, inputs)
    if extra:
        raise ctx.error("takes `in: [x]` or `in: [x, key_padding_mask]`")
    _check_width(ctx, config, x)
    self_attention = _attention(ctx, config, "self_attn", config.causal)
    x = _sublayer(ctx, config, x, 1, lambda h: self_attention([h] if mask is None else [h, mask]))
    return _sublayer(ctx, config, x, 2, lambda h: _feed_forward(ctx, config, h))


def decoder_layer(ctx: BlockContext, config: DecoderLayerConfig, inputs: list[Value]) -> Value:
    sequences, memory_mask = split_mask(ctx, inputs)
    if len(sequences) != 2:
        raise ctx.error("takes `in: [x, memory]` or `in: [x, memory, memory_key_padding_mask]`")
    x, memory = sequences
    _check_width(ctx, config, x)
    self_attention = _attention(ctx, config, "self_attn", config.causal)
    cross_attention = _attention(ctx, config, "multihead_attn", False)
    x = _sublayer(ctx, config, x, 1, lambda h: self_attention([h]))
    extra = [memory] if memory_mask is None else [memory, memory_mask]
    x = _sublayer(ctx, config, x, 2, lambda h: cross_attention([h, *extra]))
    return _sublayer(ctx, config, x, 3, lambda h: _feed_forward(ctx, config, h))


BLOCKS = [
    BlockType(
        "transformer_encoder_layer",
        EncoderLayerConfig,
        encoder_layer,
        "Self-attention + feed-forward (nn.TransformerEncoderLayer); `in: [x]` or `[x, padding_mask]`.",
        inputs=(1, 2),
    ),
    BlockType(
        "transformer_decoder_layer",
        DecoderLayerConfig,
        decoder_layer,
        "Causal self-attention + cross-attention + feed-forward (nn.TransformerDecoderLayer); "
        "`in: [x, memory]` or `[x, memory, memory_padding_mask]`.",
        inputs=(2, 3),
    ),
]
