"""Bayesian linear regression with Langevin dynamics (`optimizer: sgld`), against the exact posterior.

Data (bayesian_linear_regression.npz beside this file; `--write-data` rewrites it): y = 2x - 1
+ noise (std 0.5), x uniform in [0, 2], 50 points; prior w ~ N(0, I). The posterior over
(slope, intercept) is Gaussian with precision A = X^T X / sigma^2 + I and mean
A^{-1} X^T y / sigma^2.

By default one Langevin chain runs here over a `torch.nn.Linear(1, 1)`, the loss a mean
Gaussian negative log-likelihood (so E = N * loss + |w|^2 / 2). With `--run-dir` the samples
come from `dlc train examples/train/bayesian_linear_regression.yaml` instead. Either way it
prints the sample mean and covariance beside the analytic ones.

    python examples/train/bayesian_linear_regression.py [--steps 40000] [--plot posterior.png]
    dlc train examples/train/bayesian_linear_regression.yaml
    python examples/train/bayesian_linear_regression.py --run-dir runs/bayesian_linear_regression
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from pydantic import TypeAdapter

from dlc.training.optim import (
    OptimizerSpec,
    PosteriorSamples,
    build_optimizer,
    load_posterior_samples,
    predict_posterior_mean,
)

NOISE_STD = 0.5
PRIOR_PRECISION = 1.0
DATA = Path(__file__).with_suffix(".npz")


def write_data(path: Path, points: int = 50) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 2, size=points)
    y = 2 * x - 1 + NOISE_STD * rng.normal(size=points)
    np.savez(path, x=x.reshape(-1, 1).astype(np.float32), target=y.reshape(-1, 1).astype(np.float32))


def read_data(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(path) as arrays:
        x, y = arrays["x"], arrays["target"]
    return torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)


def analytic_posterior(x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (slope, intercept)."""
    features = np.hstack([x.numpy(), np.ones_like(x.numpy())])
    precision = features.T @ features / NOISE_STD**2 + PRIOR_PRECISION * np.eye(2)
    covariance = np.linalg.inv(precision)
    return covariance @ features.T @ y.numpy().ravel() / NOISE_STD**2, covariance


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--run-dir", type=Path, help="compare the posterior samples of a `dlc train` run")
    parser.add_argument("--write-data", action="store_true", help=f"rewrite {DATA.name} and stop")
    parser.add_argument("--plot", help="write a PNG of the samples and the analytic 1- and 2-sigma ellipses")
    args = parser.parse_args()
    if args.write_data:
        write_data(DATA)
        return 0
    torch.set_num_threads(1)
    x, y = read_data(DATA)
    if args.run_dir:
        weight_sets = load_posterior_samples(args.run_dir / "posterior.safetensors")
        print(f"{len(weight_sets)} samples from {args.run_dir}")
    else:
        weight_sets = run_langevin(x, y, args.steps)
    drawn = np.array([[weight_of(s, "weight"), weight_of(s, "bias")] for s in weight_sets])

    mean, covariance = analytic_posterior(x, y)
    sample_covariance = np.cov(drawn.T)
    print(f"{'':24}{'Langevin':>22}{'analytic':>22}")
    print(f"{'mean (slope, intercept)':24}{fmt(drawn.mean(axis=0)):>22}{fmt(mean):>22}")
    for row, name in enumerate(("covariance row slope", "covariance row intercept")):
        print(f"{name:24}{fmt(sample_covariance[row]):>22}{fmt(covariance[row]):>22}")
    probe = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    model = torch.nn.Linear(1, 1).double()
    samples = [{"weight": torch.tensor([[w]]), "bias": torch.tensor([b])} for w, b in drawn]
    predictive = predict_posterior_mean(model, samples, probe).ravel().tolist()
    exact = (mean[0] * probe.ravel() + mean[1]).tolist()
    print("posterior predictive mean at x = 0, 1, 2:", fmt(predictive), "analytic:", fmt(exact))
    if args.plot:
        plot(drawn, mean, covariance, args.plot)
        print(f"wrote {args.plot}")
    return 0


def run_langevin(x: torch.Tensor, y: torch.Tensor, steps: int) -> list[dict[str, torch.Tensor]]:
    """One chain over a Linear(1, 1); the loss is the Gaussian NLL per point, up to a constant."""
    spec = TypeAdapter(OptimizerSpec).validate_python(
        {"name": "sgld", "lr": 5e-3, "friction": 10.0, "prior_precision": PRIOR_PRECISION, "burn_in": 1000}
    )
    model = torch.nn.Linear(1, 1).double()
    optimizer = build_optimizer(spec, model.parameters(), dataset_size=len(x), seed=0)
    posterior = PosteriorSamples(model, spec)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2 / (2 * NOISE_STD**2)).mean()
        loss.backward()
        optimizer.step()
        posterior.update(model)
    print(f"{len(posterior)} samples (burn-in {spec.burn_in}, thinning {spec.thinning}, {steps} steps)")
    return posterior.samples


def weight_of(sample: dict[str, torch.Tensor], kind: str) -> float:
    """The one `weight` or `bias` of a sample, whatever its layer is called (`line.weight`)."""
    (value,) = [v for name, v in sample.items() if name == kind or name.endswith("." + kind)]
    return float(value.reshape(()))


def fmt(values) -> str:
    return "(" + ", ".join(f"{v:+.4f}" for v in values) + ")"


def plot(drawn: np.ndarray, mean: np.ndarray, covariance: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4))
    axes.scatter(drawn[:, 0], drawn[:, 1], s=2, alpha=0.3, label="Langevin samples")
    angles = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(angles), np.sin(angles)])
    root = np.linalg.cholesky(covariance)
    for radius in (1, 2):
        ellipse = mean[:, None] + radius * root @ circle
        axes.plot(ellipse[0], ellipse[1], color="black", linewidth=1)
    axes.set_xlabel("slope")
    axes.set_ylabel("intercept")
    axes.set_title("posterior: samples vs analytic 1- and 2-sigma")
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
