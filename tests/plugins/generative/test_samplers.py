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
from dlc.diffusion.samplers import sampler_plan
from dlc.runtime import Session
from dlc.spec.sampling import SamplingSection
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


# At the U-Net's full output gain (diffusers' initialisation). A random U-Net is no denoiser:
# DDIM's deterministic map expands, and a float32 difference in the predicted noise grows
# ~75x over 10 steps (a relative 1e-6 change of the first step's eps moves x_0 by 7.5e-5).
# dlc's tables are diffusers' float32 values but for sqrt, which dlc rounds correctly and
# torch does not (test_sampler_tables_are_diffusers_float32_expressions): that alone is
# 4.1e-5 between two torch loops on the DDIM draw below. ONNX Runtime's U-Net and torch's
# differ by 1.0e-6 to 1.6e-6 per call (each ~7e-7 from a float64 U-Net), as torch from itself:
# diffusers' own DDIM-10 loop moves by 5.2e-5 between 1 and 2 threads. Measured, DDIM-10:
# 7.6e-5 on this draw (4.7e-5 to 1.05e-4 over 8 draws); it was 1.7e-4 while the timestep
# embedding's frequencies were an ulp off diffusers' (numpy's float32 exp).


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    return diffusers_unet(SMALL, seed=11)


@pytest.fixture(scope="module")
def weights(unet: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_state_dict(unet, tmp_path_factory.mktemp("ddpm") / "unet.safetensors")


def scheduler(kind: str, schedule: str = "linear"):
    beta_schedule = {"linear": "linear", "cosine": "squaredcos_cap_v2"}[schedule]
    if kind == "ddpm":
        return diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)
    return diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)


def correctly_rounded_sqrt(value: torch.Tensor) -> torch.Tensor:
    """float32 sqrt rounded as IEEE 754 requires. torch's float32 sqrt (and `** 0.5`) on the
    CPU is one ulp off for 177 of the linear schedule's 1000 sqrt(abar_t) on this machine's
    build; dlc keeps the portable, correctly rounded value."""
    return value.double().sqrt().float()


def diffusers_tables(kind: str, schedule: str, steps: int, eta: float) -> dict[str, np.ndarray]:
    """Each step's coefficients as diffusers' `step()` evaluates them, in float32 and in its
    order of operations, from the scheduler's own tensors and `_get_variance`."""
    sched = scheduler(kind, schedule)
    sched.set_timesteps(steps)
    sqrt = correctly_rounded_sqrt
    columns: dict[str, list[float]] = {}
    for t in sched.timesteps.tolist():
        prev_t = t - sched.config.num_train_timesteps // steps
        alpha_prod_t = sched.alphas_cumprod[t]
        alpha_prod_t_prev = sched.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)
        beta_prod_t, beta_prod_t_prev = 1 - alpha_prod_t, 1 - alpha_prod_t_prev
        zero = torch.tensor(0.0)
        if kind == "ddpm":
            current_alpha_t = alpha_prod_t / alpha_prod_t_prev
            current_beta_t = 1 - current_alpha_t
            x0 = (sqrt(alpha_prod_t_prev) * current_beta_t) / beta_prod_t
            x = sqrt(current_alpha_t) * beta_prod_t_prev / beta_prod_t
            eps, noise = zero, sqrt(sched._get_variance(t)) if t > 0 else zero
        else:
            std_dev_t = eta * sqrt(sched._get_variance(t, prev_t))
            x0, x, eps, noise = (
                sqrt(alpha_prod_t_prev),
                zero,
                sqrt(1 - alpha_prod_t_prev - std_dev_t**2),
                std_dev_t,
            )
        row = {
            "timesteps": torch.tensor(float(t)),
            "sqrt_one_minus_abar": sqrt(beta_prod_t),
            "sqrt_abar": sqrt(alpha_prod_t),
            "x0_coefficient": x0,
            "x_coefficient": x,
            "eps_coefficient": eps,
            "noise_coefficient": noise,
        }
        for name, value in row.items():
            columns.setdefault(name, []).append(value.item())
    return {name: np.array(values, np.float32) for name, values in columns.items()}


@pytest.mark.parametrize(
    ("kind", "schedule", "steps", "eta"),
    [
        ("ddpm", "linear", 10, 0.0),
        ("ddpm", "linear", 1000, 0.0),
        ("ddpm", "cosine", 50, 0.0),
        ("ddim", "linear", 10, 0.0),
        ("ddim", "linear", 50, 1.0),
        ("ddim", "cosine", 10, 0.5),
    ],
)
def test_sampler_tables_are_diffusers_float32_expressions(
    kind: str, schedule: str, steps: int, eta: float
) -> None:
    """Bit for bit, sqrt aside (correctly rounded in both here): betas, abar, the previous
    step's abar (1 after the last), and every coefficient of diffusers' step."""
    plan = sampler_plan(SamplingSection(sampler=kind, schedule=schedule, steps=steps, eta=eta))
    for name, expected in diffusers_tables(kind, schedule, steps, eta).items():
        actual = getattr(plan, name)
        assert actual.dtype == np.float32 and np.array_equal(actual, expected), name


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
