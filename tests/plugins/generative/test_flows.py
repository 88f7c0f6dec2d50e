"""Flows: every invertible block and flow inverts exactly (f^-1(f(x)) = x within 1e-5 in
ONNX Runtime and in the ejected torch module), `log_det` is log |det J| of the forward map
as autograd computes it (torch.func.jacrev, within 1e-4), and realnvp_moons is the
real-nvp-pytorch notebook's model: its state_dict loads with no renaming and both maps
agree with the notebook's f and g within 1e-5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dlc
from tests.conftest import SPECS
from tests.plugins.generative.flows import compile_text, notebook_realnvp, torch_run

MOONS = SPECS / "generative" / "realnvp_moons.yaml"

VECTOR_NETS = """
blocks:
  mlp:
    params: {dim: int}
    body:
      - linear: 32
      - leaky_relu
      - linear: "${dim}"
"""

IMAGE_NETS = """
blocks:
  conv_net:
    params: {channels: int}
    body:
      - conv2d: {out: 8, kernel: 3, padding: 1}
      - relu
      - conv2d: {out: "${channels}", kernel: 3, padding: 1}
"""


def flow_spec(shape: str, steps: str, nets: str = VECTOR_NETS) -> str:
    return f"""dlc: 1
name: test_flow
inputs:
  x: {{shape: {shape}}}
{nets}
layers:
  - flow:
      steps:
{steps}
    id: flow
