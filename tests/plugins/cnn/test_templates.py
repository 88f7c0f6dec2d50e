"""The CNN template library against reference torch modules: random weights and batch-norm
statistics are saved from the reference under dlc's parameter names, loaded with
`dlc.compile(weights=...)` (which fails on any missing or extra name), and the outputs
compared in ONNX Runtime (float32, 1e-5 relative to the output's scale)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

import dlc
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.plugins.cnn.references import (
    BasicBlock,
    Bottleneck,
    WaveNetBlock,
    inputs,
    randomize,
    save_state_dict,
)


def compile_text(text: str, weights: Path) -> dlc.CompiledModel:
    return dlc.compile(load_spec("t.yaml", text=textwrap.dedent(text)), weights=weights, opt_level=0)


def block_spec(shape: list, layer: str) -> str:
    return f"dlc: 1\nname: t\ninputs:\n  x: {{shape: {shape}}}\nlayers:\n  - {layer}\n    id: block\n"


@pytest.mark.parametrize(
    ("reference", "layer", "shape"),
    [
        (lambda: BasicBlock(8, 16, stride=2), "basic_block: {planes: 16, stride: 2}", [2, 8, 9, 9]),
        (lambda: BasicBlock(8, 8), "basic_block: 8", [1, 8, 6, 6]),
        (lambda: Bottleneck(16, 8, stride=2), "bottleneck: {planes: 8, stride: 2}", [2, 16, 7, 7]),
        (lambda: Bottleneck(8, 8), "bottleneck: 8", [1, 8, 5, 5]),
    ],
    ids=["basic-projection", "basic-identity", "bottleneck-projection-v1.5", "bottleneck-expanding"],
)
def test_residual_blocks_are_torchvisions(reference, layer: str, shape: list[int], tmp_path: Path) -> None:
    """Same names as torchvision (`downsample.0` / `.1` included), same outputs."""
    module = randomize(reference())
    weights = save_state_dict(module, tmp_path / "w.safetensors", prefix="block.")
    model = compile_text(block_spec(["N", *shape[1:]], layer), weights)
    x = inputs(*shape)
    expected = module(torch.from_numpy(x)).detach().numpy()
    assert max_relative_error(expected, model.run({"x": x}, "cpu")["block"]) <= 1e-5


WAVENET = """
dlc: 1
name: t
inputs:
  x: {shape: [N, 4, T]}
layers:
  - wavenet_block: {dilation: 4, residual_channels: 4, dilation_channels: 6, skip_channels: 5}
    id: block
outputs: {residual: block, skip: block.skip}
"""


def test_wavenet_block_has_residual_and_skip_outputs(tmp_path: Path) -> None:
    reference = randomize(WaveNetBlock(4, residual=4, dilation_channels=6, skip=5))
    weights = save_state_dict(reference, tmp_path / "w.safetensors", prefix="block.")
    model = compile_text(WAVENET, weights)
    x = inputs(2, 4, 11)
    residual, skip = (t.detach().numpy() for t in reference(torch.from_numpy(x)))
    outputs = model.run({"x": x}, "cpu")
    assert max_relative_error(residual, outputs["residual"]) <= 1e-5
    assert max_relative_error(skip, outputs["skip"]) <= 1e-5


def test_inception_modules_concatenate_their_branches() -> None:
    text = block_spec(
        ["N", 8, 7, 7], "inception: {c1: 2, c3_reduce: 3, c3: 4, c5_reduce: 2, c5: 5, pool_proj: 6}"
    )
    model = dlc.compile(load_spec("t.yaml", text=text), opt_level=0)  # the spec's layers, unfused
    assert model.graph.outputs["block"].type.shape[1:] == (17, 7, 7)
    names = {name: array.shape for name, array in model.weights().items()}
    assert names["block.branch3.1.conv.weight"] == (5, 2, 5, 5)  # the paper's true 5x5
    assert names["block.branch4.1.conv.bias"] == (6,)
    torchvision = dlc.compile(
        load_spec("t.yaml", text=text.replace("inception:", "inception_bn:")), opt_level=0
    )
    shapes = {name: array.shape for name, array in torchvision.weights().items()}
    assert shapes["block.branch3.1.conv.weight"] == (5, 2, 3, 3)  # torchvision's 3x3 "5x5" branch
    assert "block.branch3.1.conv.bias" not in shapes
    assert shapes["block.branch3.1.bn.running_var"] == (5,)
