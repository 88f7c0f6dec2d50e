"""Helpers shared by the training examples' scripts: compile a trained spec to ONNX through
the `dlc compile` command (as a user would), run it in ONNX Runtime, and draw sample grids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def dlc_compile(spec: Path, weights: Path, out: Path, *options: str) -> Path:
    """`dlc compile SPEC --weights WEIGHTS -o OUT [options]`; raises if it fails."""
    command = [sys.executable, "-m", "dlc", "compile", str(spec), "--weights", str(weights), "-o", str(out)]
    subprocess.run([*command, *options], check=True, capture_output=True, text=True)
    return out


def onnx_session(path: Path):
    """A single-threaded ONNX Runtime session (the examples' models are small)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def save_image_grid(images: np.ndarray, path: Path, title: str, columns: int = 8) -> None:
    """Images [n, H, W] in 0..1 as one grey grid PNG (small: nearest pixels, no smoothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count, height, width = images.shape
    rows = -(-count // columns)
    grid = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1), dtype=np.float32)
    for index, image in enumerate(np.clip(images, 0.0, 1.0)):
        top, left = 1 + (index // columns) * (height + 1), 1 + (index % columns) * (width + 1)
        grid[top : top + height, left : left + width] = image
    figure, axis = plt.subplots(figsize=(3.2, 3.4), dpi=100)
    axis.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    axis.set_title(title, fontsize=9)
    axis.axis("off")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
