"""Cost estimates for the fusion passes' "does it pay" checks, on the shared CNN cost model
(`dlc.plugins.cnn.cost`, read-only here).

Shapes may be symbolic: a symbolic batch is costed at 1 (the cost of one sample), any other
symbolic dim at `NOMINAL_SIZE`. MACs compare exactly at any size for the rewrites here (both
sides scale with the same dims); the model's fixed overheads and GEMM efficiencies do not,
so the nominal size stands for a typical feature map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from dlc.plugin_api import Dim, Node, TensorType, is_static

from ..cost import ConvShape, CostModel, cache_directory
from .conv_rewriting import kernel_of

NOMINAL_SIZE = 64


def cost_model() -> CostModel:
    """The calibrated model (`dlc tune`) when there is one, else the defaults."""
    return _load(cache_directory())


@lru_cache(maxsize=4)
def _load(directory: Path) -> CostModel:  # once per cache directory, not once per conv
    return CostModel.load()


def concrete(dim: Dim, *, batch: bool = False) -> int:
    if is_static(dim):
        return int(dim)
    return 1 if batch else NOMINAL_SIZE


def concrete_shape(type_: TensorType) -> tuple[int, ...]:
    return tuple(concrete(d, batch=index == 0) for index, d in enumerate(type_.shape))


def conv_shape(x: TensorType, out: TensorType, kernel: Sequence[int], groups: int) -> ConvShape:
    """The cost model's view of a conv from input `x` to output `out` (which may be one that
    a rewrite would create)."""
    x_shape, out_shape = concrete_shape(x), concrete_shape(out)
    return ConvShape(
        batch=x_shape[0],
        in_channels=x_shape[1],
        out_channels=out_shape[1],
        kernel=tuple(kernel),
        out_spatial=out_shape[2:],
        in_spatial=x_shape[2:],
        groups=groups,
    )


def node_shape(conv: Node) -> ConvShape:
    return conv_shape(conv.inputs[0].type, conv.output.type, kernel_of(conv), conv.attrs.groups)


def seconds(shapes: Sequence[ConvShape]) -> float:
    model = cost_model()
    return sum(model.direct_conv(shape) for shape in shapes)


def elementwise_seconds(type_: TensorType, ops: int = 1) -> float:
    """Predicted time of `ops` element-wise passes (activation, split copy) over `type_`."""
    return cost_model().elementwise(math.prod(concrete_shape(type_)), ops)


def more_costly(
    merged: Sequence[ConvShape],
    separate: Sequence[ConvShape],
    *,
    merged_extra: float = 0.0,
    separate_extra: float = 0.0,
) -> str | None:
    """Why the `merged` convs do not beat the `separate` ones, or None. `merged_extra` and
    `separate_extra` are seconds of other work that each side adds (a split, the adds).

    Both counts must agree: no more MACs, and less predicted time."""
    merged_macs = sum(s.macs for s in merged)
    separate_macs = sum(s.macs for s in separate)
    if merged_macs > separate_macs:
        return f"it costs more MACs: {merged_macs:,} against {separate_macs:,} per sample"
    after, before = seconds(merged) + merged_extra, seconds(separate) + separate_extra
    if after >= before:
        return f"the cost model predicts no gain: {after * 1e6:.1f} us against {before * 1e6:.1f} us"
    return None
