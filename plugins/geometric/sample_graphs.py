"""Small random graphs with the awkward cases in them, for op samples and tests: isolated
nodes (no edge at all), self-loops already present, duplicate edges, edge weights."""

from __future__ import annotations

from dlc.lazy_imports import numpy as np


def sample_graph(
    seed: int, nodes: int, edges: int, features: int, isolated: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [V, F] float32, edge_index [2, E] int64, edge_weight [E] float32 in [0.5, 1.5)).

    The last `isolated` nodes have no edges; edge 0 is a self-loop and the last edge
    duplicates edge 1 (when E >= 3)."""
    rng = np.random.default_rng(seed)
    connected = max(nodes - isolated, 1)
    edge_index = rng.integers(0, connected, size=(2, edges)).astype(np.int64)
    if edges >= 3:
        edge_index[:, 0] = edge_index[0, 0]  # a self-loop
        edge_index[:, -1] = edge_index[:, 1]  # a duplicate edge
    x = rng.standard_normal((nodes, features)).astype(np.float32)
    weight = (rng.random(edges) + 0.5).astype(np.float32)
    return x, edge_index, weight
