"""torchvision for the reference tests, kept out of the test interpreter.

torchvision's wheels on PyPI carry a C extension built against one torch release; against
this CPU torch it does not load, and an importable-but-broken torchvision breaks importing
transformers and timm in the same interpreter. So the tests never import it: torchvision
(and Pillow, which its model modules import) is pip-installed once, without dependencies,
into a cache folder, and each reference runs in a subprocess with that folder on
PYTHONPATH (tests/references/torchvision_models.py), writing its state_dict and outputs to
files that the test compares dlc against.

The folder is `$DLC_TORCHVISION_DIR`, or `~/.cache/dlc/torchvision-<version>`; the version is
the torchvision release paired with the installed torch (`$DLC_TORCHVISION_VERSION`
overrides it). Without network access and without a filled folder the tests skip, saying
why; with `DLC_REQUIRE_REFERENCES=1` (set by .ci/run) they fail instead, so CI cannot pass
without having compared against torchvision.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

MODELS_SCRIPT = Path(__file__).with_name("torchvision_models.py")


def torchvision_version() -> str:
    """torchvision 0.(minor + 15) pairs with torch 2.minor (0.28 with torch 2.13)."""
    override = os.environ.get("DLC_TORCHVISION_VERSION")
    if override:
        return override
    import torch

    major, minor = (int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if major != 2:
        raise RuntimeError(f"no known torchvision release for torch {torch.__version__}")
    return f"0.{minor + 15}.0"


def site_folder() -> Path:
    """The folder holding torchvision, installed there on first use; skips the calling
    test when it cannot be installed."""
    version = torchvision_version()
    folder = Path(
        os.environ.get("DLC_TORCHVISION_DIR") or Path.home() / ".cache" / "dlc" / f"torchvision-{version}"
    )
    if (folder / "torchvision").is_dir() and (folder / "PIL").is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(staging)]
    result = subprocess.run(
        [*command, f"torchvision=={version}", "pillow"], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        reason = f"cannot install torchvision {version} for the reference models: {result.stderr[-500:]}"
        if os.environ.get("DLC_REQUIRE_REFERENCES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        staging.rename(folder)  # atomic: a concurrent run either finds a full folder or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def torchvision_reference(model: str, size: str, pixels: np.ndarray, out: Path, **options: object) -> Path:
    """Run torchvision's `model` (see torchvision_models.BUILDERS) in a subprocess on `pixels`;
    returns the folder holding `weights.safetensors` (its state_dict, randomized) and
    `output.npy`."""
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "input.npy", pixels)
    request = {"model": model, "size": size, "options": options, "folder": str(out)}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site_folder()), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, str(MODELS_SCRIPT), json.dumps(request)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, f"the torchvision reference failed:\n{result.stderr[-3000:]}"
    return out
