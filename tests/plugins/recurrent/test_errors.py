"""Bad recurrent specs as a user meets them: `dlc validate` in a subprocess reports every
problem at once, each with its message, file:line:col and the shapes involved, exit code
1 and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CliResult, run_cli

SPEC = """\
dlc: 1
name: bad_recurrent
inputs:
  x: {shape: [T, N, 10]}
  flat: {shape: [N, 10]}
  lengths: {shape: [N], dtype: float32}
  h0: {shape: [2, N, 20]}
  chars: {shape: [N, T, 5], dtype: int64}
layers:
  - lstm: 20
    in: flat
  - gru: {hidden: 20, initial_state: true}
    in: [x, h0]
  - rnn: {hidden: 20, lengths: true}
    in: [x, lengths]
  - lstm: {hidden: 20, initial_state: true}
    in: [x, h0]
  - lstm: {hidden: 20, proj_size: 20}
    in: x
  - gru: {hidden: 20, dropout: 0.5}
    in: x
  - time_distributed: {block: lienar}
    in: x
  - time_distributed: {block: linear, options: {outt: 3}}
    in: x
  - sequence_mask:
    in: [h0, x]
  - linear_recurrence: {state: 8, r_min: 0.9, r_max: 0.5}
    in: x
  - linear_recurrence: {state: 8, r_max: 1.5}
    in: x
  - linear_recurrence: 8
    in: flat
  - linear_recurrence: {state: 4096, chunk: 256}
    in: x
  - lstmp: {hidden: 20, proj_size: 8, cell_clip: -3}
    in: x
  - lstmp: {hidden: 20, proj_size: 8, initial_state: true}
    in: [x, h0, h0]
  - char_cnn: {vocab: 262, dim: 16, filters: [[1, 32], [7, 64]]}
    in: chars
  - char_cnn: {vocab: 262, dim: 16, filters: [[1, 32]]}
    in: x
  - char_cnn: {vocab: 262, dim: 16, filters: [[0, 32]]}
    in: chars
"""

# (line, column, message): one per bad layer above.
# fmt: off
EXPECTED = [
    (10, 5, "lstm layer 'lstm_0': expects a 3-D input sequence [T, N, features] (or set batch_first: true), got float32[N, 10]"),
    (12, 5, "gru layer 'gru_0': the initial state h0 must be float32[1, N, 20] ([layers * directions, N, 20]), got float32[2, N, 20]"),
    (14, 5, "rnn layer 'rnn_0': sequence lengths must be integers (int64), got float32[N]"),
    (16, 5, "lstm layer 'lstm_1': takes 3 input(s) with these options (x, h0, c0), got 2"),
    (18, 35, "invalid 'proj_size' of block 'lstm': proj_size (20) must be smaller than hidden (20)"),
    (20, 32, "invalid 'dropout' of block 'gru': dropout applies between stacked layers and needs layers > 1"),
    (22, 5, "time_distributed layer 'time_distributed_0': unknown block 'lienar'"),
    (24, 5, "time_distributed layer 'time_distributed_1': invalid options for block 'linear': out: Field required; outt: Extra inputs are not permitted"),
    (26, 5, "sequence_mask layer 'sequence_mask_0': lengths must be int64 [N] (one per sequence of float32[T, N, 10]), got float32[2, N, 20]"),
    (28, 54, "invalid 'r_max' of block 'linear_recurrence': r_max (0.5) must be larger than r_min (0.9)"),
    (30, 42, "invalid 'r_max' of block 'linear_recurrence': expected less than or equal to 1 (got 1.5)"),
    (32, 5, "linear_recurrence layer 'linear_recurrence_2': expects a 3-D float32 input sequence [T, N, features] (or set batch_first: true), got float32[N, 10]"),
    (34, 5, "linear_recurrence layer 'linear_recurrence_3': chunk 256 with state 4096: the scan's Toeplitz matrices would take 2048 MB (at most 256 MB)"),
    (36, 50, "invalid 'cell_clip' of block 'lstmp': expected greater than 0 (got -3)"),
    (38, 5, "lstmp layer 'lstmp_1': the initial state h0 must be float32[1, N, 8] ([layers * directions, N, 8]), got float32[2, N, 20]"),
    (40, 5, "char_cnn layer 'char_cnn_0': tokens of 5 characters are shorter than the widest filter (7)"),
    (42, 5, "char_cnn layer 'char_cnn_1': expects integer character ids [..., characters] (e.g. [N, T, 50]), got float32[T, N, 10]"),
    (44, 46, "invalid 'filters' of block 'char_cnn': each filter is [width, count] with both >= 1, got [0, 32]"),
]
# fmt: on


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliResult]:
    path = tmp_path_factory.mktemp("bad") / "bad_recurrent.yaml"
    path.write_text(SPEC)
    return path, run_cli("validate", str(path))


def test_exits_1_without_a_traceback_and_counts_every_error(result) -> None:
    _, outcome = result
    assert outcome.code == 1
    assert "Traceback" not in outcome.output
    assert f"{len(EXPECTED)} errors" in outcome.output


@pytest.mark.parametrize(
    ("line", "column", "message"), EXPECTED, ids=[m.split(":")[0] for _, _, m in EXPECTED]
)
def test_each_error_is_located_and_names_the_shapes(result, line: int, column: int, message: str) -> None:
    path, outcome = result
    assert f"{path}:{line}:{column}: error: {message}" in outcome.output
