"""`dlc predict`: the posterior predictive mean of a Langevin run, through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.conftest import EXAMPLES, run_cli

SPEC = EXAMPLES / "train" / "bayesian_linear_regression.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short SGLD run of the example (3,000 steps, burn-in and thinning as the spec says)."""
    out = tmp_path_factory.mktemp("sgld") / "run"
    result = run_cli("train", str(SPEC), "--out", str(out), "--set", "training.epochs=3000", timeout=300)
    assert result.code == 0, result.stderr
    return out


def test_predict_averages_the_outputs_over_every_posterior_sample(run: Path, tmp_path: Path) -> None:
    x = np.array([[0.0], [0.5], [2.0]], dtype=np.float32)
    np.savez(tmp_path / "probe.npz", x=x)
    result = run_cli(
        "predict", str(SPEC), "--posterior", str(run / "posterior.safetensors"),
        "--inputs", str(tmp_path / "probe.npz"), "--output", str(tmp_path / "pred.npz"),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    samples = load_file(str(run / "posterior.safetensors"))
    count = sum(1 for key in samples if key.endswith("/line.weight"))
    assert count > 10
    # (1/S) sum_s (x w_s^T + b_s), written out in float64.
    expected = np.mean(
        [x @ samples[f"{s}/line.weight"].T + samples[f"{s}/line.bias"] for s in range(count)], axis=0
    )
    with np.load(tmp_path / "pred.npz") as predicted:
        np.testing.assert_allclose(predicted["line"], expected, rtol=1e-5, atol=1e-6)
    # The data are y = 2x - 1 + noise: the posterior mean line passes near it.
    np.testing.assert_allclose(expected.ravel(), 2 * x.ravel() - 1, atol=0.3)


def test_predict_errors_are_located_and_exit_1(run: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "wrong.npz", y=np.zeros((2, 1), np.float32))
    missing = run_cli(
        "predict",
        str(SPEC),
        "--posterior",
        str(tmp_path / "none.safetensors"),
        "--inputs",
        str(tmp_path / "wrong.npz"),
    )
    assert (
        missing.code == 1 and "no such posterior file" in missing.stderr and "Traceback" not in missing.stderr
    )
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    damaged = run_cli(
        "predict",
        str(SPEC),
        "--posterior",
        str(tmp_path / "bad.safetensors"),
        "--inputs",
        str(tmp_path / "wrong.npz"),
    )
    assert (
        damaged.code == 1
        and "not a posterior samples file" in damaged.stderr
        and "Traceback" not in damaged.stderr
    )
    wrong = run_cli(
        "predict",
        str(SPEC),
        "--posterior",
        str(run / "posterior.safetensors"),
        "--inputs",
        str(tmp_path / "wrong.npz"),
    )
    assert wrong.code == 1 and "no array named 'x'" in wrong.stderr and "Traceback" not in wrong.stderr
