"""Causal masking in GPT-2: changing a token never changes the outputs at earlier positions,
in ONNX Runtime (ONNX Runtime output and portable ONNX) and in the ejected PyTorch module;
and it does change the outputs from its own position on (so the test can fail)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dlc
from tests.conftest import SPECS

SIZES = {"vocab": 1000, "context": 32, "dim": 64, "heads": 4, "layers": 2}


def logits_of(model: dlc.CompiledModel, ids: np.ndarray, runtime: str) -> np.ndarray:
    if runtime == "onnx":
        return model.run({"input_ids": ids}, provider="cpu")["logits"]
    with torch.no_grad():
        return model.torch_module()(torch.from_numpy(ids)).numpy()


@pytest.mark.parametrize(("portable", "runtime"), [(False, "onnx"), (True, "onnx"), (False, "torch")])
def test_a_future_token_does_not_change_earlier_gpt2_outputs(portable: bool, runtime: str) -> None:
    model = dlc.compile(SPECS / "attention" / "gpt2_small.yaml", overrides=SIZES, portable=portable)
    ids = np.random.default_rng(3).integers(0, 1000, (2, 12))
    before = logits_of(model, ids, runtime)
    for position in (11, 6, 0):
        changed = ids.copy()
        changed[:, position] = (changed[:, position] + 1) % 1000
        after = logits_of(model, changed, runtime)
        np.testing.assert_array_equal(after[:, :position], before[:, :position])
        assert (np.abs(after[:, position:] - before[:, position:]).max(axis=-1) > 1e-3).all()
