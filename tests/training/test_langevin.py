"""Langevin dynamics (`optimizer: sgld`) against the analytic posterior of Bayesian linear regression.

y = X w + noise, noise ~ N(0, sigma^2), prior w ~ N(0, I / lambda): the posterior is Gaussian
with precision A = X^T X / sigma^2 + lambda I and mean A^{-1} X^T y / sigma^2. The sampler
runs 256 independent chains at once (one weight row per chain, energies summed), so its
samples are many and nearly independent; everything is seeded, so the test is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
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
CHAINS = 1024


@pytest.fixture(autouse=True)
def one_thread():
    """The chains' tensors are small: a second intra-op thread only adds contention (5x slower
    on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def regression_data(points: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Features [x, 1] (slope and intercept) and noisy targets of y = 2x - 1. With x in [0, 2]
    the posterior correlates slope and intercept (correlation -0.88)."""
    generator = np.random.default_rng(1)
    x = generator.uniform(0, 2, size=points)
    features = np.stack([x, np.ones_like(x)], axis=1)
    targets = 2 * x - 1 + NOISE_STD * generator.normal(size=points)
    return torch.tensor(features), torch.tensor(targets)


def analytic_posterior(features: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    X, y = features.numpy(), targets.numpy()
    precision = X.T @ X / NOISE_STD**2 + PRIOR_PRECISION * np.eye(2)
    covariance = np.linalg.inv(precision)
    return covariance @ X.T @ y / NOISE_STD**2, covariance


class LinearRegressionChains(torch.nn.Module):
    """`chains` independent linear regressions: predictions (chains, points)."""

    def __init__(self, chains: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(chains, 2, dtype=torch.float64))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.weight @ features.T


def gaussian_mean_nll(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loop's loss: the negative log-likelihood per data point (a mean over the points),
    summed over the independent chains."""
    return ((predictions - targets) ** 2 / (2 * NOISE_STD**2)).mean(dim=-1).sum()


def sgld_spec(**options):
    return TypeAdapter(OptimizerSpec).validate_python({"name": "sgld", **options})


def run_langevin(
    model: torch.nn.Module, spec, features, targets, steps: int, seed: int = 0
) -> PosteriorSamples:
    optimizer = build_optimizer(spec, model.parameters(), dataset_size=len(targets), seed=seed)
    samples = PosteriorSamples(model, spec)
    for _ in range(steps):
        optimizer.zero_grad()
        gaussian_mean_nll(model(features), targets).backward()
        optimizer.step()
        samples.update(model)
    return samples


def test_sgld_samples_the_bayesian_linear_regression_posterior() -> None:
    """Sample mean within 0.05 and covariance within 10 % of the analytic posterior.

    eta = 5e-3 and gamma = 10: for this posterior (precision eigenvalues 28 and 451) the
    discretization inflates the stationary variance by 0.04 % (discrete Lyapunov equation)
    and every mode forgets in about 40 steps; burn-in is 400 steps."""
    features, targets = regression_data()
    mean, covariance = analytic_posterior(features, targets)
    spec = sgld_spec(lr=5e-3, friction=10.0, prior_precision=PRIOR_PRECISION, burn_in=400, thinning=10)
    samples = run_langevin(LinearRegressionChains(CHAINS), spec, features, targets, steps=2000)
    assert len(samples) == 160
    drawn = torch.cat([sample["weight"] for sample in samples.samples]).numpy()  # (160 * CHAINS, 2)
    assert np.abs(drawn.mean(axis=0) - mean).max() < 0.05
    relative = np.abs(np.cov(drawn.T) - covariance) / np.abs(covariance)
    assert relative.max() < 0.10, (np.cov(drawn.T), covariance)


def test_temperature_scales_the_posterior_covariance() -> None:
    """At T = 2 the samples follow exp(-E / 2): the covariance doubles, the mean stays."""
    features, targets = regression_data()
    mean, covariance = analytic_posterior(features, targets)
    spec = sgld_spec(lr=5e-3, friction=10.0, temperature=2.0, prior_precision=PRIOR_PRECISION, burn_in=400)
    samples = run_langevin(LinearRegressionChains(CHAINS), spec, features, targets, steps=1200)
    drawn = torch.cat([sample["weight"] for sample in samples.samples]).numpy()
    assert np.abs(drawn.mean(axis=0) - mean).max() < 0.05
    assert np.abs(np.diag(np.cov(drawn.T)) / (2 * np.diag(covariance)) - 1).max() < 0.10


def test_one_step_is_the_course_friction_update() -> None:
    """v_1 = (1 - eta gamma) v_0 - eta grad E + sqrt(2 gamma eta T) eps, theta_1 = theta_0 + eta v_1,
    with E = N * loss + prior_precision / 2 |theta|^2 and eps from the optimizer's seeded generator."""
    eta, gamma, temperature, precision, points = 0.01, 3.0, 0.5, 2.0, 7
    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    spec = sgld_spec(lr=eta, friction=gamma, temperature=temperature, prior_precision=precision)
    optimizer = build_optimizer(spec, [theta], dataset_size=points, seed=5)
    expected = theta.detach().clone()
    velocity = torch.zeros(2, dtype=torch.float64)
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        optimizer.zero_grad()
        (theta**2).sum().backward()  # loss gradient 2 theta
        energy_gradient = points * 2 * expected + precision * expected
        noise = torch.randn(2, generator=generator, dtype=torch.float64)
        velocity = (
            (1 - eta * gamma) * velocity
            - eta * energy_gradient
            + (2 * gamma * eta * temperature) ** 0.5 * noise
        )
        expected = expected + eta * velocity
        optimizer.step()
        torch.testing.assert_close(theta.detach(), expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(optimizer.state[theta]["velocity"], velocity, rtol=0, atol=1e-12)


def test_burn_in_and_thinning_pick_the_sampled_steps() -> None:
    model = torch.nn.Linear(1, 1)
    samples = PosteriorSamples(model, sgld_spec(burn_in=5, thinning=3))
    taken = [step for step in range(1, 21) if samples.update(model)]
    assert taken == [8, 11, 14, 17, 20]
    assert len(samples) == 5 and set(samples.samples[0]) == {"weight", "bias"}


def test_samples_and_noise_resume_exactly() -> None:
    """The posterior samples and the optimizer state (velocity, noise generator) round-trip:
    an interrupted run continues bit for bit."""
    features, targets = regression_data()
    spec = sgld_spec(lr=5e-3, friction=10.0, prior_precision=PRIOR_PRECISION, burn_in=4, thinning=2)

    def steps(model, optimizer, samples, count):
        for _ in range(count):
            optimizer.zero_grad()
            gaussian_mean_nll(model(features), targets).backward()
            optimizer.step()
            samples.update(model)

    def fresh():
        model = LinearRegressionChains(4)
        return (
            model,
            build_optimizer(spec, model.parameters(), dataset_size=50, seed=3),
            PosteriorSamples(model, spec),
        )

    whole = fresh()
    steps(*whole, 20)
    first = fresh()
    steps(*first, 9)
    resumed = fresh()
    resumed[0].load_state_dict(first[0].state_dict())
    resumed[1].load_state_dict(first[1].state_dict())
    resumed[2].load_state_dict(first[2].state_dict())
    steps(*resumed, 11)
    assert torch.equal(resumed[0].weight, whole[0].weight)
    assert len(resumed[2]) == len(whole[2]) == 8
    for mine, theirs in zip(resumed[2].samples, whole[2].samples, strict=True):
        assert torch.equal(mine["weight"], theirs["weight"])


def test_distributed_replicas_add_the_same_noise() -> None:
    """Two optimizers with the same seed (two processes of a DDP run) stay equal."""
    replicas = []
    for process_seed in (123, 456):
        torch.manual_seed(process_seed)  # the processes' global generators may differ; the noise must not
        theta = torch.nn.Parameter(torch.ones(3))
        optimizer = build_optimizer(sgld_spec(lr=0.01), [theta], seed=9)
        for _ in range(5):
            theta.grad = torch.ones(3)
            torch.randn(int(torch.randint(1, 5, ())))  # something else drawing from the global generator
            optimizer.step()
        replicas.append(theta.detach())
    assert torch.equal(*replicas)


def test_predict_posterior_mean_averages_predictions_over_samples() -> None:
    model = torch.nn.Linear(1, 1, bias=False)
    samples = [{"weight": torch.tensor([[1.0]])}, {"weight": torch.tensor([[3.0]])}]
    inputs = torch.tensor([[1.0], [2.0]])
    prediction = predict_posterior_mean(model, samples, inputs)
    torch.testing.assert_close(prediction, torch.tensor([[2.0], [4.0]]))
    squared = predict_posterior_mean(model, samples, inputs, output_transform=torch.square)
    torch.testing.assert_close(squared, torch.tensor([[5.0], [20.0]]))  # the mean of f^2, not (mean f)^2
    assert model.weight.item() not in (1.0, 3.0)  # the model got its own weights back


def test_predict_posterior_mean_without_samples_says_why() -> None:
    with pytest.raises(ValueError, match="no posterior samples"):
        predict_posterior_mean(torch.nn.Linear(1, 1), [], torch.zeros(1, 1))


def test_bayesian_linear_regression_example_runs() -> None:
    """The example prints the Langevin and analytic posteriors side by side (short run)."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "train" / "bayesian_linear_regression.py"
    result = subprocess.run(
        [sys.executable, str(example), "--steps", "2000"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "100 samples (burn-in 1000, thinning 10, 2000 steps)" in result.stdout
    assert "mean (slope, intercept)" in result.stdout and "analytic" in result.stdout


def test_samples_saved_as_safetensors_predict_like_the_live_ones(tmp_path) -> None:
    features, targets = regression_data()
    model = torch.nn.Linear(2, 1, bias=False).double()
    spec = sgld_spec(lr=5e-3, friction=10.0, prior_precision=PRIOR_PRECISION, burn_in=20, thinning=5)
    optimizer = build_optimizer(spec, model.parameters(), dataset_size=len(targets))
    samples = PosteriorSamples(model, spec)
    for _ in range(60):
        optimizer.zero_grad()
        gaussian_mean_nll(model(features).T, targets).backward()
        optimizer.step()
        samples.update(model)
    samples.save(tmp_path / "posterior.safetensors")
    loaded = load_posterior_samples(tmp_path / "posterior.safetensors")
    assert len(loaded) == len(samples) == 8
    torch.testing.assert_close(
        predict_posterior_mean(model, loaded, features), predict_posterior_mean(model, samples, features)
    )


def test_dlc_train_keeps_posterior_samples_of_the_example_spec(tmp_path) -> None:
    """`dlc train` on the example spec (shortened): the posterior file holds the samples after
    burn-in with thinning, under the spec's parameter names, near the analytic posterior."""
    from tests.conftest import EXAMPLES, run_cli

    result = run_cli(
        "train",
        str(EXAMPLES / "train" / "bayesian_linear_regression.yaml"),
        "--out",
        str(tmp_path),
        "--set",
        "training.epochs=1200",
        "--set",
        "training.optimizer.burn_in=200",
        timeout=300,
    )
    assert result.code == 0, result.output
    samples = load_posterior_samples(tmp_path / "posterior.safetensors")
    assert len(samples) == 100 and set(samples[0]) == {"line.weight", "line.bias"}
    drawn = np.array([[s["line.weight"].item(), s["line.bias"].item()] for s in samples])
    with np.load(EXAMPLES / "train" / "bayesian_linear_regression.npz") as arrays:
        features = torch.tensor(np.hstack([arrays["x"], np.ones_like(arrays["x"])]), dtype=torch.float64)
        targets = torch.tensor(arrays["target"].ravel(), dtype=torch.float64)
    mean, covariance = analytic_posterior(features, targets)
    assert np.abs(drawn.mean(axis=0) - mean).max() < 0.1
    assert np.all(np.abs(np.diag(np.cov(drawn.T)) / np.diag(covariance) - 1) < 0.5)  # 100 correlated samples
