"""The core vocabulary of issue 10 item 5, used from specs: activations, clip, min/max,
sin/cos/erf/sign, rms/group/instance norm with torch's parameter names, roll, gather,
cumsum, pad of any axis and integer arithmetic. Each spec runs in ONNX Runtime and as the
ejected torch package on the same inputs (tolerance 1e-5 relative to the output scale);
the norms are also checked against torch's own modules; misuse gives located errors."""

from __future__ import annotations

import numpy as np
import torch

from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.language.parity import assert_parity, compile_text, write_spec

ACTIVATIONS = """
dlc: 1
name: vocabulary
inputs:
  x: {shape: [N, 6, 5, 4]}
layers:
  - scale: 4.0
    id: wide
  - silu:
    in: wide
    id: a
  - hardswish:
    in: wide
    id: b
  - hardsigmoid:
    in: wide
    id: c
  - relu6:
    in: wide
    id: d
  - clip: {min: -1.5, max: 2}
    in: wide
    id: e
  - sin:
    in: wide
    id: f
  - cos:
    in: f
    id: g
  - erf:
    in: g
    id: h
  - sign:
    in: wide
    id: i
  - minimum:
    in: [a, b]
    id: j
  - maximum:
    in: [c, j]
    id: k
  - add:
    in: [a, b, c, d, e, h, i, k]
  - group_norm: 3
    id: gn
  - instance_norm: {affine: true}
    id: inorm
  - roll: {shift: 2, axis: 3}
  - cumsum: {axis: 2}
  - pad: {axes: [1], padding: [[1, 2]]}
  - rms_norm:
    id: rms
outputs: [rms]
"""


def test_new_blocks_run_the_same_in_onnx_runtime_and_ejected_torch(tmp_path) -> None:
    model = compile_text(ACTIVATIONS)
    outputs = assert_parity(model, tmp_path)
    assert outputs["rms"].shape == (2, 9, 5, 4)
    names = [n.attrs.name for n in model.graph.parameters()]
    assert names == ["gn.weight", "gn.bias", "inorm.weight", "inorm.bias", "rms.weight"]


def test_norms_match_torch_modules_with_the_same_state_dict() -> None:
    model = compile_text(
        """
        dlc: 1
        name: norms
        inputs:
          x: {shape: [N, 8, 5]}
        layers:
          - group_norm: {groups: 4, eps: 1e-3}
            id: gn
          - instance_norm: {affine: true}
            id: inorm
          - rms_norm: {eps: 1e-5}
            id: rms
        """
    )
    reference = torch.nn.Sequential()
    reference.add_module("gn", torch.nn.GroupNorm(4, 8, eps=1e-3))
    reference.add_module("inorm", torch.nn.InstanceNorm1d(8, affine=True))
    reference.add_module("rms", torch.nn.RMSNorm(5, eps=1e-5))
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=generator) for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    assert set(model.torch_module().state_dict()) == set(state)
    x = np.random.default_rng(1).standard_normal((3, 8, 5)).astype(np.float32) * 3 + 1
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    module = model.torch_module()
    module.load_state_dict(state)
    with torch.no_grad():
        actual = module(torch.from_numpy(x)).numpy()
    assert max_relative_error(expected, actual) <= 1e-5


def test_integer_arithmetic_runs_in_both_targets(tmp_path) -> None:
    model = compile_text(
        """
        dlc: 1
        name: integer_positions
        inputs:
          x: {shape: [N, T, 4]}
        layers:
          - arange: {axis: 1}
            id: q
          - arange: {axis: 1}
            in: x
            id: k
          - unsqueeze: 1
            in: q
            id: column
          - sub:
            in: [k, column]
            id: relative
          - abs:
            id: distance
          - neg:
            in: relative
            id: flipped
          - minimum:
            in: [distance, flipped]
            id: low
          - maximum:
            in: [low, relative]
            id: high
          - less:
            in: [relative, distance]
            id: behind
          - where:
            in: [behind, high, distance]
            id: chosen
          - clip: {min: -2, max: 2}
            id: clipped
          - sign:
            in: clipped
            id: signs
          - cumsum: {axis: 1}
            id: total
        outputs: [total]
        """
    )
    outputs = assert_parity(model, tmp_path, dims={"N": 2, "T": 5})
    assert outputs["total"].dtype == np.int64


def test_gather_picks_table_rows_by_index(tmp_path) -> None:
    model = compile_text(
        """
        dlc: 1
        name: relative_bias
        inputs:
          index: {shape: [7, 7], dtype: int64, range: [0, 13]}
        layers:
          - constant: {value: "${[[float(i * 3 + h) for h in range(3)] for i in range(13)]}"}
            id: table
          - gather: {axis: 0}
            in: [table, index]
            id: bias
        outputs: [bias]
        """
    )
    index = np.random.default_rng(0).integers(0, 13, (7, 7)).astype(np.int64)
    result = model.run({"index": index}, provider="cpu")["bias"]
    table = np.array([[i * 3 + h for h in range(3)] for i in range(13)], dtype=np.float32)
    np.testing.assert_array_equal(result, table[index])
    assert_parity(model, tmp_path)


def test_misused_blocks_are_located_errors(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: bad
        inputs:
          x: {shape: [N, 6, 5]}
        layers:
          - group_norm: 4
          - clip: {}
          - rms_norm:
            in: x
          - gather: 1
            in: [x, x]
          - pad: {axes: [1, 7], padding: 1}
            in: x
        """,
    )
    result = run_cli("validate", str(path))
    assert result.code == 1
    assert "Traceback" not in result.output
    assert (
        f"{path}:7:5: error: group_norm layer 'group_norm_0': 6 channels do not split into 4 groups"
        in result.output
    )
    assert f"{path}:8:" in result.output and "clip needs `min`, `max` or both" in result.output
    assert "the index (second input) must be int64 or int32" in result.output
    assert "axis 7 is out of range for [N, 6, 5]" in result.output


def test_new_blocks_compile_and_run_through_the_cli(tmp_path) -> None:
    path = write_spec(tmp_path, ACTIVATIONS)
    result = run_cli("run", str(path), "--random-inputs", "--dim", "N=2")
    assert result.code == 0, result.output
    assert "rms" in result.output
    result = run_cli("compile", str(path), "--target", "torch", "-o", str(tmp_path / "ejected"))
    assert result.code == 0, result.output
    source = (tmp_path / "ejected" / "model.py").read_text()
    for expected in ("nn.GroupNorm(3, 6", "nn.InstanceNorm2d(6", "nn.RMSNorm(4", "F.silu(", "torch.roll("):
        assert expected in source, expected
