"""A cost model for convolutions in ONNX Runtime on the host: predicted seconds per call.

Time is modelled as fixed overhead, plus arithmetic at a throughput that grows with the
GEMM each conv amounts to, plus bytes moved at memory bandwidth (whichever of the two is
larger dominates):

    t = overhead + max(macs / (peak * efficiency(M, K, N)), bytes / bandwidth)

`efficiency` models small matrix products running below peak: each GEMM dim d contributes
d / (d + half), with `half` the dim at which throughput halves. Depthwise convs have their
own throughput. The constants come from `dlc tune`, which measures them on this machine and
stores them in the user's cache directory; without calibration, the defaults below (this
project's 2-core AVX-512 development machine) apply.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dlc.user_cache import cache_directory

CALIBRATION_FILE = "conv_cost.json"


@dataclass(frozen=True)
class CostConstants:
    """Throughputs in MACs/s, bandwidth in bytes/s, overhead in seconds."""

    gemm_peak: float = 200e9
    gemm_half: float = 12.0
    depthwise_rate: float = 75e9  # 2-D depthwise convs
    depthwise_rate_1d: float = 16e9  # 1-D ones run far slower in ONNX Runtime
    bandwidth: float = 50e9
    overhead: float = 2e-6
    direct_factor: float = 0.85  # measured dense direct conv time / GEMM-model prediction
    source: str = "defaults"

    def efficiency(self, *dims: float) -> float:
        return math.prod(d / (d + self.gemm_half) for d in dims)


@dataclass(frozen=True)
class ConvShape:
    """What the cost of one conv depends on (batch included, spatial dims flattened)."""

    batch: int
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    out_spatial: tuple[int, ...]
    in_spatial: tuple[int, ...]
    groups: int = 1

    @property
    def macs(self) -> int:
        per_output = self.in_channels // self.groups * math.prod(self.kernel)
        return self.batch * self.out_channels * math.prod(self.out_spatial) * per_output

    @property
    def bytes(self) -> int:
        inputs = self.batch * self.in_channels * math.prod(self.in_spatial)
        outputs = self.batch * self.out_channels * math.prod(self.out_spatial)
        weights = self.out_channels * self.in_channels // self.groups * math.prod(self.kernel)
        return 4 * (inputs + outputs + weights)

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels == self.out_channels


class CostModel:
    def __init__(self, constants: CostConstants | None = None) -> None:
        self.constants = constants or CostConstants()

    @staticmethod
    def load() -> CostModel:
        """The calibrated model when `dlc tune` has run on this machine, else the defaults."""
        path = cache_directory() / CALIBRATION_FILE
        try:
            stored = json.loads(path.read_text())
            known = {f.name for f in fields(CostConstants)}
            return CostModel(CostConstants(**{k: v for k, v in stored.items() if k in known}))
        except (OSError, ValueError, TypeError):
            return CostModel()

    def save(self) -> Path:
        path = cache_directory() / CALIBRATION_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self.constants), indent=2) + "\n")
        return path

    def direct_conv(self, shape: ConvShape) -> float:
        """Seconds for one direct convolution (im2col-style GEMM per group, or depthwise)."""
        c = self.constants
        if shape.depthwise:
            rate = c.depthwise_rate_1d if len(shape.kernel) == 1 else c.depthwise_rate
            compute = shape.macs / rate
        else:
            m = shape.out_channels // shape.groups
            k = shape.in_channels // shape.groups * math.prod(shape.kernel)
            n = shape.batch * math.prod(shape.out_spatial)
            compute = c.direct_factor * shape.macs / (c.gemm_peak * c.efficiency(m, k, n))
        return c.overhead + max(compute, shape.bytes / c.bandwidth)

    def matmul(self, m: int, k: int, n: int, batch: int = 1, weight_bytes: int = 0) -> float:
        """Seconds for `batch` products of [m, k] @ [k, n] (weights read once)."""
        c = self.constants
        macs = batch * m * k * n
        moved = 4 * batch * (m * k + k * n + m * n) + weight_bytes
        return c.overhead + max(macs / (c.gemm_peak * c.efficiency(m, k, n)), moved / c.bandwidth)

    def elementwise(self, elements: int, ops: int = 1) -> float:
        c = self.constants
        return ops * (c.overhead + 8 * elements / c.bandwidth)
