"""Global options work before the command as `--help` shows them, and `python -m dlc` runs."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, run_cli


def test_verbose_before_the_command_logs_passes_files_and_timings(tmp_path) -> None:
    output = tmp_path / "mlp.onnx"
    result = run_cli("-v", "compile", "specs/mlp.yaml", "-o", str(output))
    assert result.code == 0, result.output
    assert "dlc: info: pass dead-code-elimination:" in result.stderr
    assert f"dlc: info: wrote {output} (" in result.stderr
    assert "dlc: info: loaded spec 'mlp' in" in result.stderr


def test_verbose_after_the_command_logs_too_and_quiet_is_the_default(tmp_path) -> None:
    result = run_cli("compile", "specs/mlp.yaml", "-o", str(tmp_path / "m.onnx"), "--verbose")
    assert "dlc: info: pass" in result.stderr
    quiet = run_cli("compile", "specs/mlp.yaml", "-o", str(tmp_path / "m.onnx"))
    assert quiet.code == 0 and "dlc: info" not in quiet.stderr


def test_verbose_run_names_the_providers_the_session_got() -> None:
    result = run_cli("-v", "run", "specs/mlp.yaml", "--random-inputs")
    assert result.code == 0, result.output
    assert "got CPUExecutionProvider" in result.stderr


def test_python_dash_m_dlc_is_the_same_command_line() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "dlc", "validate", "specs/mlp.yaml"], cwd=REPO, capture_output=True, text=True
    )
    assert process.returncode == 0, process.stderr
    assert "specs/mlp.yaml: ok" in process.stdout
    usage = subprocess.run([sys.executable, "-m", "dlc", "--help"], cwd=REPO, capture_output=True, text=True)
    assert usage.stdout.startswith("usage: dlc ")
