"""A trained digits classifier shared by the attack tests: the dlc torch module of
`examples/analysis/digits_cnn.yaml`, trained with plain torch by the example's own script
(`examples/analysis/train_digits.py`, full-batch Adam, a few seconds)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "analysis"
DIGITS_SPEC = EXAMPLE / "digits_cnn.yaml"


@dataclass(frozen=True)
class TrainedDigits:
    weights: Path
    test_accuracy: float


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory: pytest.TempPathFactory) -> TrainedDigits:
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE / "train_digits.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    weights = tmp_path_factory.mktemp("digits") / "digits_cnn.safetensors"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CI machine: one thread is several times faster here
    try:
        accuracy = script.train_digits(weights)
    finally:
        torch.set_num_threads(threads)
    return TrainedDigits(weights, accuracy)
