"""DDIM sampling with the DDPM CIFAR-10 U-Net (35.7M parameters, 32x32): the whole sampler
compiled by dlc into one ONNX file (the U-Net inside an ONNX Loop) against

- diffusers' DDIMPipeline loop in torch eager (the same U-Net weights), and
- the dlc U-Net's own ONNX Runtime session called step by step from Python (the same
  update in numpy): the cost of running the loop inside the graph.

Each round times every method once per batch size, alternating, and the figures are the
medians over rounds: ratios from one run on this machine. The per-step work is the same
at every step, so fewer steps than 50 (`--steps`, default 10 on the shared machine) give
the same ratios in less time.

    python benchmarks/generative.py [--steps 10] [--batches 1 8] [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "specs" / "generative" / "ddpm_cifar10.yaml"
sys.path.insert(0, str(REPO))


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()

    import diffusers
    import torch

    import dlc
    from dlc.runtime import Session
    from tests.plugins.generative.ddpm_reference import FULL, diffusers_unet, save_state_dict

    unet = diffusers_unet(FULL, seed=0)
    pipeline = diffusers.DDIMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler(num_train_timesteps=1000))
    pipeline.set_progress_bar_config(disable=True)
    with tempfile.TemporaryDirectory() as directory:
        weights = save_state_dict(unet, Path(directory) / "unet.safetensors")
        start = time.perf_counter()
        sampler = dlc.compile(SPEC, weights=weights, sampling={"sampler": "ddim", "steps": args.steps})
        looped = Session(sampler.onnx_model(), "cpu")
        compile_seconds = time.perf_counter() - start
        network = Session(dlc.compile(SPEC, weights=weights).onnx_model(), "cpu")
    plan = sampler.sampler.plan

    def python_loop(x: np.ndarray) -> np.ndarray:
        """The same DDIM update, the U-Net session called once per step."""
        for i, t in enumerate(plan.timesteps):
            timestep = np.full((x.shape[0],), t, np.float32)
            eps = network.run({"sample": x, "timestep": timestep})["conv_out"]
            x0 = np.clip((x - plan.sqrt_one_minus_abar[i] * eps) / plan.sqrt_abar[i], -1, 1)
            x = plan.x0_coefficient[i] * x0 + plan.eps_coefficient[i] * eps
        return x

    rows = []
    for batch in args.batches:
        x_T = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        in_graph = looped.run({"x_T": x_T})["x_0"]
        difference = float(np.abs(in_graph - python_loop(x_T)).max())
        times: dict[str, list[float]] = {"loop": [], "python": [], "diffusers": []}
        for _ in range(args.rounds):
            times["loop"].append(timed(lambda: looped.run({"x_T": x_T})))  # noqa: B023
            times["python"].append(timed(lambda: python_loop(x_T)))  # noqa: B023
            generator = torch.Generator().manual_seed(0)
            options = {"num_inference_steps": args.steps, "generator": generator, "output_type": "np"}
            times["diffusers"].append(timed(lambda: pipeline(batch_size=batch, **options)))  # noqa: B023
        median = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "batch": batch,
            "steps": args.steps,
            "onnx_loop_s": median["loop"],
            "python_steps_s": median["python"],
            "diffusers_s": median["diffusers"],
            "speedup_vs_diffusers": median["diffusers"] / median["loop"],
            "python_steps_over_loop": median["python"] / median["loop"],
            "max_abs_difference_loop_vs_python": difference,
        }
        rows.append(row)
        print(
            f"batch {batch}, DDIM-{args.steps}: one-file ONNX sampler {median['loop']:.2f} s, "
            f"diffusers DDIMPipeline (torch eager) {median['diffusers']:.2f} s "
            f"({row['speedup_vs_diffusers']:.2f}x); U-Net session stepped from Python "
            f"{median['python']:.2f} s (loop in graph {row['python_steps_over_loop']:.2f}x); "
            f"|loop - stepped| <= {difference:.1e}",
            flush=True,
        )
    print(f"compile + session start of the sampler: {compile_seconds:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "compile_seconds": compile_seconds}, indent=2))


if __name__ == "__main__":
    main()
