"""specs/generative/ddpm_cifar10.yaml is diffusers' UNet2DModel with google/ddpm-cifar10-32's
configuration: the same parameter count and MACs as the reference, diffusers' state_dict
keys, and the same predicted noise, within 1e-4 relative to the output's scale, in ONNX
Runtime and in the ejected model.py after loading a diffusers state_dict with no renaming.

The parity runs use an 8x8 U-Net with narrower levels (`SMALL`); `DLC_FULL_REFERENCES=1`
runs the full 35.7M-parameter model too."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.runtime import Session
from dlc.testing import max_relative_error
from tests.language.parity import ejected_outputs

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("safetensors")

from tests.plugins.generative.ddpm_reference import FULL, SMALL, SPEC, diffusers_unet, save_state_dict  # noqa: E402

TOLERANCE = 1e-4
TIMESTEPS = [0.0, 1.0, 250.0, 999.0, 37.5]  # several timesteps, one fractional
FULL_SIZE = os.environ.get("DLC_FULL_REFERENCES") == "1"
# ../shared/reference_models.json, "DDPM U-Net" (CIFAR-10 32x32, Ho et al. 2020).
REFERENCE_PARAMETERS = 35_746_307
REFERENCE_MACS = 6_221_856_768  # convs, linears and the attention products, batch 1


def test_full_size_parameters_and_macs_are_the_reference() -> None:
    summary = dlc.compile(SPEC, opt_level=0).summary()
    assert (summary.params, summary.macs) == (REFERENCE_PARAMETERS, REFERENCE_MACS)


def test_full_size_parameter_names_and_shapes_are_diffusers_state_dict() -> None:
    """Checked without drawing weights: the IR's parameters against diffusers' module."""
    with torch.device("meta"):
        reference = diffusers_unet(FULL)
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    graph = dlc.compile(SPEC, opt_level=0).lowered.graph
    ours = {n.attrs.name: tuple(int(d) for d in n.output.type.shape) for n in graph.parameters()}
    assert ours == expected


def outputs_of_both(model: dlc.CompiledModel, reference: torch.nn.Module, size: int, batch: int = 2):
    rng = np.random.default_rng(3)
    sample = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    session = Session(model.onnx_model(), "cpu")
    for t in TIMESTEPS:
        timestep = np.full((batch,), t, np.float32)
        with torch.no_grad():
            expected = reference(torch.from_numpy(sample), torch.from_numpy(timestep)).sample.numpy()
        yield t, sample, timestep, expected, session.run({"sample": sample, "timestep": timestep})["conv_out"]


@pytest.mark.parametrize("level", [0, 2])
def test_onnx_runtime_matches_diffusers_after_loading_its_state_dict(tmp_path: Path, level: int) -> None:
    reference = diffusers_unet(SMALL, seed=1)
    weights = save_state_dict(reference, tmp_path / "unet.safetensors")
    model = dlc.compile(SPEC, overrides=SMALL, weights=weights, opt_level=level)
    for t, _, _, expected, actual in outputs_of_both(model, reference, SMALL["size"]):
        assert np.abs(expected).max() > 0.1, "a degenerate reference output proves nothing"
        assert max_relative_error(expected, actual) <= TOLERANCE, f"t = {t}"


def test_per_sample_timesteps_match_diffusers(tmp_path: Path) -> None:
    reference = diffusers_unet(SMALL, seed=2)
    model = dlc.compile(SPEC, overrides=SMALL, weights=save_state_dict(reference, tmp_path / "u.safetensors"))
    sample = np.random.default_rng(4).standard_normal((3, 3, 8, 8)).astype(np.float32)
    timestep = np.array([3.0, 500.0, 990.0], np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(sample), torch.from_numpy(timestep)).sample.numpy()
    actual = model.run({"sample": sample, "timestep": timestep})["conv_out"]
    assert max_relative_error(expected, actual) <= TOLERANCE


def test_ejected_module_loads_diffusers_state_dict_strictly_and_matches(tmp_path: Path) -> None:
    import importlib.util

    reference = diffusers_unet(SMALL, seed=5)
    dlc.compile(SPEC, overrides=SMALL, opt_level=0).save(tmp_path, target="torch")
    module_spec = importlib.util.spec_from_file_location("ejected_ddpm_unet", tmp_path / "model.py")
    assert module_spec is not None and module_spec.loader is not None
    ejected = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(ejected)
    network = ejected.load_model()
    network.load_state_dict(reference.state_dict(), strict=True)
    sample = torch.from_numpy(np.random.default_rng(6).standard_normal((2, 3, 8, 8)).astype(np.float32))
    for t in TIMESTEPS:
        timestep = torch.full((2,), t)
        with torch.no_grad():
            expected, actual = reference(sample, timestep).sample.numpy(), network(sample, timestep).numpy()
        assert max_relative_error(expected, actual) <= TOLERANCE, f"t = {t}"


@pytest.mark.skipif(not FULL_SIZE, reason="full-size DDPM U-Net: set DLC_FULL_REFERENCES=1")
def test_full_size_matches_diffusers_in_onnx_runtime_and_torch(tmp_path: Path) -> None:
    reference = diffusers_unet(FULL, seed=0)
    model = dlc.compile(SPEC, weights=save_state_dict(reference, tmp_path / "unet.safetensors"))
    for t, sample, timestep, expected, actual in outputs_of_both(model, reference, 32, batch=1):
        assert max_relative_error(expected, actual) <= TOLERANCE, f"onnx, t = {t}"
        ejected = ejected_outputs(model, tmp_path / f"eject_{t}", {"sample": sample, "timestep": timestep})
        assert max_relative_error(expected, ejected["conv_out"]) <= TOLERANCE, f"torch, t = {t}"
        break  # one timestep through the ejected module is enough at full size
