"""The generative objectives on small specs written here: the flow NLL learns a Gaussian's
scale and shift, the GAN's two losses are the course's minimax terms (non-saturating for G)
with alternating updates, and DDPM's L_simple uses the closed-form q_sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dlc.training.loop import train
from dlc.training.objectives import DISCRIMINATOR, GENERATOR, MODEL, linear_betas, q_sample
from dlc.training.plan import plan_training

FLOW = """\
dlc: 1
name: affine_flow
inputs:
  x: {shape: [N, 2]}
layers:
  - parameter: [1, 2]             # log scale s
    id: log_scale
  - parameter: [1, 2]             # shift t
    id: shift
  - exp:
    in: log_scale
  - mul:
    in: [x, exp_0]
  - add:
    in: [mul_0, shift]
    id: z                         # z = x * exp(s) + t
  - sub:
    in: [x, x]
  - add:
    in: [sub_0, log_scale]
  - reduce_sum: [1]
    id: log_det                   # log |det dz/dx| = sum(s), per example
outputs: [z, log_det]
training:
  data: {dataset: blobs, options: {n_samples: 2000, centers: 1, cluster_std: 2.0}}
  objective: flow_nll
  optimizer: {name: adam, lr: 0.05}
  epochs: 20
  batch_size: 100
"""


def test_the_flow_nll_fits_an_affine_flow_to_a_gaussian(tmp_path: Path) -> None:
    spec = tmp_path / "affine_flow.yaml"
    spec.write_text(FLOW)
    plan = plan_training(spec)
    result = train(plan, tmp_path / "run")
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    data = plan.splits.train["x"]
    # the maximum-likelihood affine flow whitens the data: exp(s) = 1 / std, t = -mean / std
    np.testing.assert_allclose(np.exp(-weights["log_scale.weight"].numpy()[0]), data.std(0), rtol=0.1)
    np.testing.assert_allclose(
        -weights["shift.weight"].numpy()[0] / np.exp(weights["log_scale.weight"].numpy()[0]),
        data.mean(0),
        atol=0.2,
    )
    # the NLL of a diagonal Gaussian fitted to the data, per example
    gaussian = 0.5 * np.sum(np.log(2 * math.pi * data.var(0)) + 1)
    assert result.metrics["test"]["loss"] == pytest.approx(gaussian, rel=0.05)
    assert result.metrics["test"]["bits_per_dim"] == pytest.approx(
        result.metrics["test"]["loss"] / (2 * math.log(2))
    )


def test_the_flow_nll_needs_z_and_log_det_outputs(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    spec = tmp_path / "affine_flow.yaml"
    spec.write_text(FLOW.replace("outputs: [z, log_det]", "outputs: [z]"))
    result = run_cli("train", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 1 and not (tmp_path / "run").exists()
    assert (
        "the flow NLL reads log_det from an output 'log_det', which the model does not have" in result.stderr
    )


GENERATOR_SPEC = """\
dlc: 1
name: generator
inputs:
  z: {shape: [N, 4]}
layers:
  - linear: 32
  - relu
  - linear: 2
training:
  data: {dataset: moons, options: {n_samples: 400, noise: 0.05}, inputs: {x: x}}
  objective: {name: gan, discriminator: discriminator.yaml}
  optimizer: {name: adam, lr: 0.002, betas: [0.5, 0.999]}
  epochs: 3
  batch_size: 32
  log_every: 1
"""
DISCRIMINATOR_SPEC = """\
dlc: 1
name: discriminator
inputs:
  x: {shape: [N, 2]}
layers:
  - linear: 32
  - leaky_relu
  - linear: 1
"""


@pytest.fixture
def gan(tmp_path: Path) -> Path:
    (tmp_path / "discriminator.yaml").write_text(DISCRIMINATOR_SPEC)
    (tmp_path / "generator.yaml").write_text(GENERATOR_SPEC)
    return tmp_path / "generator.yaml"


def test_the_gan_losses_are_the_minimax_terms_with_the_non_saturating_generator_loss(gan: Path) -> None:
    plan = plan_training(gan)
    models = {role: compiled.torch_module() for role, compiled in plan.models.items()}
    discriminator_phase, generator_phase = plan.objective.phases
    assert (discriminator_phase.model, generator_phase.model) == (DISCRIMINATOR, GENERATOR)
    real = torch.from_numpy(plan.splits.train["x"][:16])
    torch.manual_seed(3)
    d_loss, _ = discriminator_phase.loss(models, {"x": real})
    torch.manual_seed(3)
    with torch.no_grad():
        fake = models[GENERATOR](z=torch.randn(16, 4))
        d_real, d_fake = (
            torch.sigmoid(models[DISCRIMINATOR](x=real)),
            torch.sigmoid(models[DISCRIMINATOR](x=fake)),
        )
    expected = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert d_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.manual_seed(4)
    g_loss, _ = generator_phase.loss(models, {"x": real})
    torch.manual_seed(4)
    with torch.no_grad():
        d_generated = torch.sigmoid(models[DISCRIMINATOR](x=models[GENERATOR](z=torch.randn(16, 4))))
    assert g_loss.item() == pytest.approx(-torch.log(d_generated).mean().item(), rel=1e-5)


def test_gan_training_alternates_and_writes_both_models(gan: Path, tmp_path: Path) -> None:
    plan = plan_training(gan)
    before = {role: dict(compiled.weights()) for role, compiled in plan.models.items()}
    train(plan, tmp_path / "run")
    generator = load_file(str(tmp_path / "run" / "model.safetensors"))
    discriminator = load_file(str(tmp_path / "run" / "discriminator.safetensors"))
    assert sorted(generator) == sorted(before[GENERATOR])
    assert sorted(discriminator) == sorted(before[DISCRIMINATOR])
    for name, value in generator.items():
        assert not np.array_equal(value.numpy(), before[GENERATOR][name]), name
    for name, value in discriminator.items():
        assert not np.array_equal(value.numpy(), before[DISCRIMINATOR][name]), name
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert (tmp_path / "run" / "samples.png").is_file()  # 2-d points: a scatter plot
    train_lines = [line for line in lines if line["split"] == "train"]
    assert train_lines and all(
        math.isfinite(line["discriminator_loss"]) and math.isfinite(line["generator_loss"])
        for line in train_lines
    )


DDPM = """\
dlc: 1
name: eps_mlp
inputs:
  x: {shape: [N, 2]}
  t: {shape: [N, 1]}