outputs: {{z: flow.z, log_det: flow.log_det}}
"""


def coupling(kind: str, mask: str, parity: int, dim: int, extra: str = "") -> str:
    nets = f"s: {{template: mlp, args: {{dim: {dim}}}}}, " if kind == "affine_coupling" else ""
    return (
        f"        - {kind}: {{mask: {mask}, parity: {parity}, {nets}"
        f"t: {{template: mlp, args: {{dim: {dim}}}}}{extra}}}\n"
    )


def image_coupling(mask: str, parity: int, channels: int) -> str:
    net = f"{{template: conv_net, args: {{channels: {channels}}}}}"
    return (
        f"        - affine_coupling: {{mask: {mask}, parity: {parity}, s: {net}, t: {net}, tanh_s: true}}\n"
    )


FLOW_2D = flow_spec(
    "[N, 2]",
    "        - actnorm\n"
    + coupling("affine_coupling", "alternate", 0, 2, ", tanh_s: true")
    + "        - reverse\n"
    + coupling("affine_coupling", "alternate", 1, 2, ", form: inverse_affine")
    + coupling("additive_coupling", "alternate", 0, 2)
    + coupling("affine_coupling", "[0, 1]", 0, 2),
)
FLOW_8D = flow_spec(
    "[N, 8]",
    coupling("affine_coupling", "halves", 0, 8, ", tanh_s: true")
    + coupling("affine_coupling", "halves", 1, 8)
    + "        - permute: [3, 7, 0, 1, 6, 2, 5, 4]\n"
    + coupling("additive_coupling", "alternate", 0, 8)
    + "        - invertible_conv1x1\n"
    + coupling("affine_coupling", "alternate", 1, 8, ", form: inverse_affine"),
)
FLOW_IMAGE = flow_spec(
    "[N, 4, 4, 4]",
    "        - actnorm\n"
    + image_coupling("checkerboard", 0, 4)
    + "        - invertible_conv1x1\n"
    + image_coupling("checkerboard", 1, 4)
    + "        - reverse\n"
    + image_coupling("channel", 0, 4)
    + image_coupling("channel", 1, 4),
    IMAGE_NETS,
)
SINGLE_BLOCKS = {
    "affine_coupling": flow_spec("[N, 3]", coupling("affine_coupling", "halves", 0, 3, ", tanh_s: true")),
    "affine_coupling_inverse_affine": flow_spec(
        "[N, 3]", coupling("affine_coupling", "[1, 0, 1]", 0, 3, ", form: inverse_affine")
    ),
    "additive_coupling": flow_spec("[N, 3]", coupling("additive_coupling", "alternate", 1, 3)),
    "actnorm": flow_spec("[N, 3, 2, 2]", "        - actnorm\n"),
    "actnorm_vector": flow_spec("[N, 3]", "        - actnorm\n"),
    "invertible_conv1x1": flow_spec("[N, 4, 3, 3]", "        - invertible_conv1x1\n"),
    "invertible_conv1x1_vector": flow_spec("[N, 5]", "        - invertible_conv1x1\n"),
    "permute": flow_spec("[N, 4]", "        - permute: [2, 0, 3, 1]\n"),
    "reverse": flow_spec("[N, 4, 2, 2]", "        - reverse\n"),
}
FLOWS = {"flow_2d": FLOW_2D, "flow_8d": FLOW_8D, "flow_image": FLOW_IMAGE, **SINGLE_BLOCKS}


def perturbed(model: dlc.CompiledModel) -> dlc.CompiledModel:
    """The model with every trainable weight moved off its initialization (actnorm starts
    as the identity), the masks left as they are."""
    rng = np.random.default_rng(7)
    trainable = {n.attrs.name for n in model.lowered.graph.parameters() if n.attrs.trainable}
    weights = {
        name: (value + 0.2 * rng.standard_normal(value.shape)).astype(np.float32)
        if name in trainable
        else value
        for name, value in model.weights().items()
    }
    return dlc.compile(model.spec, weights=weights)


def _sample(model: dlc.CompiledModel, batch: int = 5) -> np.ndarray:
    (node,) = model.graph.inputs()
    shape = [batch, *(int(d) for d in node.output.type.shape[1:])]
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_inverse_undoes_the_forward_map_in_onnx_runtime_and_torch(name: str, tmp_path: Path) -> None:
    forward = perturbed(compile_text(tmp_path, FLOWS[name]))
    inverse = forward.inverse()
    assert [n.attrs.name for n in inverse.graph.inputs()] == ["z"]
    assert list(inverse.graph.outputs) == ["x", "log_det"]
    x = _sample(forward)
    for run in (lambda model, inputs: model.run(inputs), torch_run):
        z = run(forward, {"x": x})
        back = run(inverse, {"z": z["z"]})
        assert np.abs(back["x"] - x).max() <= 1e-5
        assert np.abs(z["z"] - x).max() > 1e-3  # the map is not the identity
        # log |det d f^-1 / dz| at z = f(x) is minus the forward one
        assert np.abs(back["log_det"] + z["log_det"]).max() <= 1e-5


def _autograd_log_det(module: torch.nn.Module, x: torch.Tensor) -> float:
    def flat_map(v: torch.Tensor) -> torch.Tensor:
        return module(v.reshape(x.shape))[0].reshape(-1)

    jacobian = torch.func.jacrev(flat_map)(x.reshape(-1))
    return float(torch.linalg.slogdet(jacobian.detach().double()).logabsdet)


@pytest.mark.parametrize("name", ["flow_2d", "flow_8d", "flow_image"])
def test_log_det_is_log_abs_det_of_the_jacobian(name: str, tmp_path: Path) -> None:
    model = perturbed(compile_text(tmp_path, FLOWS[name]))
    module = model.torch_module()
    x = torch.from_numpy(_sample(model, batch=3))
    with torch.no_grad():
        _, log_det = module(x)
    onnx_log_det = model.run({"x": x.numpy()})["log_det"]
    for row in range(3):
        expected = _autograd_log_det(module, x[row : row + 1])
        assert abs(expected) > 1e-2  # a flow that changes volume
        assert abs(float(log_det[row]) - expected) <= 1e-4
        assert abs(float(onnx_log_det[row]) - expected) <= 1e-4


def test_realnvp_moons_counts_match_the_reference() -> None:
    summary = dlc.compile(MOONS, opt_level=0).summary()
    assert summary.params == 804_888  # trainable: reference_models.json
    assert summary.buffers == 12  # the masks, [6, 2]
    assert summary.macs == 798_720


def test_realnvp_moons_is_the_notebooks_model() -> None:
    reference = notebook_realnvp()
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    forward = dlc.compile(MOONS, weights=state)
    assert sorted(forward.weights()) == sorted(state)  # no renaming: s.K.J, t.K.J, mask
    inverse = forward.inverse()
    x = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
    z = np.random.default_rng(1).standard_normal((64, 2)).astype(np.float32)
    with torch.no_grad():
        expected_z, expected_log_det = (t.numpy() for t in reference.f(torch.from_numpy(x)))
        expected_x = reference.g(torch.from_numpy(z)).numpy()
    for run in (lambda model, inputs: model.run(inputs), torch_run):
        out = run(forward, {"x": x})
        assert np.abs(out["z"] - expected_z).max() <= 1e-5
        assert np.abs(out["log_det"] - expected_log_det).max() <= 1e-5
        assert np.abs(run(inverse, {"z": z})["x"] - expected_x).max() <= 1e-5
        assert np.abs(run(inverse, {"z": out["z"]})["x"] - x).max() <= 1e-5


def test_flow_outputs_are_found_by_name_in_both_directions() -> None:
    from dlc.plugins.generative.flow_outputs import FlowOutputs, flow_outputs, outputs_by_name

    forward = dlc.compile(MOONS)
    assert flow_outputs(forward) == FlowOutputs("z", "log_det")
    assert flow_outputs(forward.inverse()) == FlowOutputs("x", "log_det")
    x = torch.zeros(3, 2)
    with torch.no_grad():
        named = outputs_by_name(forward, forward.torch_module()(x))
    assert set(named) == {"z", "log_det"} and tuple(named["log_det"].shape) == (3,)
