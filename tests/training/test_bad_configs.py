"""Bad training configs as users meet them: `dlc train` exits 1 with a located message
(`file:line:col`, the YAML path, a did-you-mean where one helps), no traceback, and writes
nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

SPEC = """\
dlc: 1
name: tiny
inputs:
  x: {shape: [N, 2]}
layers:
  - linear: 8
  - relu
  - linear: 2
    id: logits
training:
  data:
    path: data.npz
    target: y
  objective: cross_entropy
  optimizer: {name: adam, lr: 0.01}
  epochs: 2
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "tiny.yaml").write_text(SPEC)
    labels = rng.integers(0, 2, 64)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(64, 2)).astype(np.float32), y=labels)
    np.savez(tmp_path / "wide.npz", x=rng.normal(size=(64, 3)).astype(np.float32), y=labels)
    np.savez(tmp_path / "renamed.npz", features=rng.normal(size=(64, 2)).astype(np.float32), y=labels)
    return tmp_path


def _train(project: Path, *args: str):
    result = run_cli("train", "tiny.yaml", "--out", "run", *args, cwd=project)
    assert "Traceback" not in result.output
    return result


def _failed(project: Path, result) -> str:
    assert result.code == 1, result.output
    assert not (project / "run").exists(), "a bad config must write nothing"
    return result.stderr


def test_an_unknown_optimizer_is_located_with_a_did_you_mean(project: Path) -> None:
    (project / "tiny.yaml").write_text(SPEC.replace("name: adam,", "name: adamm,"))
    message = _failed(project, _train(project))
    assert "tiny.yaml:15:21: error: unknown optimizer 'adamm' (at training.optimizer.name)" in message
    assert "did you mean 'adam'" in message


def test_a_negative_learning_rate_from_set_points_at_the_key_it_replaced(project: Path) -> None:
    message = _failed(project, _train(project, "--set", "training.optimizer.lr=-3e-4"))
    assert "tiny.yaml:15:31: error: invalid 'lr': expected greater than 0" in message
    assert "(at training.optimizer.lr)" in message
    assert "the value comes from --set training.optimizer.lr=-3e-4" in message


def test_a_loss_that_does_not_fit_the_outputs_is_located_at_the_objective(project: Path) -> None:
    message = _failed(project, _train(project, "--set", "training.objective=mse"))
    assert "tiny.yaml:14:14: error: the mse loss does not fit the model" in message
    assert "the output [N, 2] with targets [N]" in message


def test_cross_entropy_labels_beyond_the_classes_do_not_fit(project: Path) -> None:
    rng = np.random.default_rng(1)
    np.savez(project / "data.npz", x=rng.normal(size=(64, 2)).astype(np.float32), y=rng.integers(0, 5, 64))
    message = _failed(project, _train(project))
    assert "labels run from 0 to 4, the output has 2 classes" in message


def test_a_mis_shaped_array_names_the_array_its_shape_and_the_input(project: Path) -> None:
    message = _failed(project, _train(project, "--set", "training.data.path=wide.npz"))
    assert "tiny.yaml:12:5: error: array 'x' of shape [64, 3] does not fit the input 'x' [N, 2]" in message


def test_a_missing_array_lists_what_the_file_holds(project: Path) -> None:
    message = _failed(project, _train(project, "--set", "training.data.path=renamed.npz"))
    assert "error: no array 'x' for the spec input 'x' (at training.data)" in message
    assert "the data holds: features, y" in message


def test_a_missing_data_file_is_located_at_its_path(project: Path) -> None:
    message = _failed(project, _train(project, "--set", "training.data.path=nowhere.npz"))
    assert "tiny.yaml:12:11: error: data file not found" in message


def test_an_unknown_key_and_an_unknown_dataset_are_reported_together(project: Path) -> None:
    spec = SPEC.replace("  epochs: 2", "  epoch: 2").replace("path: data.npz", "dataset: digitz")
    (project / "tiny.yaml").write_text(spec)
    message = _failed(project, _train(project))
    assert "tiny.yaml:16:3: error: unknown key 'epoch'" in message and "did you mean 'epochs'" in message


def test_an_unknown_dataset_gets_a_did_you_mean(project: Path) -> None:
    (project / "tiny.yaml").write_text(
        SPEC.replace("path: data.npz", "dataset: digitz").replace("    target: y\n", "")
    )
    message = _failed(project, _train(project))
    assert "unknown dataset 'digitz' (at training.data.dataset)" in message and "'digits'" in message


def test_a_config_file_is_validated_in_its_own_file(project: Path) -> None:
    (project / "train.yaml").write_text(
        "data: {path: data.npz, target: y}\nobjective: crossentropy\noptimizer: sgd\n"
    )
    message = _failed(project, _train(project, "--config", "train.yaml"))
    assert "train.yaml:2:12: error: unknown objective 'crossentropy'" in message
    assert "did you mean 'cross_entropy'" in message


def test_dlc_validate_checks_the_training_section_too(project: Path) -> None:
    (project / "tiny.yaml").write_text(SPEC.replace("lr: 0.01", "lr: -1"))
    result = run_cli("validate", "tiny.yaml", cwd=project)
    assert result.code == 1
    assert "tiny.yaml:15:31: error: invalid 'lr'" in result.stderr


def test_a_good_config_trains_and_set_overrides_reach_the_optimizer(project: Path) -> None:
    result = _train(project, "--set", "training.optimizer.lr=3e-4", "--set", "training.epochs=1")
    assert result.code == 0, result.output
    lines = [json.loads(line) for line in (project / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines and all(line.get("lr", 3e-4) == pytest.approx(3e-4) for line in lines)


def test_the_schema_describes_the_training_section() -> None:
    result = run_cli("schema")
    schema = json.loads(result.stdout)
    training = schema["properties"]["training"]
    assert training["additionalProperties"] is False
    assert {"data", "objective", "optimizer", "schedule", "averaging", "epochs"} <= set(
        training["properties"]
    )
