"""`dlc run --random-inputs` draws valid graphs: edge indices in [0, V) at every V (the
spec's `range: [0, V]`, or the range a graph block notes on its edge_index input)."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.runtime import Session, random_inputs
from tests.conftest import SPECS, run_cli


@pytest.mark.parametrize("nodes", [1, 3, 50])
def test_random_edge_indices_stay_below_the_node_count(nodes: int) -> None:
    session = Session(dlc.compile(SPECS / "geometric" / "gat_cora.yaml").onnx_model(), "cpu")
    inputs = random_inputs(session, {"V": nodes, "E": 400}, seed=nodes)
    assert inputs["edge_index"].shape == (2, 400)
    assert inputs["edge_index"].min() >= 0 and inputs["edge_index"].max() < nodes
    assert np.isfinite(session.run(inputs)["conv2"]).all()


def test_a_block_notes_the_edge_index_range_when_the_spec_gives_none(tmp_path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(
        "dlc: 1\nname: plain\ninputs:\n  x: {shape: [V, 3]}\n  edge_index: {shape: [2, E], dtype: int64}\n"
        "layers:\n  - sage_conv: 2\n    in: [x, edge_index]\n"
    )
    session = Session(dlc.compile(path).onnx_model(), "cpu")
    assert session.input_ranges["edge_index"] == (0, "V")
    inputs = random_inputs(session, {"V": 4, "E": 300})
    assert inputs["edge_index"].max() < 4


def test_dlc_run_random_inputs_on_a_graph_spec() -> None:
    result = run_cli(
        "run",
        str(SPECS / "geometric" / "gin_graph_classification.yaml"),
        "--random-inputs",
        "--dim",
        "V=7",
        "--dim",
        "E=30",
    )
    assert result.code == 0, result.output
    assert "edge_index" in result.stdout and "lin2" in result.stdout
