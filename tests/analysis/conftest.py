"""A trained digits classifier shared by the attack tests: the dlc torch module of
`specs/digits_cnn.yaml`, trained with plain torch (Adam, full batch) on scikit-learn's
digits in a few seconds; its weights are saved for the command-line tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

SPECS = Path(__file__).parent / "specs"
DIGITS_SPEC = SPECS / "digits_cnn.yaml"


@dataclass(frozen=True)
class TrainedDigits:
    weights: Path
    test_accuracy: float


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory: pytest.TempPathFactory) -> TrainedDigits:
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from dlc.analysis.model_function import compile_for_analysis

    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    module = compile_for_analysis(DIGITS_SPEC, seed=0).torch_module().train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CI machine: one thread is several times faster here
    try:
        optimizer = torch.optim.Adam(module.parameters(), lr=3e-2)
        inputs, labels = torch.from_numpy(train_x), torch.from_numpy(train_y)
        for _ in range(60):
            loss = torch.nn.functional.cross_entropy(module(inputs)[0], labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    module.eval()
    with torch.no_grad():
        accuracy = float((module(torch.from_numpy(test_x))[0].argmax(1).numpy() == test_y).mean())
    weights = tmp_path_factory.mktemp("digits") / "digits_cnn.safetensors"
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(weights))
    return TrainedDigits(weights, accuracy)
