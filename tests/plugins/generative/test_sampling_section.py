"""The `sampling:` section and `--sampler` options as a user meets them: located errors with
exit code 1 and no traceback, overrides from the command line, and `dlc summary` reporting
a sampler's MACs per step and in all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.plugins.generative.ddpm_reference import SMALL, SPEC

SMALL_SETS = [f"--set={key}={json.dumps(value)}" for key, value in SMALL.items()]

TINY = """\
dlc: 1
name: tiny_denoiser
inputs:
  sample: {shape: [N, 3, 8, 8]}
  timestep: {shape: [N]}
layers:
  - conv2d: {out: 3, kernel: 3, padding: 1}
    in: sample
sampling:
"""


def write(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(TINY + section)
    return path


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("  beta_end: 1.5\n", 10, "invalid 'beta_end': expected less than 1"),
        ("  beta_start: 0.0\n", 10, "invalid 'beta_start': expected greater than 0"),
        ("  steps: 2000\n", 10, "2000 sampling steps but only 1000 training steps"),
        ("  train_steps: 100\n  steps: 101\n", 11, "101 sampling steps but only 100 training steps"),
        ("  sampler: ddmi\n", 10, "invalid 'sampler'"),
    ],
)
def test_bad_sampling_values_are_located_errors(
    tmp_path: Path, section: str, line: int, message: str
) -> None:
    path = write(tmp_path, section)
    result = run_cli("compile", str(path), "--sampler", "-o", str(tmp_path / "out.onnx"))
    assert result.code == 1
    assert f"{path}:{line}:" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_misspelled_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "  schedul: cosine\n")
    result = run_cli("validate", str(path))
    assert result.code == 1
    assert f"{path}:10:3: error: unknown key 'schedul'" in result.stderr
    assert "did you mean 'schedule'?" in result.stderr


def test_command_line_overrides_are_checked_and_named(tmp_path: Path) -> None:
    path = write(tmp_path, "  sampler: ddim\n")
    result = run_cli("compile", str(path), "--steps", "5000", "-o", str(tmp_path / "out.onnx"))
    assert result.code == 1
    assert "--steps: 5000 sampling steps but only 1000 training steps" in result.stderr
    assert "Traceback" not in result.output


def test_a_sampler_cannot_be_compiled_in_the_inverse_direction(tmp_path: Path) -> None:
    path = write(tmp_path, "  sampler: ddim\n")
    output = tmp_path / "out.onnx"
    result = run_cli("compile", str(path), "--sampler", "ddim", "--direction", "inverse", "-o", str(output))
    assert result.code == 1
    assert "a diffusion sampler runs the network forward" in result.stderr
    assert "Traceback" not in result.output and not output.exists()


def test_compiled_sampler_has_x_T_in_and_x_0_out(tmp_path: Path) -> None:
    import onnx

    path = write(tmp_path, "  sampler: ddpm\n  steps: 4\n")
    result = run_cli("compile", str(path), "--sampler", "-o", str(tmp_path / "sampler.onnx"))
    assert result.code == 0, result.output
    model = onnx.load(tmp_path / "sampler.onnx")
    assert [i.name for i in model.graph.input] == ["x_T", "noise"]
    noise_dims = [d.dim_value or d.dim_param for d in model.graph.input[1].type.tensor_type.shape.dim]
    assert noise_dims == [4, "N", 3, 8, 8]
    assert [o.name for o in model.graph.output] == ["x_0"]
    assert sum(n.op_type == "Loop" for n in model.graph.node) == 1


def test_summary_reports_macs_per_step_and_in_all() -> None:
    result = run_cli("summary", str(SPEC), *SMALL_SETS, "--sampler", "ddim", "--steps", "25", "--json")
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sampler"]["steps"] == 25
    assert data["sampler"]["macs_per_step"] == data["macs"]  # the sampler's own arithmetic is no MACs
    assert data["sampler"]["macs"] == 25 * data["macs"]
    text = run_cli("summary", str(SPEC), "--sampler", "ddim", "--steps", "50")
    assert "sampler ddim, 50 steps of 1000 (linear schedule): 6,221,856,768 MACs per step, " in text.stdout
    assert "311,092,838,400 in all" in text.stdout
