"""Devices and precision: bfloat16 autocast applies on CUDA only (on the CPU it is ignored
and training is float32); CUDA training skips cleanly where torch sees no GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dlc.training.loop import train
from dlc.training.plan import plan_training

SPEC = """\
dlc: 1
name: blobs_mlp
inputs:
  x: {shape: [N, 2]}
layers:
  - linear: 16
  - relu
  - linear: 3
training:
  data: {dataset: blobs, options: {n_samples: 300}}
  objective: cross_entropy
  optimizer: {name: adam, lr: 0.01}
  epochs: 5
  batch_size: 32
  precision: bfloat16
"""


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
        ),
    ],
)
def test_bfloat16_training_saves_float32_weights_that_classify(tmp_path: Path, device: str) -> None:
    spec = tmp_path / "blobs_mlp.yaml"
    spec.write_text(SPEC)
    result = train(plan_training(spec, overrides={"training.device": device}), tmp_path / "run")
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
    assert result.metrics["test"]["accuracy"] >= 0.9


def test_asking_for_cuda_without_a_gpu_is_an_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    from tests.conftest import run_cli

    spec = tmp_path / "blobs_mlp.yaml"
    spec.write_text(SPEC)
    result = run_cli("train", str(spec), "--out", str(tmp_path / "run"), "--set", "training.device=cuda")
    assert result.code == 1
    assert "training.device is cuda, but torch sees no CUDA device" in result.stderr
