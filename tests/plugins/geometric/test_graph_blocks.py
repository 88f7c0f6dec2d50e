"""Each graph block against its torch_geometric 2.8 module, option by option: PyG's
state_dict loaded as it is, outputs equal within 1e-5 in ONNX Runtime and in the ejected
torch module, on graphs with isolated nodes, self-loops, duplicate edges and weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

pyg = pytest.importorskip("torch_geometric.nn")

from .pyg_parity import assert_matches, awkward_graph, compile_with  # noqa: E402

FEATURES = 6


def block_spec(tmp_path: Path, block: str, options: dict[str, Any], weighted: bool = False) -> Path:
    """A spec with one block `conv` on inputs x [V, 6], edge_index [2, E] (, edge_weight [E])."""
    inputs: dict[str, Any] = {
        "x": {"shape": ["V", FEATURES], "dtype": "float32"},
        "edge_index": {"shape": [2, "E"], "dtype": "int64"},
    }
    if weighted:
        inputs["edge_weight"] = {"shape": ["E"], "dtype": "float32"}
    spec = {
        "dlc": 1,
        "name": f"one_{block}",
        "inputs": inputs,
        "layers": [{block: options, "in": list(inputs), "id": "conv"}],
        "outputs": ["conv"],
    }
    path = tmp_path / f"{block}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def randomized(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter and buffer random (PyG zero-initializes biases: they must count)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
    return module.eval()


def check(
    tmp_path: Path, block: str, options: dict[str, Any], reference: torch.nn.Module, weighted: bool
) -> None:
    container = randomized(torch.nn.ModuleDict({"conv": reference}), seed=len(str(options)))
    model = compile_with(block_spec(tmp_path, block, options, weighted), container, tmp_path)
    for seed, (nodes, edges) in enumerate([(9, 20), (15, 41)]):
        graph = awkward_graph(seed, nodes, edges, FEATURES)
        x, edge_index = torch.from_numpy(graph["x"]), torch.from_numpy(graph["edge_index"])
        with torch.no_grad():
            if weighted:
                expected = reference(x, edge_index, torch.from_numpy(graph["edge_weight"]))
            else:
                expected = reference(x, edge_index)
        assert_matches(expected, model, graph)


GCN_CASES = [
    ({}, {}, False),
    ({}, {}, True),
    ({"improved": True}, {"improved": True}, True),
    ({"improved": True}, {"improved": True}, False),
    ({"add_self_loops": False}, {"add_self_loops": False}, True),
    ({"normalize": False}, {"normalize": False}, True),
    ({"normalize": False}, {"normalize": False}, False),
    ({"bias": False}, {"bias": False}, False),
]


@pytest.mark.parametrize(("ours", "theirs", "weighted"), GCN_CASES, ids=[str(c) for c in GCN_CASES])
def test_gcn_conv_matches_pyg(tmp_path: Path, ours: dict, theirs: dict, weighted: bool) -> None:
    check(tmp_path, "gcn_conv", {"out": 5, **ours}, pyg.GCNConv(FEATURES, 5, **theirs), weighted)


CHEB_CASES = [
    ({"K": 1}, False),
    ({"K": 2}, False),
    ({"K": 3}, True),
    ({"K": 4, "normalization": "rw"}, True),
    ({"K": 3, "bias": False}, False),
]


@pytest.mark.parametrize(("options", "weighted"), CHEB_CASES, ids=[str(c) for c in CHEB_CASES])
def test_cheb_conv_matches_pyg(tmp_path: Path, options: dict, weighted: bool) -> None:
    check(tmp_path, "cheb_conv", {"out": 5, **options}, pyg.ChebConv(FEATURES, 5, **options), weighted)


def test_cheb_conv_with_lambda_max_matches_pyg(tmp_path: Path) -> None:
    reference = randomized(torch.nn.ModuleDict({"conv": pyg.ChebConv(FEATURES, 4, K=3)}), seed=3)
    model = compile_with(
        block_spec(tmp_path, "cheb_conv", {"out": 4, "K": 3, "lambda_max": 1.5}), reference, tmp_path
    )
    graph = awkward_graph(4, 10, 25, FEATURES)
    x, edge_index = torch.from_numpy(graph["x"]), torch.from_numpy(graph["edge_index"])
    with torch.no_grad():
        expected = reference["conv"](x, edge_index, lambda_max=torch.tensor(1.5))
    assert_matches(expected, model, graph)


GAT_CASES = [
    {},
    {"heads": 3},
    {"heads": 3, "concat": False},
    {"heads": 2, "negative_slope": 0.1, "dropout": 0.6},
    {"heads": 2, "add_self_loops": False},
    {"heads": 2, "bias": False},
]


@pytest.mark.parametrize("options", GAT_CASES, ids=[str(c) for c in GAT_CASES])
def test_gat_conv_matches_pyg(tmp_path: Path, options: dict) -> None:
    check(tmp_path, "gat_conv", {"out": 4, **options}, pyg.GATConv(FEATURES, 4, **options), False)


SAGE_CASES = [
    {},
    {"aggr": "max"},
    {"aggr": "sum"},
    {"normalize": True},
    {"root_weight": False, "bias": False},
]


@pytest.mark.parametrize("options", SAGE_CASES, ids=[str(c) for c in SAGE_CASES])
def test_sage_conv_matches_pyg(tmp_path: Path, options: dict) -> None:
    check(tmp_path, "sage_conv", {"out": 5, **options}, pyg.SAGEConv(FEATURES, 5, **options), False)


@pytest.mark.parametrize("options", [{}, {"eps": 0.3}, {"eps": -0.2, "train_eps": True}], ids=str)
def test_gin_conv_with_a_sequential_mlp_matches_pyg(tmp_path: Path, options: dict) -> None:
    mlp = torch.nn.Sequential(torch.nn.Linear(FEATURES, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5))
    gin = {"nn": "gin_mlp", "options": {"hidden": 8, "out": 5}, **options}
    check(tmp_path, "gin_conv", gin, pyg.GINConv(mlp, **options), False)


def pool_spec(tmp_path: Path, block: str, options: dict[str, Any], batched: bool) -> Path:
    inputs: dict[str, Any] = {"x": {"shape": ["V", FEATURES], "dtype": "float32"}}
    if batched:
        inputs["batch"] = {"shape": ["V"], "dtype": "int64"}
    layer = {block: options or None, "in": list(inputs) if batched else "x", "id": "pooled"}
    spec = {"dlc": 1, "name": "pool", "inputs": inputs, "layers": [layer], "outputs": ["pooled"]}
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


POOLS = [
    ("global_add_pool", {}, "global_add_pool"),
    ("global_mean_pool", {}, "global_mean_pool"),
    ("graph_pool", {"reduce": "max"}, "global_max_pool"),
    ("graph_pool", {"reduce": "sum"}, "global_add_pool"),
    ("graph_pool", {"reduce": "mean"}, "global_mean_pool"),
]


@pytest.mark.parametrize(("block", "options", "reference"), POOLS, ids=[f"{p[0]}-{p[2]}" for p in POOLS])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "one-graph"])
def test_global_pools_match_pyg(
    tmp_path: Path, block: str, options: dict, reference: str, batched: bool
) -> None:
    import dlc

    from .pyg_parity import assert_matches

    model = dlc.compile(pool_spec(tmp_path, block, options, batched))
    x = (
        torch.randn(11, FEATURES, generator=torch.Generator().manual_seed(5)) - 1.0
    )  # negative: max needs care
    batch = torch.tensor([0, 0, 0, 2, 2, 2, 2, 3, 3, 0, 3])  # unsorted; graph 1 has no nodes
    inputs = {"x": x.numpy(), "batch": batch.numpy()}
    expected = getattr(pyg, reference)(x, batch if batched else None)
    assert_matches(expected, model, inputs)
