"""Progress on long work: shown on a terminal (stderr) while weights are written, a model
loads or `dlc tune` measures; never when output is piped."""

from __future__ import annotations

from tests.conftest import run_cli

ESCAPE = "\x1b["
TERMINAL = {"TTY_COMPATIBLE": "1", "COLUMNS": "120"}  # rich takes the pipes for a terminal


def test_piped_output_has_no_progress_escape_codes(tmp_path) -> None:
    output = tmp_path / "resnet18.onnx"
    compiled = run_cli("compile", "specs/cnn/resnet18.yaml", "-o", str(output))
    assert compiled.code == 0, compiled.output
    ran = run_cli("run", str(output), "--random-inputs")
    tuned = run_cli("tune", "--quick", env={"DLC_CACHE_DIR": str(tmp_path / "cache")})
    for result in (compiled, ran, tuned):
        assert result.code == 0, result.output
        assert ESCAPE not in result.stdout and ESCAPE not in result.stderr


def test_a_terminal_sees_progress_on_stderr_only(tmp_path) -> None:
    output = tmp_path / "resnet18.onnx"
    compiled = run_cli("compile", "specs/cnn/resnet18.yaml", "-o", str(output), env=TERMINAL)
    assert compiled.code == 0, compiled.output
    assert (
        "writing resnet18.onnx" in compiled.stderr and "compiling specs/cnn/resnet18.yaml" in compiled.stderr
    )
    assert compiled.stdout.startswith(f"wrote {output}")  # the result line stays clean
    ran = run_cli("run", str(output), "--random-inputs", env=TERMINAL)
    assert ran.code == 0 and "loading the model into ONNX Runtime" in ran.stderr
    tuned = run_cli("tune", "--quick", env={**TERMINAL, "DLC_CACHE_DIR": str(tmp_path / "cache")})
    assert tuned.code == 0 and "measuring: conv-cost" in tuned.stderr