layers:
  - scale: 0.001
    in: t
    id: time
  - concat: {axis: 1}
    in: [x, time]
  - linear: 64
  - silu
  - linear: 64
  - silu
  - linear: 2
training:
  data: {dataset: moons, options: {n_samples: 1000, noise: 0.05}}
  objective: {name: ddpm, steps: 100}
  optimizer: {name: adam, lr: 0.003}
  epochs: 15
  batch_size: 64
"""


def test_q_sample_is_the_closed_form_of_the_forward_process() -> None:
    betas = linear_betas(1000, 1e-4, 0.02)
    assert betas[0] == 1e-4 and betas[-1] == pytest.approx(0.02)
    alpha_bar = np.cumprod(1 - betas)
    rng = np.random.default_rng(0)
    x0, noise = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    t = np.array([0, 10, 500, 998, 999])
    expected = np.sqrt(alpha_bar[t])[:, None] * x0 + np.sqrt(1 - alpha_bar[t])[:, None] * noise
    actual = q_sample(
        torch.from_numpy(x0), torch.from_numpy(t), torch.from_numpy(noise), torch.from_numpy(alpha_bar)
    )
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-12)
    # the forward process: one step of q(x_t | x_{t-1}) from x_0 is q_sample at t = 0
    assert alpha_bar[0] == pytest.approx(1 - 1e-4)


def test_ddpm_l_simple_is_the_noise_regression_and_decreases(tmp_path: Path) -> None:
    spec = tmp_path / "eps_mlp.yaml"
    spec.write_text(DDPM)
    plan = plan_training(spec)
    (phase,) = plan.objective.phases
    model = plan.models[MODEL].torch_module()
    x0 = torch.from_numpy(plan.splits.train["x"][:32])
    torch.manual_seed(5)
    loss, _ = phase.loss({MODEL: model}, {"x": x0})
    torch.manual_seed(5)
    t = torch.randint(0, 100, (32,))
    noise = torch.randn_like(x0)
    alpha_bar = torch.from_numpy(np.cumprod(1 - linear_betas(100, 1e-4, 0.02)))
    with torch.no_grad():
        predicted = model(x=q_sample(x0, t, noise, alpha_bar), t=t.float()[:, None])
    assert loss.item() == pytest.approx(((noise - predicted) ** 2).mean().item(), rel=1e-5)
    result = train(plan, tmp_path / "run")
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["split"] == "train" and first["loss"] > 0.8  # an untrained eps_theta: about E|eps|^2 = 1
    assert result.metrics["test"]["loss"] < 0.75


def test_every_objective_of_the_language_has_a_builder() -> None:
    from dlc.training.config import OBJECTIVE_NAMES
    from dlc.training.objectives import OBJECTIVES

    assert sorted(OBJECTIVES) == sorted(OBJECTIVE_NAMES)


def test_the_dcgan_digits_example_writes_a_sample_grid(tmp_path: Path) -> None:
    from tests.conftest import EXAMPLES, run_cli

    spec = EXAMPLES / "train" / "dcgan_digits.yaml"
    result = run_cli(
        "train", str(spec), "--out", str(tmp_path / "run"), "--set", "training.epochs=1", timeout=600
    )
    assert result.code == 0, result.output
    assert (tmp_path / "run" / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "run" / "discriminator.safetensors").is_file()


def test_a_discriminator_returning_probabilities_gets_the_same_losses_as_one_returning_logits(
    gan: Path,
) -> None:
    probability = gan.parent / "probability.yaml"
    probability.write_text(DISCRIMINATOR_SPEC.replace("  - linear: 1\n", "  - linear: 1\n  - sigmoid\n"))
    logits_plan = plan_training(gan)
    probability_plan = plan_training(
        gan,
        overrides={
            "training.objective.discriminator": "probability.yaml",
            "training.objective.discriminator_output": "probability",
        },
    )
    real = torch.from_numpy(logits_plan.splits.train["x"][:16])
    losses = []
    for plan in (logits_plan, probability_plan):
        models = {role: compiled.torch_module() for role, compiled in plan.models.items()}
        torch.manual_seed(7)
        losses.append([phase.loss(models, {"x": real})[0].item() for phase in plan.objective.phases])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
