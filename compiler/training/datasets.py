"""Datasets `dlc train` can name (`data: {dataset: digits}`): the packaged ones, which
ship inside installed packages and need no download, and those plugins add through the
`dlc_datasets` hook.

A dataset is a `DatasetInfo` record whose `load(options, seed)` returns `DatasetArrays`:
named numpy arrays with one example per row, plus which arrays are the features and the
target. A graph dataset (`graph=True`) is one example whose nodes are split instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlc.lazy_imports import numpy as np


@dataclass(frozen=True)
class DatasetArrays:
    """The arrays of a dataset by name; `features` and `target` name the default input and
    target arrays. For a graph (`graph=True`) rows of `node_arrays` are nodes, the split is
    over nodes, and the other arrays (`adjacency`) are shared by every split."""

    arrays: dict[str, np.ndarray]
    features: str
    target: str
    graph: bool = False
    node_arrays: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset by name: `load(options, seed)` builds its arrays; `options` are the
    `data.options` of the training section, checked by the loader (unknown ones are errors)."""

    name: str
    description: str
    load: Callable[[Mapping[str, Any], int], DatasetArrays]
    options: tuple[str, ...] = ()
    plugin: str = field(default="", compare=False)


def _digits(options: Mapping[str, Any], seed: int) -> DatasetArrays:
    from sklearn.datasets import load_digits

    digits = load_digits()
    low, high = (float(v) for v in options.get("range", (0.0, 1.0)))
    images = (digits.images / 16.0 * (high - low) + low).astype(np.float32)  # pixels 0..16 -> low..high
    return DatasetArrays(
        {
            "image": images[:, None, :, :],
            "pixels": images.reshape(len(images), 64),
            "label": digits.target.astype(np.int64),
        },
        features="image",
        target="label",
    )


def _moons(options: Mapping[str, Any], seed: int) -> DatasetArrays:
    from sklearn.datasets import make_moons

    x, y = make_moons(
        n_samples=int(options.get("n_samples", 1000)),
        noise=float(options.get("noise", 0.1)),
        random_state=seed,
    )
    return DatasetArrays({"x": x.astype(np.float32), "label": y.astype(np.int64)}, "x", "label")


def _blobs(options: Mapping[str, Any], seed: int) -> DatasetArrays:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=int(options.get("n_samples", 1000)),
        centers=int(options.get("centers", 3)),
        n_features=int(options.get("n_features", 2)),
        cluster_std=float(options.get("cluster_std", 1.0)),
        random_state=seed,
    )
    return DatasetArrays({"x": x.astype(np.float32), "label": y.astype(np.int64)}, "x", "label")


def _stochastic_block_model(options: Mapping[str, Any], seed: int) -> DatasetArrays:
    """A stochastic block model graph: `blocks` communities of `nodes_per_block` nodes, an
    edge inside a community with probability `p_in`, across with `p_out`; node features are
    noisy community means (`features` dims, noise `feature_noise`). Arrays: `x` [n, F],
    `adjacency` [n, n] = D^-1/2 (A + I) D^-1/2 (the GCN propagation matrix), `edge_index`
    [2, E] and `label` [n]."""
    rng = np.random.default_rng(seed)
    blocks = int(options.get("blocks", 3))
    per_block = int(options.get("nodes_per_block", 50))
    p_in, p_out = float(options.get("p_in", 0.1)), float(options.get("p_out", 0.01))
    dims = int(options.get("features", 16))
    noise = float(options.get("feature_noise", 2.0))
    labels = np.repeat(np.arange(blocks), per_block)
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    upper = np.triu(rng.random((n, n)) < np.where(same, p_in, p_out), k=1)
    adjacency = (upper | upper.T).astype(np.float32)
    with_loops = adjacency + np.eye(n, dtype=np.float32)
    scale = 1.0 / np.sqrt(with_loops.sum(axis=1))
    propagation = (with_loops * scale[:, None] * scale[None, :]).astype(np.float32)
    means = rng.normal(size=(blocks, dims))
    features = (means[labels] + noise * rng.normal(size=(n, dims))).astype(np.float32)
    return DatasetArrays(
        {
            "x": features,
            "adjacency": propagation,
            "edge_index": np.stack(np.nonzero(adjacency)).astype(np.int64),
            "label": labels.astype(np.int64),
        },
        features="x",
        target="label",
        graph=True,
        node_arrays=("x", "label"),
    )


PACKAGED_DATASETS = (
    DatasetInfo(
        "digits",
        "scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes); `range` of the pixels: [0, 1]",
        _digits,
        ("range",),
    ),
    DatasetInfo(
        "moons", "two interleaving half circles (scikit-learn make_moons)", _moons, ("n_samples", "noise")
    ),
    DatasetInfo(
        "blobs",
        "Gaussian blobs (scikit-learn make_blobs)",
        _blobs,
        ("n_samples", "centers", "n_features", "cluster_std"),
    ),
    DatasetInfo(
        "sbm",
        "a stochastic block model graph for node classification",
        _stochastic_block_model,
        ("blocks", "nodes_per_block", "p_in", "p_out", "features", "feature_noise"),
    ),
)
