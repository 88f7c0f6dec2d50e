"""specs/generative/ddpm_cifar10.yaml is diffusers' UNet2DModel with google/ddpm-cifar10-32's
configuration: the same parameter count and MACs as the reference, diffusers' state_dict
keys, and the same predicted noise, within 1e-4 relative to the output's scale, in ONNX
Runtime and in the ejected model.py after loading a diffusers state_dict with no renaming.

The parity runs use an 8x8 U-Net with narrower levels (`SMALL`); `DLC_FULL_REFERENCES=1`
runs the full 35.7M-parameter model too."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import dlc
from dlc.plugins.generative.timestep_embedding import timestep_frequencies
from dlc.runtime import Session
from dlc.spec.loader import load_spec
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


EMBEDDING_SPEC = """\
dlc: 1
name: embed
inputs:
  t: {{shape: [N]}}
layers:
  - timestep_embedding: {dim}
    in: t
    id: time_proj
"""


def diffusers_frequencies(dim: int) -> np.ndarray:
    """The frequencies diffusers' get_timestep_embedding computes (its one torch.exp call)."""
    from diffusers.models.embeddings import get_timestep_embedding

    calls: list[torch.Tensor] = []
    exp = torch.exp

    def recorded_exp(x: torch.Tensor) -> torch.Tensor:
        calls.append(exp(x))
        return calls[-1]

    with mock.patch.object(torch, "exp", recorded_exp):
        get_timestep_embedding(torch.tensor([1.0]), dim, flip_sin_to_cos=False, downscale_freq_shift=1)
    assert len(calls) == 1
    return calls[0].numpy()


@pytest.mark.parametrize("dim", [SMALL["channels"][0], FULL["channels"][0]])
def test_timestep_embedding_is_diffusers_bit_for_bit_but_for_sin_and_cos(dim: int) -> None:
    """The frequencies are diffusers' own float32 values (an ulp of a frequency is an angle
    error of up to 3e-5 at t = 900, which a DDIM sampler amplifies); the embedding then
    differs from diffusers' only by ONNX Runtime's sin and cos (an ulp), and not at all in
    the ejected torch module."""
    from diffusers.models.embeddings import get_timestep_embedding

    assert np.array_equal(timestep_frequencies(dim, 1.0), diffusers_frequencies(dim))
    model = dlc.compile(load_spec("embed.yaml", text=EMBEDDING_SPEC.format(dim=dim)))
    t = np.array([0.0, 1.0, 37.5, 250.0, 900.0, 999.0], np.float32)
    expected = get_timestep_embedding(torch.from_numpy(t), dim, flip_sin_to_cos=False, downscale_freq_shift=1)
    assert np.abs(model.run({"t": t})["time_proj"] - expected.numpy()).max() <= 1.2e-7  # two ulps of 1.0
    with torch.no_grad():
        assert torch.equal(model.torch_module()(torch.from_numpy(t)), expected)


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
