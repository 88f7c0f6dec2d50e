"""Node classification on a stochastic block model graph with a GCN written in core blocks:
full-batch training over the train nodes, accuracy on the held-out nodes, and the ONNX
model from the trained weights predicts every node as torch does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import dlc
from dlc.training.data import NODES, TARGET
from dlc.training.plan import plan_training
from tests.conftest import EXAMPLES, run_cli

GCN = EXAMPLES / "train" / "gcn_sbm.yaml"


def test_a_gcn_learns_the_communities_and_deploys(tmp_path: Path) -> None:
    result = run_cli("train", str(GCN), "--out", str(tmp_path / "run"), timeout=600)
    assert result.code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (final,) = [line for line in lines if line["split"] == "final_test"]
    assert final["accuracy"] >= 0.85  # measured 0.95 on 60 test nodes
    plan = plan_training(GCN)
    test = plan.splits.test
    assert len(test[NODES]) == 60 and set(test[NODES]).isdisjoint(plan.splits.train[NODES])
    weights = tmp_path / "run" / "model.safetensors"
    module = plan.models["model"].torch_module()
    module.load_state_dict(load_file(str(weights)))
    module.eval()
    inputs = {"x": test["x"], "adjacency": test["adjacency"]}
    with torch.no_grad():
        expected = module(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
    logits = dlc.compile(GCN, weights=weights).run(inputs)["conv2"]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    nodes = test[NODES]
    assert (logits[nodes].argmax(1) == test[TARGET][nodes]).mean() == pytest.approx(final["accuracy"])
