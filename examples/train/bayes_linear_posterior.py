"""Bayesian linear regression by SGLD, after `dlc train`: the posterior samples the run kept
(posterior.safetensors) against the analytic Gaussian posterior of the same data.

    python examples/train/bayes_linear_posterior.py --write-data   # bayes_linear_data.npz (seeded)
    dlc train examples/train/bayes_linear_sgld.yaml --out runs/bayes_linear_sgld
    python examples/train/bayes_linear_posterior.py runs/bayes_linear_sgld

With noise std sigma and prior w ~ N(0, I / lambda), the posterior is N(m, A^-1) with
A = X^T X / sigma^2 + lambda I and m = A^-1 X^T y / sigma^2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "bayes_linear_data.npz"
NOISE_STD = 0.5  # sigma; the spec's temperature is 2 sigma^2
PRIOR_PRECISION = 1.0  # lambda; the spec's prior_precision is lambda T
WEIGHT = "regression.weight"


def write_data(points: int = 50, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2, size=points)
    features = np.stack([x, np.ones_like(x)], axis=1).astype(np.float32)
    targets = (2 * x - 1 + NOISE_STD * rng.normal(size=points)).astype(np.float32)[:, None]
    np.savez(DATA, x=features, target=targets)


def analytic_posterior(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, y = features.astype(np.float64), targets.astype(np.float64).reshape(-1)
    precision = X.T @ X / NOISE_STD**2 + PRIOR_PRECISION * np.eye(X.shape[1])
    covariance = np.linalg.inv(precision)
    return covariance @ X.T @ y / NOISE_STD**2, covariance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", help="the run directory of `dlc train`")
    parser.add_argument("--write-data", action="store_true", help=f"write {DATA.name} and stop")
    args = parser.parse_args()
    if args.write_data:
        write_data()
        return
    if args.run is None:
        parser.error("give the run directory (or --write-data)")
    from safetensors.numpy import load_file

    posterior = load_file(str(args.run / "posterior.safetensors"))
    samples = np.stack(
        [value.reshape(-1) for key, value in sorted(posterior.items()) if key.endswith(WEIGHT)]
    )
    with np.load(DATA) as data:
        mean, covariance = analytic_posterior(data["x"], data["target"])
    sample_covariance = np.cov(samples, rowvar=False)
    report = {
        "samples": len(samples),
        "analytic_mean": mean.tolist(),
        "sample_mean": samples.mean(0).tolist(),
        "mean_error": float(np.abs(samples.mean(0) - mean).max()),
        "analytic_covariance": covariance.tolist(),
        "sample_covariance": sample_covariance.tolist(),
        # the largest error of a covariance entry, relative to the largest entry
        "covariance_relative_error": float(
            np.abs(sample_covariance - covariance).max() / np.abs(covariance).max()
        ),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
