"""Metrics of a training run: averaged over batches, written one JSON object per line to
`metrics.jsonl`, and drawn as a loss curve (`loss.png`, matplotlib's Agg backend: no
display needed)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


class MetricAverage:
    """Example-weighted means of per-batch metrics."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._count = 0

    def add(self, metrics: Mapping[str, float], examples: int) -> None:
        for name, value in metrics.items():
            self._sums[name] = self._sums.get(name, 0.0) + value * examples
        self._count += examples

    @property
    def count(self) -> int:
        return self._count

    def means(self) -> dict[str, float]:
        return {name: total / self._count for name, total in self._sums.items()} if self._count else {}


class MetricsLog:
    """Appends lines to `metrics.jsonl`; `truncate_after(step)` drops lines a resumed run
    will write again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        kept = [line for line in self.read() if line.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(line) + "\n" for line in kept), encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [
            json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]


def plot_loss_curve(records: Iterable[Mapping[str, Any]], path: Path, title: str) -> Path | None:
    """Training and validation loss against steps; None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        if "loss" in record and record.get("split") in ("train", "validation"):
            steps, values = series.setdefault(record["split"], ([], []))
            steps.append(record["step"])
            values.append(record["loss"])
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(6, 4))
    for split, (steps, values) in series.items():
        axes.plot(steps, values, label=split, marker="o" if split == "validation" else None)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_sample_grid(images: Any, path: Path, title: str) -> Path:
    """Images [K, C, H, W] (C = 1 or 3, values in [-1, 1] or [0, 1]) in a square grid; points
    [K, D] as a scatter plot of their first two coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2:  # points, not images (a generator of 2-d data): a scatter plot
        figure, axis = plt.subplots(figsize=(5, 5))
        axis.scatter(images[:, 0], images[:, 1 if images.shape[1] > 1 else 0], s=6)
        axis.set_title(title)
        figure.savefig(path, dpi=80)
        plt.close(figure)
        return path
    if images.min() < 0:
        images = (images + 1) / 2  # tanh outputs
    images = np.clip(images, 0, 1)
    side = int(np.ceil(np.sqrt(len(images))))
    figure, axes = plt.subplots(side, side, figsize=(side, side))
    for index, axis in enumerate(np.atleast_1d(axes).ravel()):
        axis.axis("off")
        if index < len(images):
            image = images[index]
            axis.imshow(
                image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=1
            )
    figure.suptitle(title)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
