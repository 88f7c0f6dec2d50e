"""Bad graph specs as a user meets them: `dlc validate` in a subprocess; the message names
the shapes, the location is file:line:col, the exit code 1, and no traceback."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import run_cli

HEADER = """dlc: 1
name: bad
inputs:
  x: {shape: [V, 6]}
  edge_index: {shape: [2, E], dtype: int64}
  node_weight: {shape: [V]}
  batch: {shape: [N], dtype: int64}
  flat: {shape: [V]}
  symbolic: {shape: [V, F]}
  transposed: {shape: [E, 2], dtype: int64}
  float_edges: {shape: [2, E]}
layers:
"""  # layers start on line 13


@dataclass(frozen=True)
class Bad:
    name: str
    layers: str
    line: int
    column: int
    message: str


CASES = [
    Bad(
        "features-not-a-matrix",
        "  - gcn_conv: 4\n    in: [flat, edge_index]\n",
        13,
        5,
        "gcn_conv layer 'gcn_conv_0': node features x must be [V, F] floating point, got float32[V]",
    ),
    Bad(
        "feature-dim-not-a-number",
        "  - sage_conv: 4\n    in: [symbolic, edge_index]\n",
        13,
        5,
        "the feature dim of x [V, F] must be a number, not F",
    ),
    Bad(
        "feature-dims-do-not-match",
        "  - gcn_conv: 4\n    in: [x, edge_index]\n    id: conv\n  - add:\n    in: [conv, x]\n",
        16,
        5,
        "add: shapes [V, 4] and [V, 6] do not match",
    ),
    Bad(
        "edge-index-transposed",
        "  - gcn_conv: {out: 4}\n    in: [x, transposed]\n",
        13,
        5,
        "edge_index must be [2, E] int64 (row 0 sources, row 1 targets), got int64[E, 2]",
    ),
    Bad(
        "edge-index-not-int64",
        "  - gat_conv: {out: 4}\n    in: [x, float_edges]\n",
        13,
        5,
        "edge_index must be [2, E] int64 (row 0 sources, row 1 targets), got float32[2, E]",
    ),
    Bad(
        "edge-weight-per-node",
        "  - gcn_conv: {out: 4}\n    in: [x, edge_index, node_weight]\n",
        13,
        5,
        "edge_weight must be [E] floating point, one weight per edge of edge_index int64[2, E], got float32[V]",
    ),
    Bad(
        "batch-of-wrong-length",
        "  - global_add_pool:\n    in: [x, batch]\n",
        13,
        5,
        "batch must be [V] int64, one graph index per row of x float32[V, 6], got int64[N]",
    ),
    Bad(
        "gcn-cached",
        "  - gcn_conv: {out: 4, cached: true}\n    in: [x, edge_index]\n",
        13,
        5,
        "`cached: true` caches one graph's normalization across calls",
    ),
    Bad(
        "gat-weighted",
        "  - gat_conv: {out: 4}\n    in: [x, edge_index, node_weight]\n",
        13,
        5,
        "block 'gat_conv' takes 2 input(s), got 3",
    ),
    Bad(
        "gin-unknown-nn",
        "  - gin_conv: {nn: gin_mpl}\n    in: [x, edge_index]\n",
        13,
        5,
        "unknown block or template 'gin_mpl' for `nn`",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_graph_spec_is_a_located_error(case: Bad, tmp_path) -> None:
    path = tmp_path / f"{case.name}.yaml"
    path.write_text(HEADER + case.layers)
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{path}:{case.line}:{case.column}: error" in result.stderr, result.stderr
    assert case.message in result.stderr, result.stderr


def test_a_range_bound_that_names_no_dim_is_a_located_error(tmp_path) -> None:
    path = tmp_path / "range.yaml"
    path.write_text(
        "dlc: 1\nname: r\ninputs:\n  x: {shape: [V, 3]}\n"
        "  edge_index: {shape: [2, E], dtype: int64, range: [0, W]}\n"
        "layers:\n  - gcn_conv: 2\n    in: [x, edge_index]\n"
    )
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{path}:5:" in result.stderr and "`range` bounds are numbers, got 'W'" in result.stderr, (
        result.stderr
    )
    assert "or the name of a symbolic dim (E, V)" in result.stderr, result.stderr
