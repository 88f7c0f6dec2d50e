"""Graph helpers in numpy for the geometric family's inputs: the graph Laplacian and its
eigenbasis U, the input of `spectral_conv` (``from dlc.geometric import laplacian_eigenbasis``).

Graphs come as PyTorch Geometric does: ``edge_index`` [2, E] integers, row 0 the source j
and row 1 the target i of each edge j -> i, optional ``edge_weight`` [E]. The adjacency A
has ``A[i, j]`` = the summed weight of the edges j -> i (duplicates add up); self-loops are
dropped, as PyG's ``get_laplacian`` drops them. Spectral methods need an undirected graph
(a symmetric A, so that L has an orthonormal eigenbasis): list both directions of every
edge, as PyG's datasets do, or pass ``symmetrize=True`` (A becomes max(A, A^T)).

Normalizations (the course's, and PyG's ``get_laplacian`` names):

- ``"sym"``: ``L = I - D^-1/2 A D^-1/2`` with D the degrees (row sums of A); an isolated
  node's D^-1/2 is taken as 0, so its row of L is that of I. Eigenvalues lie in [0, 2].
- ``None``: the combinatorial ``L = D - A``.

The eigendecomposition is dense (``numpy.linalg.eigh``): O(V^3) time and V^2 memory, fine
for Cora-sized graphs (2,708 nodes: about a second), refused above `max_nodes`. For large
graphs use a polynomial filter instead (ChebNet), which needs no eigenvectors.
"""

from __future__ import annotations

import numpy.typing as npt

from dlc.lazy_imports import numpy as np

MAX_NODES = 20_000  # a dense [V, V] float64 Laplacian of 20,000 nodes is 3.2 GB


def _num_nodes(edges: np.ndarray, num_nodes: int | None) -> int:
    if num_nodes is None:
        return int(edges.max()) + 1 if edges.size else 0
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int | np.integer) or num_nodes < 0:
        raise ValueError(f"num_nodes must be an int >= 0, got {num_nodes!r}")
    return int(num_nodes)


def adjacency(
    edge_index: npt.ArrayLike,
    num_nodes: int | None = None,
    *,
    edge_weight: npt.ArrayLike | None = None,
    symmetrize: bool = False,
    max_nodes: int = MAX_NODES,
) -> np.ndarray:
    """The dense adjacency [V, V] (float64) of a graph in PyG's convention: ``A[i, j]`` is
    the summed weight of the edges j -> i, self-loops dropped. Raises ValueError, naming
    the shapes or the edge, for an `edge_index` that is not [2, E] integers in range, a
    weight that is not [E] and finite, or (unless `symmetrize`) a directed graph."""
    edges = np.asarray(edge_index)
    if edges.ndim != 2 or edges.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E] (sources, targets), got shape {list(edges.shape)}")
    if edges.size and not np.issubdtype(edges.dtype, np.integer):
        raise ValueError(f"edge_index must hold integers (int64), got {edges.dtype}")
    edges = edges.astype(np.int64, copy=False)
    count = _num_nodes(edges, num_nodes)
    if count > max_nodes:
        raise ValueError(
            f"{count:,} nodes: the dense eigendecomposition needs a [{count}, {count}] matrix, over "
            f"the limit of {max_nodes:,} nodes (raise max_nodes, or use a polynomial filter: cheb_conv)"
        )
    if edges.size and (edges.min() < 0 or edges.max() >= count):
        bad = int(np.flatnonzero((edges < 0).any(0) | (edges >= count).any(0))[0])
        raise ValueError(f"edge {bad} ({edges[0, bad]} -> {edges[1, bad]}) names a node outside [0, {count})")
    if edge_weight is None:
        weights = np.ones(edges.shape[1])
    else:
        weights = np.asarray(edge_weight, dtype=np.float64)
        if weights.shape != (edges.shape[1],):
            raise ValueError(
                f"edge_weight must be [E] = [{edges.shape[1]}], one per edge, got shape {list(weights.shape)}"
            )
        if not np.isfinite(weights).all():
            raise ValueError("edge_weight holds a value that is not finite")
    source, target = edges
    keep = source != target  # self-loops carry no coupling in a Laplacian
    matrix = np.zeros((count, count))
    np.add.at(matrix, (target[keep], source[keep]), weights[keep])
    if symmetrize:
        return np.maximum(matrix, matrix.T)
    heavier = (matrix > matrix.T) & ~np.isclose(matrix, matrix.T, rtol=1e-12, atol=0.0)
    if heavier.any():  # A[i, j] is the edge j -> i: name an edge that exists, then its reverse
        i, j = (int(v) for v in np.argwhere(heavier)[0])
        raise ValueError(
            f"the graph is directed: edge {j} -> {i} has weight {matrix[i, j]:g}, its reverse "
            f"{i} -> {j} {matrix[j, i]:g}; a Laplacian eigenbasis needs an undirected graph (list "
            "both directions, or pass symmetrize=True)"
        )
    return matrix


