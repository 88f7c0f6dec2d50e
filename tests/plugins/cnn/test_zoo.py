"""The CNN zoo at full size: parameter counts exactly and MACs within 1% of the reference
models (figures from reference_models.json: torchvision's published num_params and _ops,
or the model built in torch and counted with FlopCounterMode / 2, batch 1). Counting
lowers the spec only, so even VGG-16 never draws its 138M weights."""

from __future__ import annotations

import json

import pytest

import dlc
from tests.conftest import SPECS, run_cli

ZOO = SPECS / "cnn"

# spec: (parameters, MACs at batch 1, the reference model)
REFERENCE = {
    "lenet5.yaml": (61_706, 416_520, "LeNet-5, modern layer sizes (PyTorch tutorial Net)"),
    "alexnet.yaml": (61_100_840, 714_188_480, "torchvision alexnet"),
}


def test_every_zoo_spec_has_reference_counts() -> None:
    assert sorted(p.name for p in ZOO.glob("*.yaml")) == sorted(REFERENCE)


@pytest.mark.parametrize("spec", sorted(REFERENCE))
def test_zoo_spec_matches_the_reference_counts(spec: str) -> None:
    params, macs, _ = REFERENCE[spec]
    summary = dlc.compile(ZOO / spec, opt_level=0).summary()
    assert summary.params == params
    assert abs(summary.macs - macs) <= 0.01 * macs, f"{summary.macs:,} MACs vs {macs:,}"


@pytest.mark.parametrize("spec", sorted(REFERENCE))
def test_dlc_summary_json_reports_the_counts(spec: str) -> None:
    result = run_cli("summary", str(ZOO / spec), "--json")
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    params, macs, _ = REFERENCE[spec]
    assert report["params"] == params
    assert abs(report["macs"] - macs) <= 0.01 * macs
