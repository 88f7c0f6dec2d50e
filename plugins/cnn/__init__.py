"""The CNN family: convolutions, pooling, normalization and resampling blocks, the
templates of the classic architectures (inception, residual and WaveNet blocks), and a
1x1-conv shortcut projection for `residual: {shortcut: auto}`."""

from __future__ import annotations

from dlc.plugin_api import OpDef, hookimpl

from . import conv_ops, layer_ops, pool_ops


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [*conv_ops.OPS, *pool_ops.OPS, *layer_ops.OPS]
