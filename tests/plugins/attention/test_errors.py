"""Bad attention specs as a user meets them: `dlc validate` in a subprocess reports a located
error (file:line:col, the message naming the shapes), exits 1 and prints no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

HEADER = """\
dlc: 1
name: bad
inputs:
  x: {shape: [N, T, 16]}
  memory: {shape: [N, S, 12]}
  image: {shape: [N, 3, 30, 32]}
layers:
"""

CASES = [
    ("heads", "  - multi_head_attention: {heads: 5}\n    in: x\n", 8, "dim 16 does not split into 5 heads"),
    (
        "packed-widths",
        "  - multi_head_attention: 4\n    in: [x, memory]\n",
        8,
        "packed projections need every input 16 wide (query float32[N, T, 16], key/value float32[N, S, 12])",
    ),
    (
        "attention-inputs",
        "  - scaled_dot_product_attention: 2\n    in: [x, x]\n",
        8,
        "block 'scaled_dot_product_attention' takes 3 to 4 input(s), got 2",
    ),
    (
        "attention-shapes",
        "  - scaled_dot_product_attention: 2\n    in: [x, memory, memory]\n",
        8,
        "query float32[N, T, 16] and key float32[N, S, 12] have different features",
    ),
    (
        "decoder-memory",
        "  - transformer_decoder_layer: {heads: 4}\n    in: [x, x, x]\n",
        8,
        "takes `in: [x, memory]` or `in: [x, memory, memory_key_padding_mask]`",
    ),
    (
        "patches",
        "  - patch_embedding: {patch: 16, dim: 8}\n    in: image\n",
        8,
        "image size 30x32 must be static and divide into 16x16 patches",
    ),
    (
        "odd-sinusoidal",
        "  - linear: 7\n    in: x\n  - sinusoidal_encoding\n",
        10,
        "needs an even feature dim",
    ),
    (
        "long-positions",
        "  - flatten: {start: 2}\n    in: image\n  - transpose: [0, 2, 1]\n  - positional_embedding: 4\n",
        11,
        "the input has 960 positions, more than max_len 4",
    ),
]


@pytest.mark.parametrize(("name", "layers", "line", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_attention_specs_are_located_errors(
    tmp_path: Path, name: str, layers: str, line: int, message: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(HEADER + layers)
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert f"{path}:{line}:5: error:" in result.output
    assert message in result.output
    assert "Traceback" not in result.output
