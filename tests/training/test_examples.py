"""The training examples of examples/train/, in a short form: each trains a few steps with
the documented `dlc train` command (fewer steps through `--set training.KEY=VALUE`), must
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
DIGITS_MEAN_PIXEL = 0.305 * 2 - 1  # scikit-learn digits / 16 average 0.305; as [-1, 1] pixels


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


def test_realnvp_on_moons_samples_with_the_compiled_inverse_closer_to_the_data_than_a_gaussian(
    tmp_path: Path,
) -> None:
    run = tmp_path / "realnvp"
    config = str(TRAIN / "realnvp_moons.train.yaml")
    small = ("--set", "hidden=32", "--set", "training.epochs=10", "--set", "training.log_every=5")
    train(SPECS / "generative" / "realnvp_moons.yaml", run, "--config", config, *small)
    steps = losses(run)
    assert steps[-1] < steps[0] - 0.5, steps  # the NLL falls by more than 0.5 nats
    report = run_script("realnvp_moons_samples.py", str(run), "--samples", "500", *small)
    # The full example (hidden 256, 30 epochs): 0.570 nats against the Gaussian's 1.906.
    assert report["flow_test_nll"] < report["gaussian_test_nll"] - 0.3, report
    assert abs(report["flow_test_nll"] - final(run)["loss"]) < 1e-3  # ONNX forward = torch eval
    # Samples x = f^-1(z) from the ONNX inverse lie nearer the moons than Gaussian draws.
    assert report["flow_sample_distance"] < 0.8 * report["gaussian_sample_distance"], report
    assert report["samples"] == 500 and is_png(Path(report["png"]))


def test_dcgan_on_digits_draws_images_with_the_digits_mean_brightness(tmp_path: Path) -> None:
    import dlc

    spec = TRAIN / "dcgan_digits.yaml"
    run = tmp_path / "dcgan"
    train(spec, run, "--set", "training.max_steps=120", "--set", "training.log_every=10")
    discriminator_losses = losses(run, "discriminator_loss")
    # Neither player wins outright: D's loss stays off 0 and near 2 ln 2 = 1.386 (D = 1/2).
    assert 0.1 < discriminator_losses[-1] < 2.0, discriminator_losses
    generator = dlc.compile(spec, weights=run / "model.safetensors")
    z = np.random.default_rng(0).standard_normal((256, 32, 1, 1)).astype(np.float32)
    images = generator.run({"z": z})["image"]
    # Pixels in [-1, 1]: the digits' mean pixel is -0.39 (mostly background); an untrained
    # tanh generator draws about 0.
    assert abs(float(images.mean()) - DIGITS_MEAN_PIXEL) < 0.15, float(images.mean())
    assert is_png(run / "samples.png")


def test_ddpm_on_digits_beats_predicting_no_noise_and_samples_with_the_compiled_sampler(
    tmp_path: Path,
) -> None:
    run = tmp_path / "ddpm"
    # 300 steps, the EMA of the weights over the last few dozen (the example's beta 0.002 averages
    # over ~500 steps, more than this run has).
    short = ("--set", "training.max_steps=300", "--set", "training.log_every=20")
    train(TRAIN / "ddpm_digits.yaml", run, *short, "--set", "training.averaging.beta=0.05")
    steps = losses(run)
    assert steps[-1] < 0.7 * steps[0], steps
    # Baseline: predicting eps = 0 costs E ||eps||^2 / 64 = 1 per pixel (measured: 0.184 here,
    # 0.112 for the full example).
    assert final(run)["loss"] < 0.4
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
