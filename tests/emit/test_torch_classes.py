"""The ejected model.py reads as a person would write it: a template call is an instance of
one `nn.Module` class per template (its arguments as constructor arguments), a repeat is an
`nn.ModuleList` run by a `for` loop, and the state_dict keys stay the spec's parameter names.
Outputs are checked against ONNX Runtime: max |onnx - torch| / max(1, max |onnx|) <= 1e-5."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import torch

import dlc
from dlc.runtime import Session, random_inputs
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.conftest import SPECS
from tests.emit.test_torch import import_model

TOLERANCE = 1e-5


def _parameter_names(model) -> set[str]:
    """The spec's parameter names (weights, biases, batch-norm statistics)."""
    return {n.attrs.name for n in model.graph if n.op == "parameter"}


def _check_against_onnx_runtime(model, directory, dims: dict[str, int]) -> None:
    model.save(directory, target="torch")
    network = import_model(directory).load_model()
    assert set(network.state_dict()) == _parameter_names(model)
    session = Session(model.onnx_model(), "cpu")
    inputs = random_inputs(session, dims, seed=0)
    names = [n.attrs.name for n in model.graph.inputs()]
    with torch.no_grad():
        result = network(*(torch.from_numpy(inputs[name]) for name in names))
    expected = next(iter(session.run(inputs).values()))
    assert max_relative_error(expected, result.numpy()) <= TOLERANCE


def test_resnet18_blocks_are_one_class_in_module_lists_run_by_loops(tmp_path) -> None:
    model = dlc.compile(SPECS / "cnn/resnet18.yaml", opt_level=0, overrides={"image": 64, "width": 16})
    source = model.torch_source()
    assert "class BasicBlock(nn.Module):" in source
    assert "    def __init__(self, planes: int) -> None:" in source
    # the first block of stages 2-4 has a projection (downsample): a class of its own
    assert "class BasicBlockWithDownsample(nn.Module):" in source
    assert "self.layer1 = nn.ModuleList([BasicBlock(planes=16) for _ in range(2)])" in source
    for stage in (2, 3, 4):
        assert re.search(rf"self\.layer{stage} = nn\.ModuleList\(\s*\[\s*BasicBlockWithDownsample\(", source)
        assert f"for block in self.layer{stage}:" in source
    assert "for block in self.layer1:" in source
    assert "nn.Module()" not in source.split("class Resnet18")[1]  # no anonymous containers
    assert "range(stride)" not in source  # a container's length is not a template argument
    assert "self.layer1[0].conv1" not in source  # no unrolled blocks
    _check_against_onnx_runtime(model, tmp_path / "resnet18", {"N": 2})


def test_gpt2_blocks_are_one_class_with_a_loop_and_tied_weights_stay_put(tmp_path) -> None:
    overrides = {"vocab": 1000, "context": 16, "dim": 64, "heads": 4, "layers": 3}
    model = dlc.compile(SPECS / "attention/gpt2_small.yaml", opt_level=0, overrides=overrides)
    source = model.torch_source()
    assert source.count("class Gpt2Block(nn.Module):") == 1
    assert "self.transformer.h = nn.ModuleList([Gpt2Block(dim=64) for _ in range(3)])" in source
    assert "for block in self.transformer.h:" in source
    # the `gpt2` template's embedding is read by lm_head too (tied): it stays in the model class
    assert "class Gpt2(" not in source
    assert "F.linear(input_ids, self.transformer.wte.weight)" in source
    _check_against_onnx_runtime(model, tmp_path / "gpt2", {"N": 2, "T": 6})


def test_bert_layers_are_one_class(tmp_path) -> None:
    overrides = {"vocab": 1000, "hidden": 64, "heads": 4, "intermediate": 128, "layers": 2}
    model = dlc.compile(SPECS / "attention/bert_base.yaml", opt_level=0, overrides=overrides)
    source = model.torch_source()
    classes = re.findall(r"^class (\w+)\(nn\.Module\):", source, flags=re.MULTILINE)
    assert classes == ["BertLayer", "BertPooler", "BertBase"]  # both layers share one class
    layers = r"self\.encoder\.layer = nn\.ModuleList\(\s*\[BertLayer\(hidden=64, intermediate=128\) for _ in range\(2\)\]"
    assert re.search(layers, source)
    # a second input (the padding mask) is passed to every layer
    assert "def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:" in source
    assert "last_hidden_state = block(last_hidden_state, attention_mask)" in source
    session = Session(model.onnx_model(), "cpu")
    inputs = random_inputs(session, {"N": 2, "T": 5}, seed=0)
    model.save(tmp_path / "bert", target="torch")
    network = import_model(tmp_path / "bert").load_model()
    assert set(network.state_dict()) == _parameter_names(model)
    names = [n.attrs.name for n in model.graph.inputs()]
    with torch.no_grad():
        result = network(*(torch.from_numpy(inputs[name]) for name in names))
    results = result if isinstance(result, tuple) else (result,)
    for expected, actual in zip(session.run(inputs).values(), results, strict=True):
        assert max_relative_error(expected, actual.numpy()) <= TOLERANCE


TIED = """
dlc: 1
name: tied
inputs: {x: {shape: [N, 8]}}
blocks:
  pair:
    params:
      width: int
    body:
      - linear: "${width}"
        id: a
      - relu
      - linear: 8
        id: b
layers:
  - pair: {width: 16}
    id: first
  - pair: {width: 32}
    id: second
  - linear: {out: 16, tie: first.a}
    id: head
    in: x
outputs: [second, head]
"""


def test_a_call_whose_weights_are_read_elsewhere_stays_flat_and_still_matches() -> None:
    spec = load_spec("tied.yaml", text=textwrap.dedent(TIED))
    model = dlc.compile(spec, opt_level=0)
    source = model.torch_source()
    assert "class Pair(nn.Module):" in source
    assert "self.second = Pair(width=32)" in source
    assert "self.first.a" in source  # tied to `head`: not folded into a class
    network = model.torch_module()
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    with torch.no_grad():
        actual = network(torch.from_numpy(x))
    for expected, result in zip(model.run({"x": x}).values(), actual, strict=True):
        assert max_relative_error(expected, result.numpy()) <= TOLERANCE


def test_cli_eject_writes_the_template_classes(tmp_path) -> None:
    out = tmp_path / "pkg"
    result = subprocess.run(
        [sys.executable, "-m", "dlc", "compile", str(SPECS / "cnn/resnet18.yaml"), "--target", "torch",
         "-O0", "--set", "image=32", "--set", "width=8", "-o", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    source = (out / "model.py").read_text()
    assert "class BasicBlock(nn.Module):" in source
    assert "for block in self.layer4:" in source
