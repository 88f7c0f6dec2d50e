"""Helpers for the language tests: compile spec text through the API, run it in ONNX
Runtime and as the ejected torch package (model.py + weights) on the same inputs, and
compare; and write spec text to a file for the CLI."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import torch

import dlc
from dlc.runtime import Session, random_inputs
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error

TOLERANCE = 1e-5  # relative to the output's scale, float32


def compile_text(text: str, **kwargs) -> dlc.CompiledModel:
    return dlc.compile(load_spec("test.yaml", text=textwrap.dedent(text)), **kwargs)


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def ejected_outputs(
    model: dlc.CompiledModel, directory: Path, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Outputs of the ejected model.py (loading weights.safetensors) on `inputs`."""
    model.save(directory, target="torch")
    module_spec = importlib.util.spec_from_file_location(
        f"ejected_{abs(hash(directory))}", directory / "model.py"
    )
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    network = module.load_model()
    names = [n.attrs.name for n in model.graph.inputs()]
    with torch.no_grad():
        result = network(*(torch.from_numpy(inputs[name]) for name in names))
    results = result if isinstance(result, tuple) else (result,)
    return {name: r.detach().numpy() for name, r in zip(model.graph.outputs, results, strict=True)}


def onnx_and_torch(
    model: dlc.CompiledModel, directory: Path, dims: dict[str, int] | None = None, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, ONNX Runtime outputs, ejected torch outputs) on random inputs."""
    session = Session(model.onnx_model(), "cpu")
    inputs = random_inputs(
        session, {name: (dims or {}).get(name, 2) for name in session.dim_names()}, seed=seed
    )
    return inputs, session.run(inputs), ejected_outputs(model, directory, inputs)


def assert_parity(model: dlc.CompiledModel, directory: Path, tolerance: float = TOLERANCE, **kwargs) -> dict:
    """ONNX Runtime and the ejected torch module agree within `tolerance`; returns the
    ONNX outputs."""
    _, expected, actual = onnx_and_torch(model, directory, **kwargs)
    for name, value in expected.items():
        error = max_relative_error(value, actual[name])
        assert error <= tolerance, f"output {name}: torch vs ONNX Runtime error {error:.2e}"
    return expected


def compile_with_weights(
    text: str, state: dict[str, np.ndarray], tmp_path: Path, **kwargs
) -> dlc.CompiledModel:
    """Compile spec text with `state` (name -> array) as its weights, through a
    safetensors file as `dlc compile --weights` takes them."""
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({k: np.array(v, order="C") for k, v in state.items()}, str(path))  # keeps 0-d
    return compile_text(text, weights=path, **kwargs)


def random_state(module: torch.nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random weights for `module` (positive running variances, integer counters kept),
    loaded into it and returned, so that every weight matters in a comparison."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=generator) * 0.5
    module.load_state_dict(state)
    return state
