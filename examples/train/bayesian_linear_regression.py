"""Bayesian linear regression with Langevin dynamics (`optimizer: sgld`), against the exact posterior.

Data: y = 2x - 1 + noise (std 0.5), x uniform in [0, 2], 50 points; prior w ~ N(0, I). The
posterior over (slope, intercept) is Gaussian with precision A = X^T X / sigma^2 + I and mean
A^{-1} X^T y / sigma^2. One Langevin chain over a `torch.nn.Linear(1, 1)`, the loss a mean
Gaussian negative log-likelihood (so E = N * loss + |w|^2 / 2), prints the sample mean and
covariance beside the analytic ones, and the posterior predictive mean at a few x.

    python examples/train/bayesian_linear_regression.py [--steps 40000] [--plot posterior.png]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from pydantic import TypeAdapter

from dlc.training.optim import OptimizerSpec, PosteriorSamples, build_optimizer, predict_posterior_mean

NOISE_STD = 0.5
PRIOR_PRECISION = 1.0


def make_data(points: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 2, size=points)
    y = 2 * x - 1 + NOISE_STD * rng.normal(size=points)
    return torch.tensor(x).reshape(-1, 1), torch.tensor(y).reshape(-1, 1)


def analytic_posterior(x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (slope, intercept)."""
    features = np.hstack([x.numpy(), np.ones_like(x.numpy())])
    precision = features.T @ features / NOISE_STD**2 + PRIOR_PRECISION * np.eye(2)
    covariance = np.linalg.inv(precision)
    return covariance @ features.T @ y.numpy().ravel() / NOISE_STD**2, covariance


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--plot", help="write a PNG of the samples and the analytic 1- and 2-sigma ellipses")
    args = parser.parse_args()
    torch.set_num_threads(1)

    x, y = make_data()
    spec = TypeAdapter(OptimizerSpec).validate_python(
        {"name": "sgld", "lr": 5e-3, "friction": 10.0, "prior_precision": PRIOR_PRECISION, "burn_in": 1000}
    )
    model = torch.nn.Linear(1, 1).double()
    optimizer = build_optimizer(spec, model.parameters(), dataset_size=len(x), seed=0)
    posterior = PosteriorSamples(model, spec)
    for _ in range(args.steps):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2 / (2 * NOISE_STD**2)).mean()  # Gaussian NLL per point, up to a constant
        loss.backward()
        optimizer.step()
        posterior.update(model)

    drawn = np.array([[s["weight"].item(), s["bias"].item()] for s in posterior.samples])
    mean, covariance = analytic_posterior(x, y)
    sample_covariance = np.cov(drawn.T)
    print(f"{len(drawn)} samples (burn-in {spec.burn_in}, thinning {spec.thinning}, {args.steps} steps)")
    print(f"{'':24}{'Langevin':>22}{'analytic':>22}")
    print(f"{'mean (slope, intercept)':24}{fmt(drawn.mean(axis=0)):>22}{fmt(mean):>22}")
    for row, name in enumerate(("covariance row slope", "covariance row intercept")):
        print(f"{name:24}{fmt(sample_covariance[row]):>22}{fmt(covariance[row]):>22}")
    probe = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    predictive = predict_posterior_mean(model, posterior, probe).ravel().tolist()
    exact = (mean[0] * probe.ravel() + mean[1]).tolist()
    print("posterior predictive mean at x = 0, 1, 2:", fmt(predictive), "analytic:", fmt(exact))
    if args.plot:
        plot(drawn, mean, covariance, args.plot)
        print(f"wrote {args.plot}")
    return 0


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
