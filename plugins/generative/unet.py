"""The down, mid and up blocks of diffusers' UNet2DModel (Ho et al.'s DDPM U-Net).

diffusers keeps a block's residual blocks and attentions in two module lists
(`down_blocks.1.resnets.0`, `down_blocks.1.attentions.0`, ...) but runs them interleaved,
and its up blocks read the down path's intermediate outputs in reverse order. These blocks
do that bookkeeping and call the templates of `unet_templates.yaml` (`resnet_block_2d`,
`unet_attention`, `downsample_2d`, `upsample_2d`) under diffusers' names, so a diffusers
state_dict loads with no renaming:

    - unet_down_blocks: {channels: [128, 256, 256, 256], types: [DownBlock2D, AttnDownBlock2D, ...]}
      in: [conv_in, time_embedding]
      id: down_blocks                  # ports: out, skip_0 ... skip_11 (conv_in first)
    - unet_mid_block: {}
      in: [down_blocks, time_embedding]
      id: mid_block
    - unet_up_blocks:
        channels: [128, 256, 256, 256]
        types: [UpBlock2D, UpBlock2D, AttnUpBlock2D, UpBlock2D]   # deepest first
      in: "${['mid_block', 'time_embedding'] + [f'down_blocks.skip_{i}' for i in range(12)]}"
      id: up_blocks
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dlc.plugin_api import BlockConfig, BlockContext, BlockType, Value

TEMPLATES = [str(Path(__file__).with_name("unet_templates.yaml"))]

GROUPS = "Groups of every GroupNorm (diffusers' norm_num_groups); must divide the widths."
HEAD_DIM = "Channels per attention head (diffusers' attention_head_dim); null: one head (DDPM)."


class UNetParts(BlockConfig):
    """What every U-Net block shares (diffusers' UNet2DModel options of the same meaning)."""

    groups: int = Field(32, ge=1, le=4096, description=GROUPS)
    eps: float = Field(1e-6, gt=0, description="GroupNorm epsilon (diffusers' norm_eps).")
    head_dim: int | None = Field(None, ge=1, le=65536, description=HEAD_DIM)
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout inside the residual blocks (training).")

    def resnet(self, out: int) -> dict[str, object]:
        return {"out": out, "groups": self.groups, "eps": self.eps, "dropout": self.dropout}

    def attend(self, ctx: BlockContext, x: Value, name: str) -> Value:
        """diffusers' Attention over the pixels of `x`, as the `unet_attention` template `name`."""
        if x.type.rank != 4 or not all(isinstance(d, int) for d in x.type.shape[1:]):
            raise ctx.error(f"attention needs [N, C, H, W] with fixed C, H and W, got {x.type}")
        channels, height, width = (int(d) for d in x.type.shape[1:])
        heads = 1 if self.head_dim is None else max(channels // self.head_dim, 1)
        options = {"heads": heads, "groups": self.groups, "eps": self.eps, "height": height, "width": width}
        return ctx.block_call("unet_attention", options, [x], name=name)


class UNetPathConfig(UNetParts):
    channels: list[int] = Field(
        min_length=1, max_length=16, description="Width of each level (block_out_channels)."
    )
    layers: int = Field(2, ge=1, le=64, description="Residual blocks per down level (layers_per_block).")

    @model_validator(mode="after")
    def _one_type_per_level(self) -> UNetPathConfig:
        types = getattr(self, "types", None)
        if types is not None and len(types) != len(self.channels):
            raise ValueError(f"`types` names {len(types)} blocks for {len(self.channels)} `channels`")
        return self


class UNetDownConfig(UNetPathConfig):
    types: list[Literal["DownBlock2D", "AttnDownBlock2D"]] = Field(
        description="Each level's block (down_block_types); AttnDownBlock2D adds attention."
    )
    downsample_padding: int = Field(
        1, ge=0, le=1, description="1: symmetric; 0: pad only bottom and right (DDPM)."
    )


class UNetUpConfig(UNetPathConfig):
    types: list[Literal["UpBlock2D", "AttnUpBlock2D"]] = Field(
        description="Each up level's block, deepest first (up_block_types)."
    )


def _down_blocks(ctx: BlockContext, config: UNetDownConfig, inputs: list[Value]) -> dict[str, Value]:
    x, temb = inputs
    skips = [x]
    last = len(config.channels) - 1
    for level, (kind, out) in enumerate(zip(config.types, config.channels, strict=True)):
        for j in range(config.layers):
            x = ctx.block_call("resnet_block_2d", config.resnet(out), [x, temb], name=f"{level}.resnets.{j}")
            if kind == "AttnDownBlock2D":
                x = config.attend(ctx, x, f"{level}.attentions.{j}")
            skips.append(x)
        if level < last:
            padding = {"padding": config.downsample_padding}
            x = ctx.block_call("downsample_2d", padding, [x], name=f"{level}.downsamplers.0")
            skips.append(x)
    return {"out": x, **{f"skip_{i}": skip for i, skip in enumerate(skips)}}


def _mid_block(ctx: BlockContext, config: UNetParts, inputs: list[Value]) -> Value:
    x, temb = inputs
    out = int(x.type.shape[1])
    x = ctx.block_call("resnet_block_2d", config.resnet(out), [x, temb], name="resnets.0")
    x = config.attend(ctx, x, "attentions.0")
    return ctx.block_call("resnet_block_2d", config.resnet(out), [x, temb], name="resnets.1")


def _up_blocks(ctx: BlockContext, config: UNetUpConfig, inputs: list[Value]) -> Value:
    x, temb, *skips = inputs
    expected = len(config.channels) * (config.layers + 1)
    if len(skips) != expected:
        raise ctx.error(
            f"takes the down path's {expected} outputs after `[h, temb]` "
            f"({len(config.channels)} levels x {config.layers + 1}), got {len(skips)}",
            hint="in: [mid_block, time_embedding, down_blocks.skip_0, down_blocks.skip_1, ...]",
        )
    last = len(config.channels) - 1
    widths = list(reversed(config.channels))
    for level, (kind, out) in enumerate(zip(config.types, widths, strict=True)):
        for j in range(config.layers + 1):
            joined = ctx.block_call("concat", {"axis": 1}, [x, skips.pop()], name=f"{level}.concat_{j}")
            x = ctx.block_call(
                "resnet_block_2d", config.resnet(out), [joined, temb], name=f"{level}.resnets.{j}"
            )
            if kind == "AttnUpBlock2D":
                x = config.attend(ctx, x, f"{level}.attentions.{j}")
        if level < last:
            x = ctx.block_call("upsample_2d", {}, [x], name=f"{level}.upsamplers.0")
    return x


BLOCKS = [
    BlockType(
        "unet_down_blocks",
        UNetDownConfig,
        _down_blocks,
        "diffusers UNet2DModel's down path `down_blocks.K`: residual blocks (and attentions) per "
        "level, downsampling between levels. `in: [x, temb]`; ports `out` and `skip_0`... (its "
        "input first), which `unet_up_blocks` reads.",
        inputs=(2, 2),
        outputs=("out",),
    ),
    BlockType(
        "unet_mid_block",
        UNetParts,
        _mid_block,
        "diffusers UNetMidBlock2D: resnets.0, attentions.0, resnets.1. `in: [x, temb]`.",
        inputs=(2, 2),
    ),
    BlockType(
        "unet_up_blocks",
        UNetUpConfig,
        _up_blocks,
        "diffusers UNet2DModel's up path `up_blocks.K`: each residual block eats a skip of the "
        "down path (concatenated), attention where asked, upsampling between levels. "
        "`in: [h, temb, down_blocks.skip_0, ...]`.",
        inputs=(3, None),
    ),
]
