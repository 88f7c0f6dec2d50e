"""The CNN family: convolutions, pooling, normalization and resampling blocks, the
templates of the classic architectures (inception, residual and WaveNet blocks), and a
1x1-conv shortcut projection for `residual: {shortcut: auto}`."""

from __future__ import annotations

from pathlib import Path

from dlc.plugin_api import BlockType, OpDef, PassInfo, ShortcutProjection, TemplateLibrary, hookimpl
from dlc.tuning import Tuner

from . import (
    conv_blocks,
    conv_ops,
    fft_conv,
    fused_conv,
    layer_blocks,
    layer_ops,
    locally_connected,
    passes,
    pool_blocks,
    pool_ops,
)


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [
        *conv_ops.OPS,
        *fft_conv.OPS,
        *fused_conv.OPS,
        *pool_ops.OPS,
        *layer_ops.OPS,
        *locally_connected.OPS,
    ]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [*conv_blocks.BLOCKS, *pool_blocks.BLOCKS, *layer_blocks.BLOCKS, *locally_connected.BLOCKS]


@hookimpl
def dlc_passes() -> list[PassInfo]:
    return list(passes.PASSES)


@hookimpl
def dlc_shortcut_projections() -> list[ShortcutProjection]:
    return [ShortcutProjection("conv", conv_blocks.conv_projection)]


@hookimpl
def dlc_templates() -> list[TemplateLibrary]:
    return [TemplateLibrary(Path(__file__).with_name("templates.yaml"))]


@hookimpl
def dlc_tuners() -> list[Tuner]:
    return [Tuner("conv-cost", "convolution cost model (direct vs FFT selection)", _calibrate)]


def _calibrate(quick: bool) -> str:
    from . import tune  # imports onnx and onnxruntime: only when `dlc tune` runs

    return tune.calibrate(quick)
