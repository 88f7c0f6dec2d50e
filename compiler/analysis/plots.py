"""PNG pictures of analyses, drawn with matplotlib's Agg backend (no display needed): a
kernel's heat map, the relative kernel change over training, and adversarial examples
beside their originals and perturbations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from dlc.lazy_imports import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def kernel_heat_map(kernel: np.ndarray, path: Path, title: str) -> Path:
    """A [N1, N2] kernel as a heat map (sample index against sample index)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    image = axes.imshow(kernel, cmap="viridis", interpolation="nearest")
    axes.set_title(title)
    axes.set_xlabel("sample j")
    axes.set_ylabel("sample i")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def kernel_change_curve(steps: Sequence[int], change: Sequence[float], path: Path, title: str) -> Path:
    """`||K_t - K_0|| / ||K_0||` against the training step."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 3.5))
    axes.plot(steps, change, marker=".")
    axes.set_xlabel("step t")
    axes.set_ylabel("||K_t - K_0|| / ||K_0||")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def as_image(sample: np.ndarray) -> np.ndarray:
    """A sample as a 2-D (or H x W x 3) picture: [C, H, W] images as they are (channels
    last), vectors of a square length as squares, anything else as one strip."""
    if sample.ndim == 3 and sample.shape[0] in (1, 3):
        return sample[0] if sample.shape[0] == 1 else np.transpose(sample, (1, 2, 0))
    if sample.ndim == 2:
        return sample
    flat = sample.reshape(-1)
    side = math.isqrt(flat.size)
    return flat.reshape(side, side) if side * side == flat.size else flat.reshape(1, -1)


def adversarial_grid(
    originals: np.ndarray,
    adversarial: np.ndarray,
    labels: Sequence[int],
    clean_predictions: Sequence[int],
    adversarial_predictions: Sequence[int],
    path: Path,
    title: str,
    columns: int = 8,
) -> Path:
    """Three rows: originals, perturbations (scaled to their largest magnitude, grey is zero)
    and adversarial images, each titled with its label and predictions."""
    plt = _pyplot()
    count = min(columns, len(originals))
    figure, axes = plt.subplots(3, count, figsize=(1.6 * count, 5.2), squeeze=False)
    low = float(min(originals[:count].min(), adversarial[:count].min()))
    high = float(max(originals[:count].max(), adversarial[:count].max()))
    for k in range(count):
        perturbation = adversarial[k].astype(np.float64) - originals[k]
        scale = float(np.abs(perturbation).max()) or 1.0
        rows = [
            (as_image(originals[k]), f"y={labels[k]} pred {clean_predictions[k]}", low, high, "gray"),
            (as_image(perturbation), f"|d|max {scale:.3g}", -scale, scale, "RdBu"),
            (as_image(adversarial[k]), f"pred {adversarial_predictions[k]}", low, high, "gray"),
        ]
        for row, (picture, caption, vmin, vmax, cmap) in enumerate(rows):
            axes[row][k].imshow(picture, cmap=cmap if picture.ndim == 2 else None, vmin=vmin, vmax=vmax)
            axes[row][k].set_title(caption, fontsize=7)
            axes[row][k].axis("off")
    for row, name in enumerate(("original", "perturbation", "adversarial")):
        axes[row][0].text(
            -0.15, 0.5, name, transform=axes[row][0].transAxes, rotation=90, va="center", ha="right"
        )
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
