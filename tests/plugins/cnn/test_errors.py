"""Bad convolution specs as a user meets them: `dlc validate` in a subprocess, checking the
message (which names the shapes), file:line:col, exit code 1 and no traceback."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import run_cli

HEADER = "dlc: 1\nname: bad\ninputs:\n  x: {shape: [N, 6, 5, 5]}\nlayers:\n"  # layers start on line 6


@dataclass(frozen=True)
class Bad:
    name: str
    layers: str
    line: int
    column: int
    message: str


CASES = [
    Bad(
        "kernel-larger-than-input",
        "  - conv2d: {out: 8, kernel: 7}\n",
        6,
        5,
        "conv2d layer 'conv2d_0': conv: kernel 7x7 is larger than the input [N, 6, 5, 5]: spatial dim 0 is 5, padded to 5",
    ),
    Bad(
        "dilated-kernel-larger-than-input",
        "  - conv2d: {out: 8, kernel: 3, dilation: 3}\n",
        6,
        5,
        "kernel 3x3 (dilated to 7) is larger than the input [N, 6, 5, 5]: spatial dim 0 is 5, padded to 5",
    ),
    Bad(
        "channels-not-divisible-by-groups",
        "  - conv2d: {out: 8, kernel: 3, groups: 4}\n",
        6,
        5,
        "the input [N, 6, 5, 5] has 6 channels, which groups=4 does not divide",
    ),
    Bad(
        "out-not-divisible-by-groups",
        "  - conv2d: {out: 8, kernel: 3, groups: 3}\n",
        6,
        5,
        "out=8 channels are not divisible by groups=3 (input [N, 6, 5, 5])",
    ),
    Bad(
        "negative-stride",
        "  - conv2d: {out: 8, kernel: 3, stride: -2}\n",
        6,
        41,
        "invalid 'stride' of block 'conv2d': stride must be >= 1, got -2",
    ),
    Bad(
        "negative-stride-per-dim",
        "  - conv2d: {out: 8, kernel: 3, stride: [1, -1]}\n",
        6,
        41,
        "stride must be >= 1, got [1, -1]",
    ),
    Bad(
        "kernel-entries-per-dim",
        "  - conv2d: {out: 8, kernel: [3, 3, 3]}\n",
        6,
        30,
        "kernel takes one int or 2 (one per spatial dim), got [3, 3, 3]",
    ),
    Bad(
        "wrong-input-rank",
        "  - conv1d: {out: 8, kernel: 3}\n",
        6,
        5,
        "conv1d layer 'conv1d_0': expects an input [N, C, L], got [N, 6, 5, 5]",
    ),
    Bad(
        "causal-is-1d",
        "  - conv2d: {out: 8, kernel: 3, padding: causal}\n",
        6,
        42,
        "padding 'causal' pads the time axis of a 1-D input (conv1d)",
    ),
    Bad(
        "unet-crop-impossible",
        "  - conv2d: {out: 8, kernel: 3}\n    id: skip\n  - conv_transpose2d: {out: 8, kernel: 2, stride: 2}\n"
        "    id: up\n  - center_crop:\n    in: [skip, up]\n",
        10,
        5,
        "center_crop layer 'center_crop_0': cannot crop [N, 8, 3, 3] to the spatial size [6, 6] of [N, 8, 6, 6]: "
        "spatial dim 0 is 3, smaller than 6",
    ),
    Bad(
        "pool-padding-larger-than-kernel",
        "  - max_pool2d: {kernel: 2, padding: 2}\n",
        6,
        5,
        "max_pool: padding [2, 2, 2, 2] must be smaller than the kernel [2, 2] in every dim",
    ),
    Bad(
        "adaptive-pool-rank",
        "  - adaptive_avg_pool1d: 4\n",
        6,
        5,
        "expects an input [N, C, L], got [N, 6, 5, 5]",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_convolution_spec_is_a_located_error(case: Bad, tmp_path) -> None:
    path = tmp_path / f"{case.name}.yaml"
    path.write_text(HEADER + case.layers)
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{path}:{case.line}:{case.column}: error" in result.stderr, result.stderr
    assert case.message in result.stderr, result.stderr
