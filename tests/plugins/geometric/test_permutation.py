"""Permutation properties of the graph blocks (hypothesis): relabelling the nodes (x's rows,
the entries of edge_index and batch) permutes the node outputs the same way and leaves
the per-graph pooled outputs unchanged, within 1e-5, in ONNX Runtime."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import dlc
from dlc.runtime import Session
from dlc.testing import max_relative_error

FEATURES = 5
BLOCKS = {
    "gcn_conv": ({"out": 4}, True),
    "cheb_conv": ({"out": 4, "K": 3}, True),
    "gat_conv": ({"out": 3, "heads": 2}, False),
    "sage_conv": ({"out": 4, "aggr": "max"}, False),
    "gin_conv": ({"nn": "gin_mlp", "options": {"hidden": 6, "out": 4}, "eps": 0.1}, False),
}


@cache
def session(block: str) -> Session:
    options, weighted = BLOCKS[block]
    inputs = {
        "x": {"shape": ["V", FEATURES]},
        "edge_index": {"shape": [2, "E"], "dtype": "int64"},
        "batch": {"shape": ["V"], "dtype": "int64"},
    }
    conv_inputs = ["x", "edge_index"]
    if weighted:
        inputs["edge_weight"] = {"shape": ["E"]}
        conv_inputs.append("edge_weight")
    spec = {
        "dlc": 1,
        "name": f"perm_{block}",
        "inputs": inputs,
        "layers": [
            {block: options, "in": conv_inputs, "id": "conv"},
            {"graph_pool": {"reduce": "max"}, "in": ["conv", "batch"], "id": "pooled_max"},
            {"global_mean_pool": None, "in": ["conv", "batch"], "id": "pooled_mean"},
        ],
        "outputs": ["conv", "pooled_max", "pooled_mean"],
    }
    return Session(dlc.compile(dlc.load_spec(f"{block}.yaml", text=yaml.safe_dump(spec))).onnx_model(), "cpu")


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, np.ndarray]:
    nodes = draw(st.integers(2, 12))
    edges = draw(st.integers(0, 30))  # no edges at all included
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((nodes, FEATURES)).astype(np.float32),
        "edge_index": rng.integers(0, nodes, (2, edges)).astype(np.int64),  # loops and duplicates happen
        "edge_weight": (rng.random(edges) + 0.5).astype(np.float32),
        "batch": np.sort(rng.integers(0, 3, nodes)).astype(np.int64),
        "permutation": rng.permutation(nodes),
    }


@pytest.mark.parametrize("block", list(BLOCKS))
@settings(max_examples=20, deadline=None)
@given(graph=graphs())
def test_relabelling_nodes_permutes_node_outputs_and_keeps_pooled_ones(block: str, graph: dict) -> None:
    run = session(block)
    names = [i.name for i in run.inputs]
    order = graph["permutation"]  # new node i is old node order[i]
    new_label = np.argsort(order)  # old node j is new node new_label[j]
    relabelled = {
        "x": graph["x"][order],
        "edge_index": new_label[graph["edge_index"]],
        "edge_weight": graph["edge_weight"],
        "batch": graph["batch"][order],
    }
    before = run.run({name: graph[name] for name in names})
    after = run.run({name: relabelled[name] for name in names})
    assert max_relative_error(before["conv"][order], after["conv"]) <= 1e-5
    for pooled in ("pooled_max", "pooled_mean"):
        assert max_relative_error(before[pooled], after[pooled]) <= 1e-5, pooled
