"""Shared fixtures: repository paths, a CLI runner, the installed example plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
EXAMPLES = REPO / "examples"

# Check the IR after every pass in every test.
os.environ["DLC_VERIFY"] = "1"
# Cost models use their documented defaults, not whatever `dlc tune` stored on this machine.
os.environ["DLC_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlc-test-cache-")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 120
) -> CliResult:
    """Run `dlc` as a user does: a subprocess, with its exit code and both streams."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DLC_DEBUG", None)
    process = subprocess.run(
        [sys.executable, "-m", "dlc.cli", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(process.returncode, process.stdout, process.stderr)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def example_plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, pip-installed into a private directory (add it to PYTHONPATH).
    Built from a copy: pip builds in the source tree and would leave build/ and egg-info there."""
    target = tmp_path_factory.mktemp("example_plugin")
    source = tmp_path_factory.mktemp("example_plugin_source") / "dlc-example-plugin"
    shutil.copytree(
        EXAMPLES / "dlc-example-plugin", source, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target
