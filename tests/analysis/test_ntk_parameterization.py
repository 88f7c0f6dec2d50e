"""The NTK parameterization (`parameterization: ntk`) and the course's infinite-width
statements, measured: the empirical NTK of a one-hidden-layer ReLU network approaches the
analytic arc-cosine NTK as `1/sqrt(width)`, and the kernel moves less during training as
the width grows (lazy training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dlc
from dlc.analysis.model_function import as_input_tensors, compile_for_analysis, model_function
from dlc.analysis.ntk import empirical_ntk
from dlc.analysis.ntk_training import kernel_change_during_training
from tests.conftest import run_cli

SPECS = Path(__file__).parent / "specs"
RELU = SPECS / "relu_ntk.yaml"
WIDTHS = (64, 1024, 16384)
SEEDS = range(4)
INPUTS = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)


def arc_cosine_ntk(x: np.ndarray) -> np.ndarray:
    """The infinite-width NTK of f(x) = v . relu(W x / sqrt(d)) / sqrt(m), W, v ~ N(0, 1):
    with c = x.x'/d, q = |x|^2/d and theta the angle between x and x',
    K = sqrt(q q')/(2 pi) (sin theta + (pi - theta) cos theta)  [from v]
      + c (pi - theta)/(2 pi)                                    [from W]."""
    x = x.astype(np.float64)
    gram = x @ x.T / x.shape[1]
    norms = np.sqrt(np.diag(gram))
    cosine = np.clip(gram / np.outer(norms, norms), -1.0, 1.0)
    theta = np.arccos(cosine)
    from_readout = np.outer(norms, norms) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * cosine)
    return from_readout + gram * (np.pi - theta) / (2 * np.pi)


def _function(width: int, seed: int):
    return model_function(compile_for_analysis(RELU, seed=seed, overrides={"width": width}))


@pytest.fixture(scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CI machine: one thread is several times faster here
    yield
    torch.set_num_threads(threads)


def test_ntk_parameterization_draws_unit_normal_weights_scaled_in_the_forward_pass() -> None:
    model = dlc.compile(RELU, opt_level=0, overrides={"width": 4096})
    weights = model.weights()
    assert set(weights) == {"linear_0.weight", "f.weight"}  # names unchanged: checkpoints still load
    assert abs(float(weights["linear_0.weight"].std()) - 1.0) < 0.02
    scales = sorted(n.attrs.factor for n in model.graph if n.op == "scale")
    assert scales == pytest.approx([1 / np.sqrt(4096), 1 / np.sqrt(4)])
    assert "self.linear_0.weight * 0.5" in model.torch_source()


@pytest.mark.parametrize("spec", ["relu_ntk.yaml", "small_cnn.yaml"])
def test_ntk_parameterized_models_agree_in_torch_and_onnx_runtime(spec: str) -> None:
    loaded = dlc.load_spec(SPECS / spec).with_parameterization("ntk")
    model = dlc.compile(loaded)  # -O2
    shape = (3, 4) if spec == "relu_ntk.yaml" else (3, 1, 6, 6)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    name = model.graph.inputs()[0].attrs.name
    onnx_output = next(iter(model.run({name: x}).values()))
    torch_output = model.torch_module()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(onnx_output, torch_output, rtol=1e-5, atol=1e-5)
    assert sum(n.op == "scale" for n in dlc.compile(loaded, opt_level=0).graph) == 2  # conv and linear


def test_empirical_ntk_approaches_the_arc_cosine_kernel_as_one_over_sqrt_width(single_thread) -> None:
    limit = arc_cosine_ntk(INPUTS)
    errors = []
    for width in WIDTHS:
        relative = []
        for seed in SEEDS:
            function = _function(width, seed)
            kernel = empirical_ntk(function, as_input_tensors(function, INPUTS, "x"), mode="trace")
            relative.append(np.linalg.norm(kernel - limit) / np.linalg.norm(limit))
        errors.append(float(np.sqrt(np.mean(np.square(relative)))))  # RMS over seeds
    assert errors[0] > errors[1] > errors[2], errors
    slope = np.polyfit(np.log(WIDTHS), np.log(errors), 1)[0]
    assert -0.75 <= slope <= -0.35, (slope, errors)  # 1/sqrt(width): slope -0.5
    assert errors[-1] < 0.03, errors


def test_relative_kernel_change_during_training_falls_with_width(single_thread) -> None:
    targets = np.random.default_rng(1).standard_normal((5, 1)).astype(np.float32)
    changes = []
    for width in WIDTHS:
        final = []
        for seed in range(2):
            function = _function(width, seed)
            history = kernel_change_during_training(
                function,
                as_input_tensors(function, INPUTS, "x"),
                targets,
                steps=60,
                learning_rate=0.5,
                record_every=60,
            )
            assert history.loss[-1] < 0.1 * history.loss[0]  # it did train
            final.append(history.change[-1])
        changes.append(float(np.mean(final)))
    assert changes[0] > changes[1] > changes[2], changes
    assert changes[2] < changes[0] / 4, changes  # 1/sqrt(width) would give / 16


def test_cli_parameterization_option_overrides_the_spec(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=INPUTS)
    kernels = {}
    for choice in ("standard", "ntk"):
        output = tmp_path / f"{choice}.npz"
        result = run_cli(
            "ntk",
            str(RELU),
            "--inputs",
            str(tmp_path / "x.npz"),
            "--parameterization",
            choice,
            "-o",
            str(output),
        )
        assert result.code == 0, result.output
        kernels[choice] = np.load(output)["kernel"]
    function = _function(64, 0)
    expected = empirical_ntk(function, as_input_tensors(function, INPUTS, "x"), mode="trace")
    np.testing.assert_allclose(kernels["ntk"], expected, rtol=1e-6)  # the spec says ntk already
    assert not np.allclose(kernels["standard"], kernels["ntk"], rtol=0.1)


def test_cli_during_training_records_the_kernel_change(tmp_path: Path) -> None:
    targets = np.random.default_rng(1).standard_normal((5, 1)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=INPUTS, y=targets)
    output = tmp_path / "k.npz"
    result = run_cli(
        "ntk",
        str(RELU),
        "--inputs",
        str(tmp_path / "data.npz"),
        "--during-training",
        "--steps",
        "20",
        "--lr",
        "0.5",
        "--record-every",
        "5",
        "-o",
        str(output),
    )
    assert result.code == 0, result.output
    assert "full-batch gradient descent, 20 steps at lr 0.5" in result.stdout
    with np.load(output) as arrays:
        assert list(arrays["steps"]) == [0, 5, 10, 15, 20]
        assert arrays["kernel_change"][0] == 0.0 and arrays["kernel_change"][-1] > 0
        assert arrays["loss"][-1] < arrays["loss"][0]
    assert (tmp_path / "k_change.png").read_bytes()[:4] == b"\x89PNG"
    missing = run_cli(
        "ntk", str(RELU), "--inputs", str(tmp_path / "data.npz"), "--during-training", "--targets", "z"
    )
    assert missing.code == 1 and "has no array 'z'" in missing.stderr


def test_dlc_train_loop_as_trainer_records_the_kernel_and_its_change_falls_with_width(
    tmp_path: Path, single_thread
) -> None:
    """`--trainer train`: dlc train's loop (the spec's training section: SGD on two moons,
    cross-entropy) trains the module whose kernel is measured after its optimizer steps."""
    from dlc.analysis.ntk_training import kernel_change_with_dlc_train

    points = {"x": np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)}
    changes = []
    for width in (16, 4096):
        history, result = kernel_change_with_dlc_train(
            SPECS / "moons_ntk.yaml",
            points,
            tmp_path / f"run{width}",
            overrides={"width": width, "training.epochs": 1},
            record_every=2,
        )
        assert result.progress.step == 6  # 280 training moons in batches of 50
        assert history.steps == [0, 2, 4, 6]
        assert history.change[0] == 0.0 and history.change[-1] > 0
        assert (tmp_path / f"run{width}" / "model.safetensors").is_file()
        changes.append(history.change[-1])
    assert changes[1] < changes[0] / 4, changes


def test_cli_during_training_with_dlc_train(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32))
    output = tmp_path / "k.npz"
    result = run_cli(
        "ntk",
        str(SPECS / "moons_ntk.yaml"),
        "--inputs",
        str(tmp_path / "x.npz"),
        "--during-training",
        "--trainer",
        "train",
        "--set",
        "training.epochs=1",
        "--record-every",
        "3",
        "-o",
        str(output),
    )
    assert result.code == 0, result.output
    assert f"dlc train (6 steps, run in {tmp_path / 'k_run'})" in result.stdout
    with np.load(output) as arrays:
        assert list(arrays["steps"]) == [0, 3, 6] and arrays["kernel_change"][-1] > 0
    clash = run_cli(
        "ntk",
        str(SPECS / "moons_ntk.yaml"),
        "--inputs",
        str(tmp_path / "x.npz"),
        "--during-training",
        "--trainer",
        "train",
        "--parameterization",
        "standard",
    )
    assert clash.code == 1 and "set `parameterization:` in the spec" in clash.stderr
