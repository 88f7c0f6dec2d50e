"""Weight tying (`tie:` on linear and embedding): one tensor, shared, in the IR, in ONNX
and in torch; references resolve from the innermost scope outwards; bad references are
located errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import onnx
import torch

import dlc
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.conftest import run_cli

TIED_LM = """
dlc: 1
name: tied_lm
inputs:
  ids: {shape: [N, T], dtype: int64}
layers:
  - embedding: {vocab: 11, dim: 6}
    id: wte
  - layer_norm
  - linear: {out: 11, bias: false, tie: wte}
    id: logits
"""


def compile_text(text: str, **kwargs) -> dlc.CompiledModel:
    return dlc.compile(load_spec("test.yaml", text=textwrap.dedent(text)), **kwargs)


def test_a_tied_weight_is_one_parameter_one_initializer_and_one_state_dict_key() -> None:
    model = compile_text(TIED_LM)
    assert [n.attrs.name for n in model.graph.parameters()] == [
        "wte.weight",
        "layer_norm_0.weight",
        "layer_norm_0.bias",
    ]
    assert model.summary().params == 11 * 6 + 2 * 6  # counted once
    initializers = [t.name for t in model.onnx_model().graph.initializer]
    assert initializers.count("wte.weight") == 1
    assert list(model.torch_module().state_dict()) == [
        "wte.weight",
        "layer_norm_0.weight",
        "layer_norm_0.bias",
    ]


def test_tied_model_runs_the_same_in_onnx_runtime_and_torch() -> None:
    model = compile_text(TIED_LM)
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 5)).astype(np.int64)
    expected = model.run({"ids": ids}, provider="cpu")["logits"]
    with torch.no_grad():
        actual = model.torch_module()(torch.from_numpy(ids)).numpy()
    assert max_relative_error(expected, actual) <= 1e-5


def test_references_resolve_from_the_innermost_scope_outwards() -> None:
    model = compile_text(
        """
        dlc: 1
        name: scoped
        inputs:
          ids: {shape: [N, T], dtype: int64}
          x: {shape: [N, 7]}
        blocks:
          tower:
            body:
              - embedding: {vocab: 7, dim: 4}
                id: embed
              - linear: {out: 7, bias: false, tie: embed}   # this tower's own table
              - linear: {out: 4, bias: false, tie: proj}    # the top-level layer's weight
        layers:
          - linear: {out: 4, bias: false}
            id: proj
            in: x
          - tower:
            in: ids
            id: a
          - tower:
            in: ids
            id: b
        outputs: [proj, a, b]
        """
    )
    names = [n.attrs.name for n in model.graph.parameters()]
    assert names == ["proj.weight", "a.embed.weight", "b.embed.weight"]
    for tower in ("a", "b"):
        users = {n.layer for n in model.graph.users(model.graph.node(f"{tower}.embed.weight").output)}
        assert users == {f"{tower}.embed", f"{tower}.linear_0"}
    proj_users = {n.layer for n in model.graph.users(model.graph.node("proj.weight").output)}
    assert proj_users == {"proj", "a.linear_1", "b.linear_1"}


def test_a_full_parameter_name_works_too() -> None:
    model = compile_text(TIED_LM.replace("tie: wte}", "tie: wte.weight}"))
    assert len(model.graph.parameters()) == 3


def test_bad_ties_are_located_errors(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(TIED_LM.replace("tie: wte}", "tie: wtee}"))
    result = run_cli("validate", str(unknown))
    assert result.code == 1
    assert f"{unknown}:10:5: error: linear layer 'logits': tie: no parameter 'wtee'" in result.output
    assert "did you mean 'wte'?" in result.output
    assert "Traceback" not in result.output

    mismatch = tmp_path / "mismatch.yaml"
    mismatch.write_text(TIED_LM.replace("out: 11, bias", "out: 12, bias"))
    result = run_cli("validate", str(mismatch))
    assert result.code == 1
    assert f"{mismatch}:10:5: error:" in result.output
    assert (
        "tie: 'wte.weight' is float32[11, 6], but this layer's weight must be float32[12, 6]" in result.output
    )
    assert "Traceback" not in result.output


def test_the_onnx_model_has_one_table_feeding_both_uses(tmp_path: Path) -> None:
    path = tmp_path / "tied.onnx"
    compile_text(TIED_LM).save(path)
    graph = onnx.load(str(path)).graph
    readers = [n.op_type for n in graph.node if "wte.weight" in n.input]
    assert sorted(readers) == ["Gather", "Transpose"]
