"""Every registered op, on every one of its samples: torch lowering vs ONNX lowering run in
ONNX Runtime. Parametrized over the registry, so a new op is checked by being registered.
Tolerance: each sample's own (default 1e-5), relative to the output's scale."""

from __future__ import annotations

import pytest

from dlc.ir.ops import OpGroup
from dlc.registry import default_registry
from dlc.testing import max_relative_error, op_parity

CASES = [
    pytest.param(op, sample, id=f"{op.name}-{sample.name or index}")
    for op in default_registry().ops()
    if op.group is not OpGroup.SOURCE
    for index, sample in enumerate(op.samples())
]


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_torch_lowering_matches_onnx_runtime(op, sample) -> None:
    onnx_outputs, torch_outputs = op_parity(op, sample)
    assert len(onnx_outputs) == len(torch_outputs)
    for expected, actual in zip(onnx_outputs, torch_outputs, strict=True):
        assert expected.shape == actual.shape
        assert max_relative_error(expected, actual) <= sample.tolerance


def test_every_op_has_samples() -> None:
    for op in default_registry().ops():
        if op.group is not OpGroup.SOURCE:
            assert list(op.samples()), op.name
