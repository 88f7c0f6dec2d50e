"""Runs that end early: an interrupted run resumed equals the uninterrupted one bit for bit
(on the CPU: weights, optimizer state, schedule, averaged weights, dropout's random state,
the place in the epoch); a non-finite loss stops the run and keeps the last good
checkpoint; Ctrl-C saves and exits with 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dlc.training.loop import TrainingStopped, train
from dlc.training.plan import plan_training
from tests.conftest import REPO

SPEC = """\
dlc: 1
name: moons_mlp
inputs:
  x: {shape: [N, 2]}
layers:
  - linear: 16
  - relu
  - dropout: 0.2
  - linear: 16
  - relu
  - linear: 2
training:
  data: {dataset: moons, options: {n_samples: 200, noise: 0.2}}
  objective: cross_entropy
  optimizer: {name: adam, lr: 0.01}
  schedule: {name: cosine, warmup_steps: 3}
  averaging: {name: exponential, beta: 0.1}
  epochs: 3
  batch_size: 16
  log_every: 1
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "moons_mlp.yaml"
    path.write_text(SPEC)
    return path


def _interrupt_at(step: int):
    def hook(current: int) -> None:
        if current == step:
            raise KeyboardInterrupt

    return hook


def test_a_resumed_run_equals_the_uninterrupted_one_bit_for_bit(spec: Path, tmp_path: Path) -> None:
    whole = train(plan_training(spec), tmp_path / "whole")
    assert whole.progress.step == 27 and not whole.interrupted  # 140 examples: 9 batches x 3 epochs
    interrupted = train(plan_training(spec), tmp_path / "parts", on_step=_interrupt_at(13))
    assert interrupted.interrupted and interrupted.progress.step == 13
    resumed = train(plan_training(spec), tmp_path / "parts", resume=True)
    assert resumed.progress.step == 27
    for name in ("model.safetensors", "checkpoint.safetensors"):
        expected, actual = (
            load_file(str(tmp_path / "whole" / name)),
            load_file(str(tmp_path / "parts" / name)),
        )
        assert sorted(expected) == sorted(actual)
        different = [key for key in expected if not torch.equal(expected[key], actual[key])]
        assert different == [], f"{name}: {different}"
    assert resumed.metrics == whole.metrics
    lines = (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines if '"train"' in line] == list(range(1, 28))


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(spec: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    saved: dict[str, bytes] = {}

    def poison(step: int) -> None:
        if step == 9:  # the end of epoch 1: its checkpoint is written after this step
            return
        if step == 11:
            saved["checkpoint"] = (run / "checkpoint.safetensors").read_bytes()
            with torch.no_grad():
                for parameter in trainer_modules()[0].parameters():
                    parameter.fill_(float("nan"))

    plan = plan_training(spec)
    trainer_modules = _capture_modules(plan)
    with pytest.raises(TrainingStopped) as stopped:
        train(plan, run, on_step=poison)
    message = str(stopped.value)
    assert "the loss became nan at step 12 (epoch 2)" in message
    assert f"the last good checkpoint is kept: {run / 'checkpoint.safetensors'}" in message
    assert (run / "checkpoint.safetensors").read_bytes() == saved["checkpoint"]
    progress = json.loads(_metadata(run / "checkpoint.safetensors")["progress"])
    assert progress["step"] == 9


def _capture_modules(plan):
    """The torch modules the trainer builds from the plan (it calls torch_module())."""
    built = []
    model = plan.models["model"]
    original = model.torch_module

    def torch_module():
        built.append(original())
        return built[-1]

    model.torch_module = torch_module
    return lambda: built


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()


def test_ctrl_c_saves_a_checkpoint_and_exits_130_and_resume_continues(spec: Path, tmp_path: Path) -> None:
    spec.write_text(
        SPEC.replace("epochs: 3", "epochs: 100000").replace(
            "  schedule: {name: cosine, warmup_steps: 3}\n", ""
        )
    )
    run = tmp_path / "run"
    command = [sys.executable, "-m", "dlc.cli", "train", str(spec), "--out", str(run)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 3) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert "interrupted; resume with: dlc train" in stderr
    step = json.loads(_metadata(run / "checkpoint.safetensors")["progress"])["step"]
    assert step >= 3 and (run / "model.safetensors").is_file()
    resumed = subprocess.run(
        [*command, "--resume", "--set", f"training.max_steps={step + 5}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads(_metadata(run / "checkpoint.safetensors")["progress"])["step"] == step + 5


LANGEVIN = """\
dlc: 1
name: linear_regression
inputs:
  x: {shape: [N, 2]}
layers:
  - linear: 1
training:
  data: {dataset: blobs, options: {n_samples: 200, centers: 1}, target: label}
  objective: mse
  optimizer: {name: sgld, lr: 0.001, burn_in: 5, thinning: 3}
  averaging: uniform
  epochs: 3
  batch_size: 20
"""


def test_a_resumed_langevin_run_keeps_its_noise_velocity_and_posterior_samples(tmp_path: Path) -> None:
    spec = tmp_path / "linear_regression.yaml"
    spec.write_text(LANGEVIN)
    train(plan_training(spec), tmp_path / "whole")
    train(plan_training(spec), tmp_path / "parts", on_step=_interrupt_at(11))
    train(plan_training(spec), tmp_path / "parts", resume=True)
    for name in ("model.safetensors", "posterior.safetensors", "checkpoint.safetensors"):
        expected, actual = (
            load_file(str(tmp_path / "whole" / name)),
            load_file(str(tmp_path / "parts" / name)),
        )
        assert sorted(expected) == sorted(actual)
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name
    samples = load_file(str(tmp_path / "whole" / "posterior.safetensors"))
    assert int(samples["steps_seen"]) == 21  # samples after steps 8, 11, 14, 17, 20
    assert {key.split("/")[0] for key in samples if "/" in key} == {"0", "1", "2", "3", "4"}
