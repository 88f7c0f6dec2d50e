"""`share: LAYER` (issue 10 item 3): a layer reuses every parameter of an earlier one. A
Siamese network is two calls of one template; each shared tensor is one IR parameter, one
ONNX initializer and one torch state_dict key. Misuse is a located error. Tolerance: 1e-5
relative to the output scale."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

import dlc
from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.language.parity import assert_parity, compile_text, compile_with_weights, random_state, write_spec

SIAMESE = """
dlc: 1
name: siamese
inputs:
  a: {shape: [N, 3, 8, 8]}
  b: {shape: [N, 3, 8, 8]}
blocks:
  tower:
    body:
      - conv2d: {out: 4, kernel: 3, padding: 1}
        id: conv
      - batch_norm:
        id: bn
      - relu
      - global_avg_pool: {keepdims: false}
      - linear: 5
        id: fc
layers:
  - tower:
    in: a
    id: left
  - tower:
    in: b
    id: right
    share: left
  - sub:
    in: [left, right]
    id: distance
outputs: [left, right, distance]
"""

KEYS = [
    "left.conv.weight",
    "left.conv.bias",
    "left.bn.weight",
    "left.bn.bias",
    "left.bn.running_mean",
    "left.bn.running_var",
    "left.bn.num_batches_tracked",
    "left.fc.weight",
    "left.fc.bias",
]


class Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def test_siamese_towers_have_one_tensor_per_shared_parameter(tmp_path) -> None:
    model = compile_text(SIAMESE, opt_level=0)
    assert [n.attrs.name for n in model.graph.parameters()] == KEYS
    initializers = [
        t.name for t in model.onnx_model().graph.initializer if "/" not in t.name
    ]  # not constants
    assert initializers == KEYS
    assert set(model.torch_module().state_dict()) <= set(KEYS)
    assert model.summary().params == 4 * 27 + 4 + 8 + 5 * 4 + 5  # counted once
    assert_parity(model, tmp_path)


def test_siamese_network_matches_one_torch_module_applied_twice(tmp_path) -> None:
    reference = Tower().eval()
    state = random_state(reference)
    weights = {f"left.{k}": v.numpy() for k, v in state.items()}
    a, b = (np.random.default_rng(seed).standard_normal((2, 3, 8, 8)).astype(np.float32) for seed in (0, 1))
    with torch.no_grad():
        expected_a, expected_b = (reference(torch.from_numpy(x)).numpy() for x in (a, b))
    for level in (0, 2):
        model = compile_with_weights(SIAMESE, weights, tmp_path, opt_level=level)
        outputs = model.run({"a": a, "b": b}, provider="cpu")
        assert max_relative_error(expected_a, outputs["left"]) <= 1e-5
        assert max_relative_error(expected_b, outputs["right"]) <= 1e-5
        same = model.run({"a": a, "b": a}, provider="cpu")["distance"]
        assert np.abs(same).max() == 0.0
        assert_parity(model, tmp_path / f"O{level}")


def test_share_works_on_single_blocks_and_through_the_cli(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: shared_linear
        inputs:
          x: {shape: [N, 6]}
        layers:
          - linear: 6
            id: fc
          - relu
          - linear: 6
            share: fc
            id: again
        """,
    )
    result = run_cli("compile", str(path), "-o", str(tmp_path / "m.onnx"))
    assert result.code == 0, result.output
    names = [t.name for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer if "fc" in t.name]
    assert sorted(names) == ["fc.bias", "fc.weight"]
    model = dlc.compile(path)
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    weights = model.weights()
    hidden = np.maximum(x @ weights["fc.weight"].T + weights["fc.bias"], 0)
    expected = hidden @ weights["fc.weight"].T + weights["fc.bias"]
    assert max_relative_error(expected, model.run({"x": x}, provider="cpu")["again"]) <= 1e-5


def test_tie_keeps_working_next_to_share() -> None:
    model = compile_text(
        """
        dlc: 1
        name: tied
        inputs:
          ids: {shape: [N, T], dtype: int64}
        layers:
          - embedding: {vocab: 11, dim: 6}
            id: wte
          - linear: {out: 6}
            id: mix
          - linear: {out: 6}
            share: mix
          - linear: {out: 11, bias: false, tie: wte}
        """
    )
    assert [n.attrs.name for n in model.graph.parameters()] == ["wte.weight", "mix.weight", "mix.bias"]


def test_misused_share_is_a_located_error(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: bad
        inputs:
          x: {shape: [N, 6]}
        layers:
          - linear: 4
            id: fc
          - linear: 4
            share: fc
          - relu:
            share: fc
            in: x
          - linear: {out: 4, bias: false}
            share: fc
            in: x
          - linear: 4
            share: fcc
            in: x
          - linear: 4
            share: later
            in: x
          - linear: 4
            id: later
            in: x
        """,
    )
    result = run_cli("validate", str(path))
    assert result.code == 1 and "Traceback" not in result.output
    out = result.output
    assert (
        f"{path}:9:5: error: linear layer 'linear_0': share: 'fc.weight' is float32[4, 6], but this " in out
    )
    assert f"{path}:12:12: error: share: layer 'relu_0' (relu) creates no parameters" in out
    assert f"{path}:15:12: error: share: layer 'linear_1' does not use 'fc.bias' of 'fc'" in out
    assert f"{path}:18:12: error: share: no layer 'fcc' with parameters" in out and "did you mean 'fc'" in out
    assert f"{path}:21:12: error: share: no layer 'later' with parameters is defined before" in out


def test_repeat_iterations_can_share_the_first_ones_weights(tmp_path) -> None:
    """ALBERT-style cross-layer sharing: `share` is an expression, None for the owner."""
    model = compile_text(
        """
        dlc: 1
        name: albert_like
        inputs:
          x: {shape: [N, 6]}
        layers:
          - repeat: 3
            as: i
            id: layers
            body:
              - linear: 6
                share: "${'layers.0.linear_0' if i > 0 else None}"
              - relu
        """
    )
    assert [n.attrs.name for n in model.graph.parameters()] == [
        "layers.0.linear_0.weight",
        "layers.0.linear_0.bias",
    ]
    weights = model.weights()
    x = np.random.default_rng(3).standard_normal((2, 6)).astype(np.float32)
    expected = x
    for _ in range(3):
        expected = np.maximum(
            expected @ weights["layers.0.linear_0.weight"].T + weights["layers.0.linear_0.bias"], 0
        )
    assert max_relative_error(expected, model.run({"x": x}, provider="cpu")["layers"]) <= 1e-5
    assert_parity(model, tmp_path)
