"""The built wheel: the import name is `dlc` (no top-level `compiler`, `plugins` or
`runtime`), every package directory is in it, and it works installed outside the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, SPECS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a clean copy: an in-tree build/ folder could carry stale modules along.
    source = tmp_path_factory.mktemp("source")
    for name in ("compiler", "plugins", "runtime"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-w", str(out), str(source)], check=True, capture_output=True)
    (path,) = out.glob("dlc-*.whl")
    return path


def test_wheel_holds_dlc_and_no_generic_top_level_modules(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"dlc"}
    packages = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("__init__.py")}
    expected = {"dlc"}
    for source, package in (("compiler", "dlc"), ("plugins", "dlc.plugins"), ("runtime", "dlc.runtime")):
        for init in (REPO / source).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / source)
            expected.add(".".join([package, *relative.parts]) if relative.parts else package)
    assert expected <= packages, f"missing from the wheel: {sorted(expected - packages)}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dlc = dlc.cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_works_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    script = (
        "import dlc, sys; "
        f"m = dlc.compile({str(SPECS / 'mlp.yaml')!r}); "
        "assert dlc.__file__.startswith(sys.argv[1]), dlc.__file__; "
        "print(m.summary().params)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    process = subprocess.run(
        [sys.executable, "-c", script, str(target)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "235146"
