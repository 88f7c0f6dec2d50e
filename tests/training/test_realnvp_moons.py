"""The zoo's RealNVP trained on two moons by `dlc train --config` with the flow NLL: its
held-out NLL beats the best single Gaussian's, and the ONNX model compiled from the trained
weights gives the same z and log_det as torch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

import dlc
from dlc.training.plan import plan_training
from tests.conftest import EXAMPLES, SPECS, run_cli

REALNVP = SPECS / "generative" / "realnvp_moons.yaml"
CONFIG = EXAMPLES / "train" / "realnvp_moons.train.yaml"
SMALL = ("--set", "hidden=32", "--set", "training.epochs=10")


def test_realnvp_beats_a_gaussian_on_held_out_moons_and_deploys(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("train", str(REALNVP), "--config", str(CONFIG), *SMALL, "--out", str(run), timeout=600)
    assert result.code == 0, result.output
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (final,) = [line for line in lines if line["split"] == "final_test"]
    plan = plan_training(REALNVP, config_path=CONFIG, overrides={"hidden": 32, "training.epochs": 10})
    train_x, test_x = plan.splits.train["x"].astype(np.float64), plan.splits.test["x"].astype(np.float64)
    mean, covariance = train_x.mean(0), np.cov(train_x.T)
    centered = test_x - mean
    gaussian = np.mean(
        0.5 * np.einsum("ni,ij,nj->n", centered, np.linalg.inv(covariance), centered)
        + 0.5 * np.log(np.linalg.det(2 * math.pi * covariance))
    )
    assert final["loss"] < gaussian - 0.5, (
        final["loss"],
        gaussian,
    )  # measured 1.27 against 1.91 (the full example: 0.67)
    weights = run / "model.safetensors"
    module = plan.models["model"].torch_module()
    module.load_state_dict(load_file(str(weights)))
    module.eval()
    with torch.no_grad():
        z, log_det = (t.numpy() for t in module(x=torch.from_numpy(plan.splits.test["x"])))
    outputs = dlc.compile(REALNVP, overrides={"hidden": 32}, weights=weights).run(
        {"x": plan.splits.test["x"]}
    )
    np.testing.assert_allclose(outputs["z"], z, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs["log_det"], log_det, rtol=1e-4, atol=1e-4)
