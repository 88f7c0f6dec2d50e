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


def runner(model: dlc.CompiledModel, runtime: str):
    if runtime == "onnx":
        session = model.session("cpu")
        return lambda ids: session.run({"input_ids": ids})["logits"]
    module = model.torch_module()

    def run(ids: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(ids)).numpy()

    return run


@pytest.mark.parametrize(("portable", "runtime"), [(False, "onnx"), (True, "onnx"), (False, "torch")])
def test_a_future_token_does_not_change_earlier_gpt2_outputs(portable: bool, runtime: str) -> None:
    model = dlc.compile(SPECS / "attention" / "gpt2_small.yaml", overrides=SIZES, portable=portable)
    logits_of = runner(model, runtime)
    ids = np.random.default_rng(3).integers(0, 1000, (2, 12))
    before = logits_of(ids)
    for position in (11, 6, 0):
        changed = ids.copy()
        changed[:, position] = (changed[:, position] + 1) % 1000
        after = logits_of(changed)
        np.testing.assert_array_equal(after[:, :position], before[:, :position])
        assert (np.abs(after[:, position:] - before[:, position:]).max(axis=-1) > 1e-3).all()
