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


GQA_HEADER = """\
dlc: 1
name: bad
inputs:
  x: {shape: [N, T, 16]}
  bias: {shape: [N, 3, T, T]}
layers:
"""

GQA_CASES = [
    (
        "kv-heads-not-dividing",
        "  - scaled_dot_product_attention: {heads: 4, kv_heads: 3}\n    in: [x, x, x]\n",
        "kv_heads 3 does not divide heads 4",
        "choose kv_heads among [1, 2, 4]",
    ),
    (
        "kv-heads-widths",
        "  - scaled_dot_product_attention: {heads: 4, kv_heads: 2}\n    in: [x, x, x]\n",
        "have different features per head (4 query heads, 2 key/value heads)",
        "input shapes: [N, T, 16], [N, T, 16], [N, T, 16]",
    ),
    (
        "bias-not-broadcastable",
        "  - scaled_dot_product_attention: 4\n    in: [x, x, x, bias]\n",
        "the bias [N, 3, T, T] does not broadcast to the scores [N, 4, T, T]",
        "[N|1, heads|1, S|1, L|1]",
    ),
    (
        "packed-gqa",
        "  - multi_head_attention: {heads: 4, kv_heads: 2}\n    in: x\n",
        "grouped-query attention (kv_heads 2 < heads 4) has narrower key/value projections",
        "hint: set `packed: false`",
    ),
    (
        "rotary-odd",
        "  - rotary_embedding: {head_dim: 8, dim: 5}\n    in: x\n",
        "the rotary dim 5 must be even (features rotate in pairs)",
        "rotary_embedding layer 'rotary_embedding_0'",
    ),
    (
        "rotary-wider-than-head",
        "  - rotary_embedding: {head_dim: 8, dim: 10}\n    in: x\n",
        "the rotary dim 10 is larger than the head dim 8",
        "rotary_embedding: {head_dim: 8, dim: 10}",
    ),
    (
        "rotary-heads",
        "  - rotary_embedding: 6\n    in: x\n",
        "takes [N, T, heads * head_dim] with head_dim 6, got [N, T, 16]",
        "- rotary_embedding: 6",
    ),
]


@pytest.mark.parametrize(("name", "layers", "message", "detail"), GQA_CASES, ids=[c[0] for c in GQA_CASES])
def test_misused_gqa_bias_and_rotary_are_located_errors(
    tmp_path: Path, name: str, layers: str, message: str, detail: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(GQA_HEADER + layers)
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert f"{path}:7:5: error:" in result.output
    assert message in result.output and detail in result.output
    assert "Traceback" not in result.output
