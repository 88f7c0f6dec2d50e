"""The sequence helpers: highway layers, sequence masks and per-step application, each in
ONNX Runtime and in the ejected module against a direct computation (tolerance 1e-5)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import dlc
from dlc.spec.loader import load_spec


def compile_text(text: str) -> dlc.CompiledModel:
    return dlc.compile(load_spec("spec.yaml", text=textwrap.dedent(text)))


def both(model: dlc.CompiledModel, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(ONNX Runtime, ejected module) outputs of a one-output model."""
    (onnx_output,) = model.run(inputs, provider="cpu").values()
    with torch.no_grad():
        torch_output = model.torch_module()(*(torch.from_numpy(a) for a in inputs.values()))
    return onnx_output, torch_output.numpy()


def test_highway_computes_its_formula_with_torch_linears() -> None:
    model = compile_text(
        """
        dlc: 1
        name: highway
        inputs: {x: {shape: [N, T, 8]}}
        layers:
          - highway: {layers: 2, activation: relu}
            id: highway
        """
    )
    weights = {k: torch.from_numpy(v) for k, v in model.weights().items()}
    assert model.summary().params == 2 * 2 * (8 * 8 + 8)
    assert np.all(model.weights()["highway.1.gate.bias"] == -2.0)
    x = np.random.default_rng(0).standard_normal((3, 5, 8)).astype(np.float32)
    expected = torch.from_numpy(x)
    for layer in range(2):

        def linear(name: str, v: torch.Tensor, layer: int = layer) -> torch.Tensor:
            prefix = f"highway.{layer}.{name}"
            return torch.nn.functional.linear(v, weights[f"{prefix}.weight"], weights[f"{prefix}.bias"])

        gate = torch.sigmoid(linear("gate", expected))
        expected = gate * torch.relu(linear("transform", expected)) + (1 - gate) * expected
    for output in both(model, {"x": x}):
        assert np.abs(output - expected.numpy()).max() <= 1e-5
    assert "self.highway[1].transform = nn.Linear(8, 8)" in model.torch_source()


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("dtype", ["bool", "float32"])
def test_sequence_mask_is_true_before_each_length(batch_first: bool, dtype: str) -> None:
    sequence = "[N, T, 4, 2]" if batch_first else "[T, N, 4, 2]"
    model = compile_text(
        f"""
        dlc: 1
        name: mask
        inputs:
          x: {{shape: {sequence}}}
          lengths: {{shape: [N], dtype: int32}}
        layers:
          - sequence_mask: {{batch_first: {str(batch_first).lower()}, dtype: {dtype}}}
            in: [lengths, x]
        """
    )
    lengths = np.array([3, 1, 5], dtype=np.int32)
    expected = np.arange(5)[None, :] < lengths[:, None]  # [N, T]
    expected = (expected if batch_first else expected.T)[:, :, None, None]
    shape = (3, 5, 4, 2) if batch_first else (5, 3, 4, 2)
    x = np.zeros(shape, dtype=np.float32)
    for output in both(model, {"x": x, "lengths": lengths}):
        assert output.dtype == np.dtype(dtype) and output.shape == expected.shape
        assert np.array_equal(output, expected.astype(dtype))


@pytest.mark.parametrize("sizes", [(3, 5), (1, 7)])
def test_time_distributed_applies_the_block_at_every_step(sizes: tuple[int, int], tmp_path) -> None:
    """batch_norm normalizes dim 1, so on [N, T, C] it needs the steps as a batch: [N*T, C]."""
    spec = tmp_path / "per_step.yaml"
    spec.write_text(
        textwrap.dedent(
            """
            dlc: 1
            name: per_step
            inputs: {x: {shape: [N, T, 6]}}
            layers:
              - time_distributed: {block: batch_norm, options: {eps: 0.001}}
                id: norm
            """
        )
    )
    torch.manual_seed(0)
    reference = torch.nn.BatchNorm1d(6, eps=0.001).eval()
    for tensor in (reference.weight, reference.bias, reference.running_mean):
        tensor.data.normal_()
    reference.running_var.data.uniform_(0.5, 2.0)
    weights = tmp_path / "weights.safetensors"
    save_file({f"norm.batch_norm.{k}": v for k, v in reference.state_dict().items()}, str(weights))
    model = dlc.compile(spec, weights=weights)
    x = np.random.default_rng(1).standard_normal((*sizes, 6)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x).reshape(-1, 6)).reshape(*sizes, 6).numpy()
    for output in both(model, {"x": x}):
        assert np.abs(output - expected).max() <= 1e-5
