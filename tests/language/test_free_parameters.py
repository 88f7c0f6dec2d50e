"""The `parameter` block (issue 10 item 2): a learned tensor with a shape (expressions
allowed), an initializer, its exact state_dict key with `name:`, and `trainable: false`
for buffers. ConvNeXt's layer scale is written with it (plugins/cnn/templates.yaml) and
matches a torch reference with the same names. Tolerances: 1e-5 relative to the output."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import dlc
from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.language.parity import assert_parity, compile_text, compile_with_weights, random_state, write_spec

PARAMETERS = """
dlc: 1
name: free_parameters
inputs:
  x: {shape: [N, 4, 3, 3]}
params:
  channels: 4
layers:
  - parameter: {shape: ["${channels}", 1, 1], init: {constant: 0.25}, name: gamma}
    id: gamma
  - parameter: {shape: [1, "${channels}", 1, 1], init: {trunc_normal: {std: 0.02}}}
    id: shift
  - parameter: {shape: ["${channels}", 1, 1], init: ones, trainable: false, name: running_scale}
    id: scale
  - parameter: {shape: [64, 16], init: {uniform: {low: -0.5, high: 0.25}}}
    id: table
  - parameter: {shape: [256, 8], init: {normal: {std: 3.0, mean: 1.0}}}
    id: wide
  - mul:
    in: [x, gamma, scale]
  - add:
    in: [mul_0, shift]
    id: out
outputs: [out, table, wide]
"""


def test_parameter_names_initializers_and_buffers(tmp_path) -> None:
    model = compile_text(PARAMETERS)
    weights = model.weights()
    assert list(weights) == ["gamma", "shift.weight", "running_scale", "table.weight", "wide.weight"]
    np.testing.assert_array_equal(weights["gamma"], np.full((4, 1, 1), 0.25, np.float32))
    np.testing.assert_array_equal(weights["running_scale"], np.ones((4, 1, 1), np.float32))
    assert np.abs(weights["shift.weight"]).max() <= 0.04 + 1e-7  # truncated at 2 std
    table = weights["table.weight"]
    assert table.min() >= -0.5 and table.max() < 0.25 and table.std() > 0.1
    wide = weights["wide.weight"]
    assert abs(wide.mean() - 1.0) < 0.3 and abs(wide.std() - 3.0) < 0.3
    summary = model.summary()
    assert summary.params == 4 + 4 + 64 * 16 + 256 * 8 and summary.buffers == 4
    module = model.torch_module()
    assert "running_scale" in dict(module.named_buffers())
    assert "running_scale" not in dict(module.named_parameters())
    assert {"gamma", "shift.weight"} <= set(dict(module.named_parameters()))
    assert_parity(model, tmp_path)


def test_parameter_names_inside_templates_are_scoped_to_the_template(tmp_path) -> None:
    model = compile_text(
        """
        dlc: 1
        name: scoped
        inputs:
          x: {shape: [N, 6]}
        blocks:
          scaled:
            body:
              - linear: 6
                id: fc
              - parameter: {shape: [6], init: ones, name: gamma}
              - mul:
                in: [fc, parameter_0]
        layers:
          - repeat: 2
            id: layers
            body: [scaled]
        """,
        opt_level=0,
    )
    names = [n.attrs.name for n in model.graph.parameters()]
    assert names == [
        "layers.0.fc.weight",
        "layers.0.fc.bias",
        "layers.0.gamma",
        "layers.1.fc.weight",
        "layers.1.fc.bias",
        "layers.1.gamma",
    ]
    assert_parity(model, tmp_path)


def test_misused_parameters_are_located_errors(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: bad
        inputs:
          x: {shape: [N, 4]}
        layers:
          - parameter: {shape: [4, 0]}
          - parameter: {shape: [4], init: {normal: {std: 1}, constant: 2}}
          - parameter: {shape: [4], init: {normal: {std: -1}}}
          - parameter: {shape: [4], init: xavier}
          - parameter: {shape: [4], name: "a b"}
          - parameter: {shape: [4], name: twice}
          - parameter: {shape: [4], name: twice}
          - parameter: [4]
            in: x
        """,
    )
    result = run_cli("validate", str(path))
    assert result.code == 1 and "Traceback" not in result.output
    out = result.output
    assert f"{path}:7:" in out and "dims must be >= 1, got [4, 0]" in out
    assert f"{path}:8:" in out and "give exactly one initializer, got ['constant', 'normal']" in out
    assert f"{path}:9:" in out and "greater than 0" in out
    assert f"{path}:10:" in out and "xavier" in out
    assert f"{path}:11:" in out and "name" in out
    assert f"{path}:13:5: error: parameter layer 'parameter_6': parameter name 'twice' is already used" in out
    assert f"{path}:15:" in out and "block 'parameter' takes no input" in out
    assert out.count("error:") == 7


# -- ConvNeXt, written with `if:` and `parameter` ------------------------------------------


class LayerNorm2d(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, *order: int) -> None:
        super().__init__()
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.order)


class Block(nn.Module):
    """torchvision's CNBlock (inference): the nn.Sequential `block`, then `layer_scale`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
            Permute(0, 2, 3, 1),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute(0, 3, 1, 2),
        )
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer_scale * self.block(x)


class Stage(nn.Module):
    def __init__(self, dim_in: int, dim: int, depth: int, first: bool) -> None:
        super().__init__()
        if not first:
            self.downsample_norm = LayerNorm2d(dim_in)
            self.downsample = nn.Conv2d(dim_in, dim, 2, 2)
        self.first = first
        self.blocks = nn.Sequential(*(Block(dim) for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.first:
            x = self.downsample(self.downsample_norm(x))
        return self.blocks(x)


class TinyConvNeXt(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, 4)
        self.stem_norm = LayerNorm2d(8)
        self.stage1 = Stage(8, 8, 2, first=True)
        self.stage2 = Stage(8, 16, 1, first=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage2(self.stage1(self.stem_norm(self.stem(x))))


CONVNEXT = """
dlc: 1
name: tiny_convnext
inputs:
  x: {shape: [N, 3, 32, 32]}
layers:
  - conv2d: {out: 8, kernel: 4, stride: 4}
    id: stem
  - layer_norm2d:
    id: stem_norm
  - convnext_stage: {dim: 8, depth: 2, first: true}     # no downsampling before stage 1
    id: stage1
  - convnext_stage: {dim: 16, depth: 1}
    id: stage2
"""


def test_convnext_stage_template_matches_torch_with_the_same_names(tmp_path) -> None:
    reference = TinyConvNeXt().eval()
    state = random_state(reference)
    weights = {k: v.numpy() for k, v in state.items()}
    model = compile_with_weights(CONVNEXT, weights, tmp_path, opt_level=0)
    assert {n.attrs.name for n in model.graph.parameters()} == set(weights)
    assert not any(name.startswith("stage1.downsample") for name in weights)
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    for level in (0, 2):
        compiled = compile_with_weights(CONVNEXT, weights, tmp_path, opt_level=level)
        assert max_relative_error(expected, compiled.run({"x": x}, provider="cpu")["stage2"]) <= 1e-5
    assert_parity(model, tmp_path / "eject")


def test_parameter_through_the_cli(tmp_path) -> None:
    path = write_spec(tmp_path, PARAMETERS)
    result = run_cli("compile", str(path), "-o", str(tmp_path / "model.onnx"))
    assert result.code == 0, result.output
    import onnx

    initializers = {t.name for t in onnx.load(str(tmp_path / "model.onnx")).graph.initializer}
    assert {"gamma", "shift.weight", "running_scale"} <= initializers
    assert dlc.compile(path).summary().buffers == 4
