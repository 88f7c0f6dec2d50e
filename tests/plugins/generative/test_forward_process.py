"""The forward process q(x_t | x_0) in both targets and the Python helpers: the `q_sample`
block in ONNX Runtime and torch, `dlc.diffusion.q_sample` (numpy) and `q_sample_torch`, and
the schedules against diffusers' (bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.diffusion import alphas_cumprod, q_sample, q_sample_torch
from dlc.spec.loader import load_spec

torch = pytest.importorskip("torch")

SPEC = """\
dlc: 1
name: noising
inputs:
  x0: {shape: [N, 3, 4, 4]}
  t: {shape: [N], dtype: int64}
  eps: {shape: [N, 3, 4, 4]}
layers:
  - q_sample: {schedule: cosine}
    in: [x0, t, eps]
"""


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules_are_diffusers_bit_for_bit(schedule: str) -> None:
    diffusers = pytest.importorskip("diffusers")
    name = {"linear": "linear", "cosine": "squaredcos_cap_v2"}[schedule]
    reference = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=name)
    assert np.array_equal(reference.alphas_cumprod.numpy(), alphas_cumprod(schedule, 1e-4, 0.02, 1000))


def test_q_sample_block_in_onnx_and_torch_is_the_formula() -> None:
    model = dlc.compile(load_spec("noising.yaml", text=SPEC))
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
    eps = rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
    t = np.array([0, 500, 999], np.int64)
    abar = alphas_cumprod("cosine", 1e-4, 0.02, 1000).astype(np.float64)
    expected = np.sqrt(abar[t])[:, None, None, None] * x0 + np.sqrt(1 - abar[t])[:, None, None, None] * eps
    onnx_out = next(iter(model.run({"x0": x0, "t": t, "eps": eps}).values()))
    with torch.no_grad():
        torch_out = model.torch_module()(torch.from_numpy(x0), torch.from_numpy(t), torch.from_numpy(eps))
    assert np.abs(onnx_out - expected).max() < 1e-6
    assert np.abs(torch_out.numpy() - expected).max() < 1e-6
    assert np.abs(q_sample(x0, t, eps, abar.astype(np.float32)) - expected).max() < 1e-6
    helper = q_sample_torch(
        torch.from_numpy(x0), torch.from_numpy(t), torch.from_numpy(eps), torch.from_numpy(abar)
    )
    assert np.abs(helper.numpy() - expected).max() < 1e-6
