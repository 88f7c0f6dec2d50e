"""Bad flows as a user meets them, through the CLI: exit code 1, a located message naming
the culprit (file:line:col), no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

HEADER = """dlc: 1
name: bad_flow
inputs:
  x: {shape: [N, 2]}
blocks:
  mlp:
    body:
      - linear: 16
      - relu
      - linear: 2
layers:
"""


def _write(tmp_path: Path, layers: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(HEADER + layers)
    return path


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_layer_without_inverse_on_the_flow_path_is_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """  - linear: 2
    id: embed
  - flow:
      steps:
        - affine_coupling: {mask: alternate, s: mlp, t: mlp}
    id: flow
outputs: {z: flow.z, log_det: flow.log_det}
""",
    )
    assert run_cli("validate", str(path)).code == 0  # the forward map is fine
    result = run_cli("compile", str(path), "--direction", "inverse", "-o", str(tmp_path / "inverse.onnx"))
    assert result.code == 1
    assert f"bad.yaml:{_line_of(path, 'id: embed') - 1}:" in result.stderr
    assert "layer 'embed' (block 'linear') is on the flow path but has no inverse" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "inverse.onnx").exists()


def test_a_flow_step_that_is_not_invertible_is_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """  - flow:
      steps:
        - affine_coupling: {mask: alternate, s: mlp, t: mlp}
        - relu
    id: flow
""",
    )
    result = run_cli("validate", str(path))
    assert result.code == 1
    assert f"bad.yaml:{_line_of(path, '        - relu')}:" in result.stderr
    assert "step 1 'relu' is not invertible" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_mask_of_the_wrong_shape_is_located(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """  - flow:
      steps:
        - affine_coupling: {mask: alternate, s: mlp, t: mlp}
        - affine_coupling: {mask: [1, 0, 1], s: mlp, t: mlp}
    id: flow
""",
    )
    result = run_cli("validate", str(path))
    assert result.code == 1
    assert f"bad.yaml:{_line_of(path, '[1, 0, 1]')}:" in result.stderr
    assert "the mask has shape [3], but the input is [N, 2]" in result.stderr
    assert "Traceback" not in result.stderr
