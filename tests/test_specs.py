"""Every spec under specs/: compiled to ONNX and to a PyTorch package, at -O0 and -O2, run
on the same random inputs; ONNX Runtime, the ejected model.py and the other level agree
within 1e-5 relative to the output scale (float32)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import dlc
from dlc.runtime import Session, random_inputs
from dlc.testing import max_relative_error
from tests.conftest import REPO, SPECS

ALL_SPECS = sorted(SPECS.rglob("*.yaml"))
TOLERANCE = 1e-5


def ejected_outputs(model, directory, inputs) -> dict[str, np.ndarray]:
    model.save(directory, target="torch")
    spec = importlib.util.spec_from_file_location(f"ejected_{id(directory)}", directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    network = module.load_model()
    names = [n.attrs.name for n in model.graph.inputs()]
    with torch.no_grad():
        result = network(*(torch.from_numpy(inputs[name]) for name in names))
    results = result if isinstance(result, tuple) else (result,)
    return {name: r.numpy() for name, r in zip(model.graph.outputs, results, strict=True)}


@pytest.mark.parametrize("path", ALL_SPECS, ids=[str(p.relative_to(REPO)) for p in ALL_SPECS])
def test_spec_runs_the_same_in_onnx_runtime_and_torch_at_every_level(path, tmp_path) -> None:
    reference = None
    for level in (0, 2):
        model = dlc.compile(path, opt_level=level)
        session = Session(model.onnx_model(), "cpu")
        for batch in (1, 3):
            inputs = random_inputs(session, {d: batch for d in session.dim_names()}, seed=batch)
            onnx_outputs = session.run(inputs)
            torch_outputs = ejected_outputs(model, tmp_path / f"O{level}", inputs)
            for name, expected in onnx_outputs.items():
                assert max_relative_error(expected, torch_outputs[name]) <= TOLERANCE, (level, batch, name)
            if batch == 3:
                if reference is None:
                    reference = onnx_outputs
                else:  # -O2 against -O0
                    for name, expected in reference.items():
                        assert max_relative_error(expected, onnx_outputs[name]) <= TOLERANCE, name


def test_mlp_has_the_documented_parameter_count() -> None:
    assert dlc.compile(SPECS / "mlp.yaml").summary().params == 235_146
