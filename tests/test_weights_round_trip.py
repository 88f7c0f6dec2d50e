"""Weights round trip: what `dlc compile -O0 --target torch` writes, `dlc compile --weights`
reads back, for every spec; PyTorch checkpoints are accepted; other files are refused with
the list of accepted formats."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import dlc
from tests.conftest import SPECS, run_cli
from tests.test_specs import ALL_SPECS, settings_for


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda p: str(p.relative_to(SPECS)))
def test_every_specs_O0_eject_loads_back_with_weights(spec: Path, tmp_path: Path) -> None:
    overrides = settings_for(spec)["set"]  # reduced sizes where full size is slow
    model = dlc.compile(spec, opt_level=0, seed=3, overrides=overrides)
    model.save(tmp_path / "pkg", target="torch")
    weights = tmp_path / "pkg" / "weights.safetensors"
    reloaded = dlc.compile(spec, opt_level=0, weights=weights, overrides=overrides)
    expected = model.weights()
    actual = reloaded.weights()
    assert sorted(actual) == sorted(expected)
    for name, array in expected.items():
        assert actual[name].shape == array.shape, name
        np.testing.assert_array_equal(actual[name], array, err_msg=name)


def test_batch_norm_package_round_trips_through_the_cli(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    result = run_cli("compile", "specs/cnn/resnet18.yaml", "-O0", "--target", "torch", "-o", str(package))
    assert result.code == 0, result.output
    state = load_file(str(package / "weights.safetensors"))
    assert state["bn1.num_batches_tracked"].shape == ()  # torch's shape, not [1]
    mode = stat.S_IMODE(os.stat(package / "weights.safetensors").st_mode)
    assert mode == stat.S_IMODE(os.stat(package / "model.py").st_mode)
    back = run_cli(
        "compile", "specs/cnn/resnet18.yaml", "--weights", str(package / "weights.safetensors"),
        "-o", str(tmp_path / "r.onnx"),
    )  # fmt: skip
    assert back.code == 0, back.output


def test_constants_stay_in_model_py_not_in_the_weights(tmp_path: Path) -> None:
    sizes = [
        "--set",
        "vocab=100",
        "--set",
        "d_model=16",
        "--set",
        "heads=2",
        "--set",
        "d_ff=32",
        "--set",
        "layers=1",
    ]
    spec = "specs/attention/transformer_base.yaml"
    package = tmp_path / "pkg"
    assert run_cli("compile", spec, "-O0", "--target", "torch", "-o", str(package), *sizes).code == 0
    state = load_file(str(package / "weights.safetensors"))
    assert not [k for k in state if k.startswith("constants.")]
    assert "persistent=False" in (package / "model.py").read_text()
    back = run_cli(
        "compile",
        spec,
        *sizes,
        "--weights",
        str(package / "weights.safetensors"),
        "-o",
        str(tmp_path / "t.onnx"),
    )
    assert back.code == 0, back.output


@pytest.mark.parametrize("wrapped", [False, True], ids=["state_dict", "under_state_dict_key"])
def test_pytorch_checkpoints_are_accepted(tmp_path: Path, wrapped: bool) -> None:
    model = dlc.compile(SPECS / "mlp.yaml", seed=5)
    state = {k: torch.from_numpy(v.copy()) for k, v in model.weights().items()}
    checkpoint = tmp_path / "mlp.pth"
    torch.save({"state_dict": state, "epoch": 3} if wrapped else state, checkpoint)
    output = tmp_path / "mlp.onnx"
    result = run_cli("compile", "specs/mlp.yaml", "--weights", str(checkpoint), "-o", str(output))
    assert result.code == 0, result.output
    reloaded = dlc.compile(SPECS / "mlp.yaml", weights=checkpoint)
    for name, array in model.weights().items():
        np.testing.assert_array_equal(reloaded.weights()[name], array)


def test_a_file_of_no_known_format_lists_the_accepted_ones(tmp_path: Path) -> None:
    for name, content in (("w.pth", b"not a checkpoint at all"), ("w.safetensors", b"\xff" * 64)):
        path = tmp_path / name
        path.write_bytes(content)
        result = run_cli("compile", "specs/mlp.yaml", "--weights", str(path), "-o", str(tmp_path / "m.onnx"))
        assert result.code == 1, result.output
        assert "neither safetensors nor a PyTorch checkpoint" in result.stderr
        assert "accepted: .safetensors" in result.stderr and "accepted: .pt / .pth / .bin" in result.stderr
        assert "header too large" not in result.stderr and "Traceback" not in result.output


def test_a_whole_pickled_module_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    result = run_cli("compile", "specs/mlp.yaml", "--weights", str(path), "-o", str(tmp_path / "m.onnx"))
    assert result.code == 1, result.output
    assert "torch.save(model.state_dict(), path)" in result.stderr


def test_a_safetensors_file_with_metadata_loads(tmp_path) -> None:
    """HF and `dlc train` write a `__metadata__` entry in the header: it is no tensor."""
    from safetensors.numpy import save_file

    from dlc.weights import read_weights_file

    path = tmp_path / "with_metadata.safetensors"
    save_file({"w": np.ones(3, dtype=np.float32)}, str(path), metadata={"format": "pt"})
    assert list(read_weights_file(path)) == ["w"]