def laplacian(
    edge_index: npt.ArrayLike,
    num_nodes: int | None = None,
    *,
    edge_weight: npt.ArrayLike | None = None,
    normalization: str | None = "sym",
    symmetrize: bool = False,
    max_nodes: int = MAX_NODES,
) -> np.ndarray:
    """The dense graph Laplacian [V, V] (float64): ``"sym"``, I - D^-1/2 A D^-1/2, or
    ``None``, D - A (see the module docstring)."""
    if normalization not in ("sym", None):
        raise ValueError(f"normalization must be 'sym' or None, got {normalization!r}")
    matrix = adjacency(
        edge_index, num_nodes, edge_weight=edge_weight, symmetrize=symmetrize, max_nodes=max_nodes
    )
    degree = matrix.sum(axis=1)
    if normalization is None:
        return np.diag(degree) - matrix
    with np.errstate(divide="ignore"):
        scale = np.where(degree > 0, 1.0 / np.sqrt(degree), 0.0)  # isolated nodes: 0, as PyG
    return np.eye(len(degree)) - scale[:, None] * matrix * scale[None, :]


def _sign_entries(vectors: np.ndarray) -> np.ndarray:
    """Per column, the first row whose magnitude is within a relative 1e-6 of the largest."""
    magnitude = np.abs(vectors)
    return (magnitude >= magnitude.max(axis=0) * (1 - 1e-6)).argmax(axis=0)


def laplacian_eigenbasis(
    edge_index: npt.ArrayLike,
    num_nodes: int | None = None,
    *,
    k: int | None = None,
    edge_weight: npt.ArrayLike | None = None,
    normalization: str | None = "sym",
    symmetrize: bool = False,
    pad: bool = False,
    dtype: npt.DTypeLike = np.float32,
    max_nodes: int = MAX_NODES,
) -> tuple[np.ndarray, np.ndarray]:
    """The eigenvalues [k] (ascending: the lowest graph frequencies first) and the
    orthonormal eigenvectors U [V, k] of the graph Laplacian, so that ``U^T L U`` is
    ``diag(eigenvalues)``: U is `spectral_conv`'s eigenbasis input and ``U^T x`` the graph
    Fourier transform of node features x [V, F].

    `k` keeps the k lowest frequencies (default: all V). A model is compiled for one k; a
    graph with fewer than k nodes raises ValueError unless `pad`, which appends zero
    columns to U (frequencies the graph does not have, which a spectral filter then
    ignores) and NaN eigenvalues. Each eigenvector's sign is fixed so that its first entry
    of largest magnitude (within a relative 1e-6, so that rounding does not decide between
    entries such as +-1/sqrt(2)) is positive, so U is reproducible (within a repeated
    eigenvalue's eigenspace, any orthonormal basis is as valid)."""
    matrix = laplacian(
        edge_index,
        num_nodes,
        edge_weight=edge_weight,
        normalization=normalization,
        symmetrize=symmetrize,
        max_nodes=max_nodes,
    )
    count = len(matrix)
    wanted = count if k is None else k
    if isinstance(wanted, bool) or not isinstance(wanted, int | np.integer) or wanted < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if wanted > count and not pad:
        raise ValueError(
            f"k = {wanted} eigenvectors, but the graph has {count} nodes (pass pad=True for zero columns)"
        )
    values, vectors = np.linalg.eigh(matrix)
    kept = min(wanted, count)
    values, vectors = values[:kept], vectors[:, :kept]
    if kept:
        vectors = vectors * np.where(vectors[_sign_entries(vectors), np.arange(kept)] < 0, -1.0, 1.0)
    if wanted > kept:
        vectors = np.concatenate([vectors, np.zeros((count, wanted - kept))], axis=1)
        values = np.concatenate([values, np.full(wanted - kept, np.nan)])
    return values.astype(dtype), vectors.astype(dtype)


__all__ = ["MAX_NODES", "adjacency", "laplacian", "laplacian_eigenbasis"]
