"""Spectral graph convolution and its eigenbasis helper.

- `spectral_conv` agrees with a dense numpy evaluation (float64) of the course's formula
  X' = U((U^T X W) ⊙ θ) + b within 1e-5 (relative to the output's scale), in ONNX Runtime
  and in the ejected PyTorch module, with random θ, W and b loaded by name;
- `dlc.geometric.laplacian_eigenbasis` gives orthonormal U with U^T L U diagonal (the
  eigenvalues, ascending) within 1e-5, on a Laplacian equal to torch_geometric's
  `get_laplacian` (sym and combinatorial), with isolated nodes, duplicate edges, self-loops
  and edge weights; bad graphs raise ValueErrors that name the problem;
- specs/geometric/spectral_gcn.yaml has the parameter count its comment derives, and one
  ONNX file runs graphs of three sizes with the helper's eigenbasis.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file
from torch_geometric.utils import get_laplacian, to_dense_adj

import dlc
from dlc.geometric import adjacency, laplacian, laplacian_eigenbasis
from dlc.runtime import Session
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.conftest import SPECS
from tests.plugins.geometric.set_references import onnx_and_torch_outputs

TOLERANCE = 1e-5


def random_graph(nodes: int, edges: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An undirected graph with both directions of each edge listed, isolated nodes (the
    last two take no edge), a self-loop, a duplicate edge, and weights in [0.5, 2)."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, nodes - 2, edges)
    target = rng.integers(0, nodes - 2, edges)
    source[0] = target[0] = 1  # a self-loop
    source[1], target[1] = source[2], target[2]  # a duplicate
    weight = rng.uniform(0.5, 2.0, edges)
    edge_index = np.stack([np.concatenate([source, target]), np.concatenate([target, source])])
    return edge_index.astype(np.int64), np.concatenate([weight, weight])


def spectral_model(out: int | None, k: int, features: int, weights: Path) -> dlc.CompiledModel:
    options = f"{{out: {out}}}" if out is not None else "{}"
    text = f"""
        dlc: 1
        name: spectral
        inputs:
          x: {{shape: [V, {features}]}}
          eigenbasis: {{shape: [V, {k}]}}
        layers:
          - spectral_conv: {options}
            in: [x, eigenbasis]
            id: conv
        """
    return dlc.compile(load_spec("spectral.yaml", text=textwrap.dedent(text)), weights=weights)


@pytest.mark.parametrize("out", [6, None], ids=["with-lin", "filter-only"])
@pytest.mark.parametrize("truncated", [True, False], ids=["k-lowest", "all-frequencies"])
def test_spectral_conv_agrees_with_a_dense_numpy_evaluation_of_the_formula(
    out: int | None, truncated: bool, tmp_path: Path
) -> None:
    nodes, features = 30, 5
    edge_index, weight = random_graph(nodes, 60, seed=1)
    _, u = laplacian_eigenbasis(edge_index, nodes, k=12 if truncated else None, edge_weight=weight)
    k = u.shape[1]
    width = out or features
    rng = np.random.default_rng(2)
    params = {
        "conv.theta": rng.standard_normal((k, width)).astype(np.float32),
        "conv.bias": rng.standard_normal(width).astype(np.float32),
    }
    if out is not None:
        params["conv.lin.weight"] = rng.standard_normal((out, features)).astype(np.float32)
    save_file(params, str(tmp_path / "w.safetensors"))
    model = spectral_model(out, k, features, tmp_path / "w.safetensors")
    x = rng.standard_normal((nodes, features)).astype(np.float32)
    basis, h = u.astype(np.float64), x.astype(np.float64)
    if out is not None:
        h = h @ params["conv.lin.weight"].astype(np.float64).T  # X W
    expected = basis @ ((basis.T @ h) * params["conv.theta"]) + params["conv.bias"]
    (onnx_output,), (torch_output,) = onnx_and_torch_outputs(model, {"x": x, "eigenbasis": u})
    for actual in (onnx_output, torch_output):
        assert max_relative_error(expected, actual) <= TOLERANCE


def test_a_flat_filter_over_every_frequency_is_the_identity(tmp_path: Path) -> None:
    """θ = 1 (its initial value) and all V eigenvectors: U U^T x = x."""
    edge_index, _ = random_graph(12, 20, seed=3)
    _, u = laplacian_eigenbasis(edge_index, 12)
    save_file({"conv.theta": np.ones((12, 4), np.float32)}, str(tmp_path / "w.safetensors"))
    text = """
        dlc: 1
        name: flat
        inputs:
          x: {shape: [V, 4]}
          eigenbasis: {shape: [V, 12]}
        layers:
          - spectral_conv: {bias: false}
            in: [x, eigenbasis]
            id: conv
        """
    model = dlc.compile(
        load_spec("flat.yaml", text=textwrap.dedent(text)), weights=tmp_path / "w.safetensors"
    )
    x = np.random.default_rng(4).standard_normal((12, 4)).astype(np.float32)
    (onnx_output,), (torch_output,) = onnx_and_torch_outputs(model, {"x": x, "eigenbasis": u})
    for actual in (onnx_output, torch_output):
        assert max_relative_error(x, actual) <= TOLERANCE


@settings(max_examples=15, deadline=None)
@given(nodes=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_relabelling_the_nodes_permutes_the_laplacian_and_the_spectral_conv_output(
    nodes: int, seed: int
) -> None:
    """With node i renamed order^-1[i]: L' = P L P^T (to rounding), and spectral_conv on (P x, P U)
    gives P y (within 1e-5), one compiled model for every graph size."""
    edge_index, weight = random_graph(nodes + 2, 3 * nodes, seed)
    order = np.random.default_rng(seed + 1).permutation(nodes + 2)  # new node j is old node order[j]
    relabelled = np.argsort(order)[edge_index]
    matrix = laplacian(edge_index, nodes + 2, edge_weight=weight)
    relabelled_matrix = laplacian(relabelled, nodes + 2, edge_weight=weight)
    assert (
        np.abs(relabelled_matrix - matrix[np.ix_(order, order)]).max() <= 1e-12
    )  # degrees summed in another order
    _, u = laplacian_eigenbasis(edge_index, nodes + 2, k=4, pad=True, edge_weight=weight)
    x = np.random.default_rng(seed + 2).standard_normal((nodes + 2, 3)).astype(np.float32)
    session, module = relabelling_model()
    (y,) = session.run({"x": x, "eigenbasis": u}).values()
    (y_permuted,) = session.run({"x": x[order], "eigenbasis": u[order]}).values()
    with torch.no_grad():
        y_torch = module(torch.from_numpy(x[order]), torch.from_numpy(u[order])).numpy()
    assert max_relative_error(y[order], y_permuted) <= TOLERANCE
    assert max_relative_error(y[order], y_torch) <= TOLERANCE


@functools.cache
def relabelling_model() -> tuple[Session, torch.nn.Module]:
    text = """
        dlc: 1
        name: relabel
        inputs:
          x: {shape: [V, 3]}
          eigenbasis: {shape: [V, 4]}
        layers:
          - spectral_conv: 5
            in: [x, eigenbasis]
          - relu
          - spectral_conv: 2
            in: [relu_0, eigenbasis]
        """
    model = dlc.compile(load_spec("relabel.yaml", text=textwrap.dedent(text)), seed=3)
    return Session(model.onnx_model(), "cpu"), model.torch_module()


# -- the eigenbasis helper ---------------------------------------------------------------------


@pytest.mark.parametrize("normalization", ["sym", None])
@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "unweighted"])
def test_the_laplacian_is_torch_geometrics(normalization: str | None, weighted: bool) -> None:
    edge_index, weight = random_graph(25, 50, seed=5)
    weights = weight if weighted else None
    ours = laplacian(edge_index, 25, edge_weight=weights, normalization=normalization)
    index, values = get_laplacian(
        torch.from_numpy(edge_index),
        torch.from_numpy(weight) if weighted else None,
        normalization=normalization,
        num_nodes=25,
        dtype=torch.float64,
    )
    theirs = to_dense_adj(index, edge_attr=values, max_num_nodes=25)[0].numpy()
    assert np.abs(ours - theirs).max() <= 1e-12
    assert ours[23, 23] == (1.0 if normalization == "sym" else 0.0)  # an isolated node


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalization", ["sym", None])
def test_the_eigenbasis_diagonalizes_the_laplacian(dtype: type, normalization: str | None) -> None:
    edge_index, weight = random_graph(40, 90, seed=6)
    matrix = laplacian(edge_index, 40, edge_weight=weight, normalization=normalization)
    values, u = laplacian_eigenbasis(
        edge_index, 40, edge_weight=weight, normalization=normalization, dtype=dtype
    )
    assert u.dtype == dtype and u.shape == (40, 40) and values.shape == (40,)
    basis = u.astype(np.float64)
    scale = max(1.0, float(np.abs(values).max()))
    assert np.abs(basis.T @ basis - np.eye(40)).max() <= TOLERANCE
    assert np.abs(basis.T @ matrix @ basis - np.diag(values.astype(np.float64))).max() <= TOLERANCE * scale
    assert np.all(np.diff(values.astype(np.float64)) >= -TOLERANCE)  # ascending: low frequencies first
    assert abs(values[0]) <= TOLERANCE  # a Laplacian's lowest eigenvalue is 0
    if normalization == "sym":
        assert values.max() <= 2 + TOLERANCE


def test_k_keeps_the_lowest_frequencies_and_pad_fills_missing_ones() -> None:
    edge_index, _ = random_graph(10, 15, seed=7)
    all_values, all_vectors = laplacian_eigenbasis(edge_index, 10, dtype=np.float64)
    values, vectors = laplacian_eigenbasis(edge_index, 10, k=4, dtype=np.float64)
    assert np.array_equal(values, all_values[:4]) and np.array_equal(vectors, all_vectors[:, :4])
    values, vectors = laplacian_eigenbasis(edge_index, 10, k=13, pad=True, dtype=np.float64)
    assert vectors.shape == (10, 13) and not vectors[:, 10:].any() and np.isnan(values[10:]).all()
    magnitude = np.abs(vectors[:, :10])
    first_largest = (magnitude >= magnitude.max(axis=0) * (1 - 1e-6)).argmax(axis=0)
    assert (vectors[first_largest, np.arange(10)] > 0).all()  # signs fixed: reproducible


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: adjacency(np.zeros((3, 4), np.int64)),
            "edge_index must be [2, E] (sources, targets), got shape [3, 4]",
        ),
        (lambda: adjacency(np.zeros((2, 4))), "edge_index must hold integers (int64), got float64"),
        (lambda: adjacency(np.array([[0, 5], [5, 0]]), 4), "edge 0 (0 -> 5) names a node outside [0, 4)"),
        (lambda: adjacency(np.array([[0], [1]]), edge_weight=np.ones(2)), "edge_weight must be [E] = [1]"),
        (
            lambda: adjacency(np.array([[0], [1]])),
            "the graph is directed: edge 0 -> 1 has weight 1, its reverse 1 -> 0 0",
        ),
        (
            lambda: laplacian_eigenbasis(np.array([[0, 1], [1, 0]]), k=3),
            "k = 3 eigenvectors, but the graph has 2",
        ),
        (
            lambda: laplacian(np.array([[0, 1], [1, 0]]), normalization="rw"),
            "normalization must be 'sym' or None",
        ),
        (lambda: adjacency(np.array([[0, 1], [1, 0]]), 30_000), "30,000 nodes: the dense eigendecomposition"),
    ],
    ids=[
        "not-2xE",
        "float-indices",
        "out-of-range",
        "weight-length",
        "directed",
        "k-too-large",
        "normalization",
        "too-large",
    ],
)
def test_bad_graphs_raise_value_errors_that_name_the_problem(call, message: str) -> None:
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def test_symmetrize_makes_a_directed_graph_undirected() -> None:
    matrix = adjacency(np.array([[0, 1], [1, 2]]), symmetrize=True)
    assert np.array_equal(matrix, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])


# -- the zoo spec ---------------------------------------------------------------------------------


def test_spectral_gcn_has_the_count_its_comment_derives() -> None:
    summary = dlc.compile(SPECS / "geometric/spectral_gcn.yaml", opt_level=0).summary({"V": 2708})
    assert (summary.params, summary.macs) == (26_007, 78_337_024)


def test_one_spectral_gcn_file_runs_graphs_of_three_sizes(tmp_path: Path) -> None:
    """k = 16 eigenvectors; the 10-node graph has fewer, so its basis is padded."""
    model = dlc.compile(SPECS / "geometric/spectral_gcn.yaml", overrides={"features": 8, "k": 16})
    model.save(tmp_path / "spectral.onnx")
    session = Session(tmp_path / "spectral.onnx", "cpu")
    module = model.torch_module()
    for nodes in (10, 50, 300):
        edge_index, _ = random_graph(nodes, 2 * nodes, seed=nodes)
        _, u = laplacian_eigenbasis(edge_index, nodes, k=16, pad=True)
        x = np.random.default_rng(nodes).standard_normal((nodes, 8)).astype(np.float32)
        (logits,) = session.run({"x": x, "eigenbasis": u}).values()
        with torch.no_grad():
            expected = module(torch.from_numpy(x), torch.from_numpy(u)).numpy()
        assert logits.shape == (nodes, 7)
        assert max_relative_error(expected, logits) <= TOLERANCE
