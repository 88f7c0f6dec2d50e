"""The digits DDPM, after `dlc train`: compile the trained noise predictor into the ancestral
sampler of its `sampling:` section (1000 steps, one ONNX Loop), draw 64 images in ONNX Runtime
and save them as a grid PNG.

    dlc train examples/train/ddpm_digits.yaml --out runs/ddpm_digits
    python examples/train/ddpm_sample_grid.py runs/ddpm_digits

The sampler's inputs are x_T and each step's noise, both drawn here (seeded), so a run is
reproducible; its output x_0 (pixels in -1..1, as the data) is mapped to 0..1 for the picture.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from example_tools import dlc_compile, onnx_session, save_image_grid

HERE = Path(__file__).resolve().parent
SPEC = HERE / "ddpm_digits.yaml"
PIXELS = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run directory of `dlc train` (holds model.safetensors)")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000, help="sampling steps (of the 1000 trained)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=None, help="default: RUN/samples.png")
    args = parser.parse_args()

    onnx = args.run / "ddpm_sampler.onnx"
    sampler = onnx_session(
        dlc_compile(
            SPEC, args.run / "model.safetensors", onnx, "--sampler", "ddpm", "--steps", str(args.steps)
        )
    )
    rng = np.random.default_rng(args.seed)
    x_t = rng.standard_normal((args.count, PIXELS)).astype(np.float32)
    noise = rng.standard_normal((args.steps, args.count, PIXELS)).astype(np.float32)
    (x_0,) = sampler.run(["x_0"], {"x_T": x_t, "noise": noise})
    images = np.clip((x_0 + 1) / 2, 0, 1).reshape(-1, 8, 8)
    png = args.png or args.run / "samples.png"
    save_image_grid(images, png, f"DDPM samples ({args.steps} steps, ONNX Loop)")
    summary = {"samples": len(x_0), "pixel_mean": float(images.mean()), "png": str(png)}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
