"""`pip install .` without extras: the README's first command works in a fresh virtual
environment that has no torch, and a command that needs torch says which extra to install.

This builds a real environment from the package index (about a minute with pip's cache
warm), so it carries the `install` marker; it is skipped only where the index cannot be
reached, and never in CI (CI=true), where it is part of what must pass.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# What the README's first command needs from a clone; nothing built, no .venv.
SOURCES = ("compiler", "plugins", "runtime", "specs")
FILES = ("pyproject.toml", "setup.py", "README.md", "constraints.txt")


def _index_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


def readme_first_command() -> str:
    """The first ```sh block of the README: the command a new user runs first."""
    match = re.search(r"```sh\n(.+?)\n```", (REPO / "README.md").read_text(), re.DOTALL)
    assert match, "the README has no ```sh block"
    return match.group(1)


HIDE_TORCH = """
import sys


class HideTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return None


sys.meta_path.insert(0, HideTorch())
"""


@pytest.mark.install
def test_readme_first_command_works_without_torch(tmp_path: Path) -> None:
    if not _index_reachable() and os.environ.get("CI") != "true":
        pytest.skip("the package index cannot be reached")
    clone = tmp_path / "clone"
    for name in SOURCES:
        shutil.copytree(REPO / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in FILES:
        shutil.copy(REPO / name, clone / name)
    command = readme_first_command()
    assert "pip install -c constraints.txt -e ." in command and "[" not in command  # no extras
    # `python3` in the README is the interpreter running the tests; pip's cache is reused.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.run(
        ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=1200
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert "providers: " in process.stdout
    assert (clone / "mlp.onnx").is_file()

    python = clone / ".venv" / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import torch"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr

    dlc = clone / ".venv" / "bin" / "dlc"
    for command in (
        ["summary", "specs/mlp.yaml", "--json"],
        ["blocks", "conv2d"],
        ["validate", "specs/cnn/resnet18.yaml"],
    ):
        works = subprocess.run([str(dlc), *command], cwd=clone, env=env, capture_output=True, text=True)
        assert works.returncode == 0, (command, works.stderr)
    needs_torch = subprocess.run(
        [str(dlc), "compile", "specs/mlp.yaml", "--target", "torch", "-o", "pkg"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert needs_torch.returncode == 1, needs_torch.stderr
    assert "needs PyTorch, which is not installed" in needs_torch.stderr
    assert "pip install 'dlc[torch]'" in needs_torch.stderr
    assert "Traceback" not in needs_torch.stderr
    assert not (clone / "pkg").exists()


def test_a_torch_feature_without_torch_names_the_extra(tmp_path: Path) -> None:
    """The same message without building an environment: torch hidden by an import hook."""
    hook = tmp_path / "no_torch"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HIDE_TORCH)
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlc",
            "compile",
            "specs/mlp.yaml",
            "--target",
            "torch",
            "-o",
            str(tmp_path / "p"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 1, process.stderr
    assert "the torch target (model.py + weights.safetensors) needs PyTorch" in process.stderr
    assert "--index-url https://download.pytorch.org/whl/cpu" in process.stderr
    assert not (tmp_path / "p").exists()
    onnx_path = tmp_path / "m.onnx"
    still_works = subprocess.run(
        [sys.executable, "-m", "dlc", "compile", "specs/mlp.yaml", "-o", str(onnx_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert still_works.returncode == 0, still_works.stderr
