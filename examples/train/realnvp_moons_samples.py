"""RealNVP on two moons, after `dlc train`: the held-out NLL in ONNX Runtime against a single
Gaussian fitted to the same training data, and samples x = f^-1(z) from the compiled inverse.

    dlc train specs/generative/realnvp_moons.yaml --config examples/train/realnvp_moons.train.yaml \
        --out runs/realnvp_moons
    python examples/train/realnvp_moons_samples.py runs/realnvp_moons

The split is the one `dlc train` used (`dlc.training.plan.plan_training` rebuilds it from the
same config). NLLs are in nats per example (2 dimensions).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from example_tools import dlc_compile, onnx_session

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent.parent / "specs" / "generative" / "realnvp_moons.yaml"
CONFIG = HERE / "realnvp_moons.train.yaml"


def gaussian_nll(train: np.ndarray, test: np.ndarray) -> float:
    """Mean -log N(x; mu, Sigma) over `test`, with mu and Sigma fitted to `train` (max. likelihood)."""
    mean = train.mean(0)
    covariance = np.cov(train, rowvar=False, bias=True)
    centred = test - mean
    mahalanobis = np.einsum("ni,ij,nj->n", centred, np.linalg.inv(covariance), centred)
    _, log_det = np.linalg.slogdet(covariance)
    return float(np.mean(0.5 * (mahalanobis + log_det + train.shape[1] * math.log(2 * math.pi))))


def flow_nll(session, x: np.ndarray) -> float:
    """Mean -(log N(z; 0, I) + log_det) with z, log_det = f(x) from the compiled forward map."""
    z, log_det = session.run(["z", "log_det"], {"x": x})
    log_pz = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1)
    return float(-(log_pz + log_det.reshape(-1)).mean())


def nearest_distance(points: np.ndarray, data: np.ndarray) -> float:
    """The mean Euclidean distance from each point to its nearest neighbour in `data`."""
    from scipy.spatial import cKDTree

    distances, _ = cKDTree(data).query(points)
    return float(distances.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run directory of `dlc train` (holds model.safetensors)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=None, help="default: RUN/samples.png")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the `--set` values given to dlc train",
    )
    args = parser.parse_args()

    from dlc.spec.loader import parse_override
    from dlc.training.plan import plan_training

    overrides = dict(parse_override(text) for text in args.set)
    splits = plan_training(SPEC, config_path=CONFIG, overrides=overrides).splits
    train, test = splits.train["x"], splits.test["x"]
    weights = args.run / "model.safetensors"
    params = [option for text in args.set if not text.startswith("training.") for option in ("--set", text)]
    forward = onnx_session(dlc_compile(SPEC, weights, args.run / "realnvp_forward.onnx", *params))
    inverse_options = ("--direction", "inverse", *params)
    inverse_path = dlc_compile(SPEC, weights, args.run / "realnvp_inverse.onnx", *inverse_options)
    inverse = onnx_session(inverse_path)

    result = {"flow_test_nll": flow_nll(forward, test), "gaussian_test_nll": gaussian_nll(train, test)}
    result["test_examples"] = len(test)
    z = np.random.default_rng(args.seed).standard_normal((args.samples, 2)).astype(np.float32)
    (samples,) = inverse.run(["x"], {"z": z})
    result["samples"] = len(samples)
    # How close the samples lie to the data: the mean distance from a sample to its nearest
    # training point, against the same for as many draws from the fitted Gaussian.
    gaussian = np.random.default_rng(args.seed + 1).multivariate_normal(
        train.mean(0), np.cov(train, rowvar=False), size=args.samples
    )
    result["flow_sample_distance"] = nearest_distance(samples, train)
    result["gaussian_sample_distance"] = nearest_distance(gaussian, train)
    png = args.png or args.run / "samples.png"
    plot(train, samples, png, result)
    result["png"] = str(png)
    print(json.dumps(result, indent=1))


def plot(data: np.ndarray, samples: np.ndarray, path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(7, 3.2), dpi=80, sharex=True, sharey=True)
    axes[0].scatter(data[:, 0], data[:, 1], s=2, c="tab:blue")
    axes[0].set_title("training data", fontsize=9)
    axes[1].scatter(samples[:, 0], samples[:, 1], s=2, c="tab:red")
    title = f"x = f^-1(z), ONNX inverse (test NLL {result['flow_test_nll']:.3f} nats)"
    axes[1].set_title(title, fontsize=9)
    axes[0].set_xlim(-1.5, 2.5)
    axes[0].set_ylim(-1.0, 1.5)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    main()
