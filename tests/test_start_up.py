"""What the interactive commands import: `dlc validate` and `dlc summary` answer without
numpy, onnx or networkx (most of their start-up before; `dlc.lazy_imports`, `dlc.ir.graph`),
and `dlc --help` without pydantic either. Timings are measured in benchmarks/compile_time.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlc.ir.types import FLOAT32_LOWEST, DType

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
from dlc.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:  # --help
    code = exit.code
loaded = sorted(m for m in ("numpy._core", "onnx", "networkx", "onnxruntime", "torch", "pydantic") if m in sys.modules)
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def imported_by(*argv: str, cache: Path) -> list[str]:
    environment = {"DLC_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    for _ in range(2):  # the first run may import every plugin to record the plugin manifest
        result = subprocess.run(
            [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=REPO, env=environment
        )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, result.stderr
    return report["loaded"]


@pytest.mark.parametrize(
    "argv",
    [
        ("validate", "specs/mlp.yaml"),
        ("validate", "benchmarks/specs/every_family.yaml"),
        ("validate", "specs/cnn/resnet50.yaml"),
        ("summary", "specs/attention/bert_base.yaml"),
    ],
)
def test_checking_a_spec_imports_no_numpy_onnx_or_networkx(argv: tuple[str, ...], tmp_path: Path) -> None:
    assert imported_by(*argv, cache=tmp_path) == ["pydantic"]


def test_help_imports_none_of_the_libraries(tmp_path: Path) -> None:
    assert imported_by("--help", cache=tmp_path) == []


def test_constants_written_out_to_spare_numpy_equal_numpy_s() -> None:
    assert float(np.finfo(np.float32).min) == FLOAT32_LOWEST
    for dtype in DType:
        expected = 2 if dtype is DType.bfloat16 else np.dtype(dtype.value).itemsize
        assert dtype.itemsize == expected, dtype


def test_the_deferred_numpy_is_numpy_once_used() -> None:
    from dlc.lazy_imports import numpy as deferred

    assert deferred.float32 is np.float32
    assert deferred.ndarray is np.ndarray
    assert deferred.random.default_rng is np.random.default_rng
    assert np.array_equal(deferred.arange(3), np.arange(3))
