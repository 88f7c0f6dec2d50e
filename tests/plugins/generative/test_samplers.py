"""Samplers compiled into the graph follow diffusers' schedulers step for step: with the
same U-Net weights, the same x_T and the same per-step noise, the one-file ONNX sampler
(the U-Net inside an ONNX Loop) and the ejected torch loop give diffusers' DDPMScheduler /
DDIMScheduler loop's x_0 within 1e-4 relative (8x8 images, a small U-Net)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

import dlc
from dlc.runtime import Session
from dlc.testing import max_relative_error

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
pytest.importorskip("safetensors")

from tests.plugins.generative.ddpm_reference import SMALL, SPEC, diffusers_unet, save_state_dict  # noqa: E402

TOLERANCE = 1e-4
BATCH = 2


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Hundreds of tiny U-Net calls: torch's thread pool only adds contention (30x slower on a
    loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(model: dlc.CompiledModel, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return Session(model.onnx_model(), "cpu", threads=1).run(feeds)["x_0"]


# A random U-Net is no denoiser: the Jacobian of its predicted noise makes DDIM's deterministic
# map expand, so float32 rounding grows ~700x over 10 steps (torch's vectorised sqrt is not
# correctly rounded: 177 of the 1000 sqrt(abar_t) of the linear schedule differ from IEEE's
# by one ulp, which alone gives 4e-5 between two torch loops). With conv_out at half gain
# (predicted noise std 0.15 instead of 0.3) the same comparison is 5e-5; at full gain 1.5e-4.
OUTPUT_GAIN = 0.5


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    return diffusers_unet(SMALL, seed=11, output_gain=OUTPUT_GAIN)


@pytest.fixture(scope="module")
def weights(unet: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_state_dict(unet, tmp_path_factory.mktemp("ddpm") / "unet.safetensors")


def scheduler(kind: str, schedule: str = "linear"):
    beta_schedule = {"linear": "linear", "cosine": "squaredcos_cap_v2"}[schedule]
    if kind == "ddpm":
        return diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)
    return diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)


def diffusers_loop(unet, kind: str, steps: int, x_T: np.ndarray, noise: np.ndarray | None, **options):
    """The loop of diffusers' DDPMPipeline / DDIMPipeline, each step's noise taken from `noise`."""
    schedule = options.pop("schedule", "linear")
    sched = scheduler(kind, schedule)
    sched.set_timesteps(steps)
    module = diffusers.schedulers.scheduling_ddpm if kind == "ddpm" else diffusers.schedulers.scheduling_ddim
    drawn = iter(torch.from_numpy(noise) if noise is not None else [])
    original = module.randn_tensor
    module.randn_tensor = lambda *args, **kwargs: next(drawn)
    try:
        x = torch.from_numpy(x_T)
        for index, t in enumerate(sched.timesteps):
            if noise is not None:
                drawn = iter([torch.from_numpy(noise[index])])
            with torch.no_grad():
                eps = unet(x, t).sample
            x = sched.step(eps, t, x, **options).prev_sample
    finally:
        module.randn_tensor = original
    return x.numpy()


def draws(steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x_T = rng.standard_normal((BATCH, 3, 8, 8)).astype(np.float32)
    return x_T, rng.standard_normal((steps, BATCH, 3, 8, 8)).astype(np.float32)


def compiled(weights: Path, **sampling) -> dlc.CompiledModel:
    return dlc.compile(SPEC, overrides=SMALL, weights=weights, sampling=sampling)


@pytest.mark.parametrize("steps", [10, 1000])
def test_ddpm_sampler_matches_diffusers_ddpm_scheduler(unet, weights: Path, steps: int) -> None:
    x_T, noise = draws(steps)
    expected = diffusers_loop(unet, "ddpm", steps, x_T, noise)
    actual = run(compiled(weights, sampler="ddpm", steps=steps), {"x_T": x_T, "noise": noise})
    assert np.abs(expected).max() > 0.1
    assert max_relative_error(expected, actual) <= TOLERANCE


def test_ddim_sampler_matches_diffusers_ddim_scheduler(unet, weights: Path) -> None:
    x_T, _ = draws(10, seed=1)
    expected = diffusers_loop(unet, "ddim", 10, x_T, None, eta=0.0)
    model = compiled(weights, sampler="ddim", steps=10, eta=0.0)
    assert [i.name for i in model.onnx_model().graph.input] == ["x_T"]  # deterministic: no noise input
    assert max_relative_error(expected, run(model, {"x_T": x_T})) <= TOLERANCE


def test_stochastic_ddim_on_the_cosine_schedule_matches_diffusers(unet, weights: Path) -> None:
    x_T, noise = draws(10, seed=2)
    expected = diffusers_loop(unet, "ddim", 10, x_T, noise, eta=0.5, schedule="cosine")
    model = compiled(weights, sampler="ddim", steps=10, eta=0.5, schedule="cosine")
    assert max_relative_error(expected, run(model, {"x_T": x_T, "noise": noise})) <= TOLERANCE


def test_the_unet_runs_inside_one_onnx_loop_with_the_schedule_as_constants(weights: Path) -> None:
    model = compiled(weights, sampler="ddim", steps=10)
    proto = model.onnx_model()
    loops = [n for n in proto.graph.node if n.op_type == "Loop"]
    assert len(loops) == 1
    body = onnx.helper.get_attribute_value(loops[0].attribute[0])
    assert sum(n.op_type == "Conv" or n.op_type.startswith("FusedConv") for n in body.node) >= 20
    # The U-Net's weights keep their names, as constants of the loop body (where ONNX Runtime's
    # layout optimizer gives its convolutions the blocked-layout kernels).
    in_body = {i.name for i in body.initializer}
    assert "down_blocks.0.resnets.0.conv1.weight" in in_body
    assert {i.name for i in proto.graph.initializer}.isdisjoint(in_body)
    assert not any(i.name.startswith("sampler.") and "noise" in i.name for i in proto.graph.initializer)


def test_ejected_sampler_is_a_torch_loop_that_matches_diffusers(unet, weights: Path, tmp_path: Path) -> None:
    x_T, noise = draws(10, seed=3)
    expected = diffusers_loop(unet, "ddpm", 10, x_T, noise)
    compiled(weights, sampler="ddpm", steps=10).save(tmp_path, target="torch")
    source = (tmp_path / "model.py").read_text()
    assert "for " in source and "range(10)" in source
    module_spec = importlib.util.spec_from_file_location("ejected_ddpm_sampler", tmp_path / "model.py")
    assert module_spec is not None and module_spec.loader is not None
    ejected = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(ejected)
    network = ejected.load_model()
    with torch.no_grad():
        actual = network(torch.from_numpy(x_T), torch.from_numpy(noise)).numpy()
    assert max_relative_error(expected, actual) <= TOLERANCE
