"""Every spec under specs/: compiled to ONNX and to a PyTorch package, at -O0 and -O2, run
on the same random inputs; ONNX Runtime, the ejected model.py and the other level agree
within the tolerance (default 1e-5 relative to the output scale, float32).

Specs too large for CI run at reduced size; each family says which and why in
tests/spec_settings/<family>.yaml (see the README there)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import dlc
from dlc.runtime import Session, random_inputs
from dlc.testing import max_relative_error
from tests.conftest import REPO, SPECS

ALL_SPECS = sorted(SPECS.rglob("*.yaml"))
DEFAULTS: dict[str, Any] = {"set": {}, "tolerance": 1e-5, "dims": {}, "levels": [0, 2]}


def load_settings() -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for path in sorted((Path(__file__).parent / "spec_settings").glob("*.yaml")):
        for spec, values in (yaml.safe_load(path.read_text()) or {}).items():
            assert (SPECS / spec).is_file(), f"{path.name} names a missing spec: {spec}"
            assert spec not in settings, f"{spec} has settings in two files"
            settings[spec] = {**DEFAULTS, **(values or {})}
    return settings


SETTINGS = load_settings()


def settings_for(path: Path) -> dict[str, Any]:
    return SETTINGS.get(str(path.relative_to(SPECS)), DEFAULTS)


def ejected_outputs(model, directory: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    model.save(directory, target="torch")
    spec = importlib.util.spec_from_file_location(f"ejected_{abs(hash(directory))}", directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    network = module.load_model()
    names = [n.attrs.name for n in model.graph.inputs()]
    with torch.no_grad():
        result = network(*(torch.from_numpy(inputs[name]) for name in names))
    results = result if isinstance(result, tuple) else (result,)
    return {name: r.numpy() for name, r in zip(model.graph.outputs, results, strict=True)}


def dim_choices(session: Session, settings: dict[str, Any]) -> list[dict[str, int]]:
    names = session.dim_names()
    sizes = [settings["dims"].get(name, [1, 3]) for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*sizes)]


@pytest.mark.parametrize("path", ALL_SPECS, ids=[str(p.relative_to(REPO)) for p in ALL_SPECS])
def test_spec_runs_the_same_in_onnx_runtime_and_torch_at_every_level(path: Path, tmp_path: Path) -> None:
    settings = settings_for(path)
    tolerance = float(settings["tolerance"])
    reference: dict[str, dict[str, np.ndarray]] = {}
    for level in settings["levels"]:
        model = dlc.compile(path, opt_level=level, overrides=settings["set"])
        session = Session(model.onnx_model(), "cpu")
        for index, dims in enumerate(dim_choices(session, settings)):
            inputs = random_inputs(session, dims, seed=index)
            onnx_outputs = session.run(inputs)
            torch_outputs = ejected_outputs(model, tmp_path / f"O{level}", inputs)
            for name, expected in onnx_outputs.items():
                error = max_relative_error(expected, torch_outputs[name])
                assert error <= tolerance, f"-O{level} {dims} output {name}: torch vs ONNX error {error:.2e}"
            key = repr(dims)
            if key not in reference:
                reference[key] = onnx_outputs
                continue
            for name, expected in reference[key].items():  # this level against the first one
                error = max_relative_error(expected, onnx_outputs[name])
                assert error <= tolerance, (
                    f"-O{level} vs -O{settings['levels'][0]} {dims} {name}: {error:.2e}"
                )


def test_mlp_has_the_documented_parameter_count() -> None:
    assert dlc.compile(SPECS / "mlp.yaml").summary().params == 235_146
