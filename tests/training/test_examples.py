"""The training examples of examples/train/, in a short form: each trains a few steps with
the documented `dlc train` command (fewer steps through `--set training.max_steps`), must
exit 0 and write model.safetensors, and its loss must fall or its metric beat a stated
baseline; the examples' scripts then draw their samples through ONNX Runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from dlc.training.data import NODES, TARGET
from dlc.training.plan import plan_training
from tests.conftest import EXAMPLES, SPECS, run_cli

TRAIN = EXAMPLES / "train"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def losses(run: Path, key: str = "loss") -> list[float]:
    return [line[key] for line in metrics(run) if line["split"] == "train"]


def final(run: Path, split: str = "final_test") -> dict:
    (line,) = [line for line in metrics(run) if line["split"] == split]
    return line


def train(spec: Path, run: Path, *options: str) -> None:
    result = run_cli("train", str(spec), "--out", str(run), *options, timeout=600)
    assert result.code == 0, result.output
    assert (run / "model.safetensors").is_file()


def run_script(script: str, *args: str) -> dict:
    """An example's script, as a user runs it; its JSON report."""
    process = subprocess.run(
        [sys.executable, str(TRAIN / script), *args], capture_output=True, text=True, timeout=600
    )
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


def test_realnvp_on_moons_beats_a_gaussian_and_samples_with_the_compiled_inverse(tmp_path: Path) -> None:
    run = tmp_path / "realnvp"
    config = str(TRAIN / "realnvp_moons.train.yaml")
    train(
        SPECS / "generative" / "realnvp_moons.yaml",
        run,
        "--config",
        config,
        "--set",
        "training.max_steps=150",
    )
    steps = losses(run)
    assert steps[-1] < steps[0] - 0.5, steps  # the NLL falls by > 0.5 nats in 150 steps
    report = run_script("realnvp_moons_samples.py", str(run), "--samples", "300")
    # The full example reaches 0.445 nats against the Gaussian's 1.907 on the same 600 points.
    assert report["flow_test_nll"] < report["gaussian_test_nll"] - 0.3, report
    assert abs(report["flow_test_nll"] - final(run)["loss"]) < 1e-3  # ONNX forward = torch eval
    assert report["samples"] == 300 and is_png(Path(report["png"]))


def test_dcgan_on_digits_trains_both_players_and_draws_a_grid(tmp_path: Path) -> None:
    run = tmp_path / "dcgan"
    train(TRAIN / "dcgan_digits_generator.yaml", run, "--set", "training.max_steps=120")
    assert (run / "discriminator.safetensors").is_file()
    d_losses = losses(run, "discriminator_loss")
    # Both players stay in the game: the discriminator's loss stays below that of guessing
    # (2 ln 2 = 1.386 for D = 1/2 everywhere) plus a margin, and does not collapse to 0.
    assert 0.05 < d_losses[-1] < 1.6, d_losses
    report = run_script("gan_sample_grid.py", str(run))
    # The digits' mean pixel is 0.305; an untrained sigmoid generator draws about 0.5.
    assert abs(report["pixel_mean"] - 0.305) < 0.12, report
    assert report["samples"] == 64 and is_png(Path(report["png"]))


def test_ddpm_on_digits_beats_predicting_no_noise_and_samples_with_the_compiled_sampler(
    tmp_path: Path,
) -> None:
    run = tmp_path / "ddpm"
    train(
        TRAIN / "ddpm_digits.yaml", run, "--set", "training.max_steps=300", "--set", "training.log_every=20"
    )
    steps = losses(run)
    assert steps[-1] < 0.7 * steps[0], steps
    # Baseline: predicting eps = 0 costs E ||eps||^2 / 64 = 1 per pixel.
    assert final(run)["loss"] < 0.5
    report = run_script("ddpm_sample_grid.py", str(run), "--steps", "50", "--count", "16")
    assert report["samples"] == 16 and is_png(Path(report["png"]))


def test_gcn_from_the_zoo_classifies_sbm_nodes_better_than_their_features_alone(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    spec, config = SPECS / "geometric" / "gcn_cora.yaml", TRAIN / "gcn_sbm_pyg.train.yaml"
    sizes = ("--set", "features=16", "--set", "classes=3")
    run = tmp_path / "gcn"
    train(spec, run, "--config", str(config), *sizes)
    accuracy = final(run)["accuracy"]
    # Baseline: a logistic regression on the node features alone, same split (the graph unused).
    splits = plan_training(spec, config_path=config, overrides={"features": 16, "classes": 3}).splits
    x, labels = splits.train["x"], splits.train[TARGET]
    train_nodes, test_nodes = splits.train[NODES], splits.test[NODES]
    baseline = LogisticRegression(max_iter=1000).fit(x[train_nodes], labels[train_nodes])
    baseline_accuracy = float(np.mean(baseline.predict(x[test_nodes]) == labels[test_nodes]))
    assert accuracy >= 0.9 and accuracy > baseline_accuracy + 0.1, (accuracy, baseline_accuracy)
