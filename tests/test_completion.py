"""`dlc completion bash|zsh|fish`: scripts generated from the parser (shtab)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _script(shell: str, tmp_path) -> str:
    result = run_cli("completion", shell)
    assert result.code == 0, result.output
    path = tmp_path / f"dlc.{shell}"
    path.write_text(result.stdout)
    return str(path)


def _bash_complete(script: str, *words: str) -> list[str]:
    """What bash offers after `dlc WORDS...` (the last word is the one being completed)."""
    quoted = " ".join(f"'{w}'" for w in ("dlc", *words))
    command = f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; _shtab_dlc; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    process = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    return process.stdout.split()


def test_bash_completes_commands_flags_and_choices(tmp_path) -> None:
    script = _script("bash", tmp_path)
    assert _bash_complete(script, "comp") == ["compile", "completion"]
    assert _bash_complete(script, "compile", "specs/mlp.yaml", "--conv") == ["--conv-algo"]
    assert _bash_complete(script, "compile", "--conv-algo", "") == ["auto", "direct", "fft"]
    assert "--random-inputs" in _bash_complete(script, "run", "m.onnx", "--ra")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_every_command_and_parse(shell: str, tmp_path) -> None:
    script = _script(shell, tmp_path)
    text = Path(script).read_text()
    for command in (
        "validate",
        "compile",
        "summary",
        "run",
        "blocks",
        "passes",
        "tune",
        "schema",
        "completion",
    ):
        assert command in text
    assert "conv-algo" in text and "portable" in text
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed: the script's syntax is not checked")
    check = subprocess.run([shell, "-n", script], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    if shell == "fish":  # fish can also be asked what it would complete
        asked = subprocess.run(
            ["fish", "-c", f"source {script}; complete -C'dlc compile x.yaml --conv-algo '"],
            capture_output=True,
            text=True,
        )
        assert [line.split("\t")[0] for line in asked.stdout.splitlines()] == ["auto", "direct", "fft"]


def test_an_unknown_shell_is_a_usage_error() -> None:
    assert run_cli("completion", "powershell").code == 2
