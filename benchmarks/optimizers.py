"""Steps to tolerance of dlc's optimizers on ill-conditioned quadratics.

f(theta) = 1/2 (theta - theta*)^T H (theta - theta*) in 10 dimensions, H with eigenvalues
geometrically spaced in [mu, L] = [1/kappa, 1] and a random rotation (so no coordinate
decouples: the per-coordinate scaling of RMSProp and Adam meets the problem as a network's
loss would; `--axis-aligned` drops the rotation). A run counts the optimizer steps until
f(theta_t) - f* <= tolerance * (f(theta_0) - f*), theta_0 = 0, in float64, with dlc's
`build_optimizer` (the course's updates).

Step sizes:
- GD: eta = 1/L, the step of the course's rate f(x_k) - f* <= (1 - mu/L)^k (f(x_0) - f*).
- Heavy ball: Polyak's tuning for quadratics, eta = 4 / (sqrt(L) + sqrt(mu))^2,
  beta = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2.
- Nesterov: eta = 1/L, beta = (sqrt(kappa) - 1) / (sqrt(kappa) + 1).
- RMSProp (beta 0.9, eps 1e-8) and Adam (0.9, 0.999, 1e-8): no step size follows from L and
  mu, so the best of a grid (3 .. 1e-5, half decades) is reported, and their usual default
  1e-3 beside it. The grid runs as parameter groups of one optimizer: one run per cell.

    python benchmarks/optimizers.py [--tolerance 1e-6] [--max-steps 100000] [--axis-aligned]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch
from pydantic import TypeAdapter

from dlc.training.optim import OptimizerSpec, build_optimizer

CONDITION_NUMBERS = (1, 100, 10_000)
DIMENSION = 10
GRID = (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
DEFAULT_ADAPTIVE_LR = 1e-3


def quadratic(condition_number: float, rotated: bool) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    eigenvalues = np.geomspace(1.0 / condition_number, 1.0, DIMENSION)
    rotation = np.linalg.qr(rng.normal(size=(DIMENSION, DIMENSION)))[0] if rotated else np.eye(DIMENSION)
    hessian = rotation @ np.diag(eigenvalues) @ rotation.T
    return torch.tensor(hessian), torch.tensor(rng.normal(size=DIMENSION))


def methods(condition_number: float) -> dict[str, tuple[dict, list[float]]]:
    """Each method's spec and the step sizes it runs with (L = 1, mu = 1/kappa)."""
    root = math.sqrt(condition_number)
    heavy_ball_beta = ((root - 1) / (root + 1)) ** 2
    heavy_ball_lr = 4 / (1 + 1 / root) ** 2
    return {
        "GD": ({"name": "sgd"}, [1.0]),
        "momentum": ({"name": "momentum", "momentum": heavy_ball_beta}, [heavy_ball_lr]),
        "Nesterov": ({"name": "nesterov", "momentum": (root - 1) / (root + 1)}, [1.0]),
        "RMSProp": ({"name": "rmsprop", "beta": 0.9, "eps": 1e-8}, list(GRID)),
        "Adam": ({"name": "adam", "betas": [0.9, 0.999], "eps": 1e-8}, list(GRID)),
    }


def steps_to_tolerance(
    spec: dict,
    step_sizes: list[float],
    hessian: torch.Tensor,
    optimum: torch.Tensor,
    tolerance: float,
    limit: int,
) -> list[int | None]:
    """For each step size, the step t from which f - f* stays within tolerance for the next
    max(1,000, t/2) steps (None: not within `limit`, or diverged). Oscillating
    methods (RMSProp and Adam at a constant step) can touch the tolerance and leave it again:
    a first touch would flatter them. The run stops once the best step size and, on a grid,
    the default have settled."""
    copies = [torch.nn.Parameter(torch.zeros_like(optimum)) for _ in step_sizes]
    groups = [{"params": [theta], "lr": lr} for theta, lr in zip(copies, step_sizes, strict=True)]
    optimizer = build_optimizer(TypeAdapter(OptimizerSpec).validate_python(spec), groups)
    initial = 0.5 * float(optimum @ hessian @ optimum)
    below_since: list[int | None] = [None] * len(copies)
    diverged = [False] * len(copies)
    reported = [step_sizes.index(DEFAULT_ADAPTIVE_LR)] if len(step_sizes) > 1 else [0]
    for step in range(limit + 1):
        optimizer.zero_grad()
        offsets = torch.stack(copies) - optimum  # one row per step size
        gaps = 0.5 * ((offsets @ hessian) * offsets).sum(dim=1)
        for index, value in enumerate(gaps.tolist()):
            if diverged[index] or not math.isfinite(value) or value > 1e12 * initial:
                diverged[index], below_since[index] = True, None
                optimizer.param_groups[index]["lr"] = 0.0  # park it where it cannot overflow
                with torch.no_grad():
                    copies[index].zero_()
            elif value > tolerance * initial:
                below_since[index] = None
            elif below_since[index] is None:
                below_since[index] = step
        settled = [s is not None and step - s >= max(1000, s // 2) for s in below_since]
        # The first step size to settle is the best; after it only the default's count is missing.
        if any(settled) and all(settled[index] or diverged[index] for index in reported):
            break
        gaps.sum().backward()  # the copies are independent: each gets its own gradient
        optimizer.step()
    return [s if done else None for s, done in zip(below_since, settled, strict=True)]


def cell(step_sizes: list[float], found: list[int | None], limit: int) -> str:
    reached = [(steps, lr) for steps, lr in zip(found, step_sizes, strict=True) if steps is not None]
    if not reached:
        return f"> {limit:,}"
    steps, lr = min(reached)
    text = f"{steps:,}"
    if len(step_sizes) == 1:
        return text
    if lr == DEFAULT_ADAPTIVE_LR:
        return text + f" (lr {lr:g})"
    default = found[step_sizes.index(DEFAULT_ADAPTIVE_LR)]
    default_text = f"{default:,}" if default is not None else f"> {limit:,}"
    return text + f" (lr {lr:g}; lr {DEFAULT_ADAPTIVE_LR:g}: {default_text})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--axis-aligned", action="store_true", help="H diagonal instead of rotated")
    args = parser.parse_args()
    torch.set_num_threads(1)  # 10-dimensional tensors: threads only add overhead
    rows: dict[str, list[str]] = {}
    started = time.perf_counter()
    for condition_number in CONDITION_NUMBERS:
        hessian, optimum = quadratic(condition_number, rotated=not args.axis_aligned)
        for name, (spec, step_sizes) in methods(condition_number).items():
            found = steps_to_tolerance(spec, step_sizes, hessian, optimum, args.tolerance, args.max_steps)
            rows.setdefault(name, []).append(cell(step_sizes, found, args.max_steps))
    layout = "axis-aligned" if args.axis_aligned else "rotated"
    print(
        f"steps until f - f* <= {args.tolerance:g} (f(theta_0) - f*), {DIMENSION}-d {layout} quadratic, "
        f"L = 1, mu = 1/kappa ({time.perf_counter() - started:.0f} s)\n"
    )
    print("| method | " + " | ".join(f"kappa = {k:,}" for k in CONDITION_NUMBERS) + " |")
    print("|---|" + "---|" * len(CONDITION_NUMBERS))
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
