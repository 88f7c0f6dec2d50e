"""Running a dlc spec and a torch_geometric module on the same weights and graph.

The PyG module's state_dict is written to a safetensors file and loaded into the spec
through `dlc.compile(..., weights=...)`, dlc's own loading path, with no renaming; the
outputs of ONNX Runtime and of the ejected torch module are compared with PyG's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import dlc
from dlc.api import CompiledModel
from dlc.plugins.geometric.sample_graphs import sample_graph
from dlc.testing import max_relative_error

TOLERANCE = 1e-5


def awkward_graph(seed: int, nodes: int, edges: int, features: int) -> dict[str, np.ndarray]:
    """A random graph with isolated nodes, self-loops (one duplicated), duplicate edges and
    edge weights."""
    x, edge_index, weight = sample_graph(seed, nodes, edges, features, isolated=2)
    edge_index[:, 2] = edge_index[:, 1]  # a second duplicate
    edge_index[:, 3] = [1, 1]  # another self-loop
    return {"x": x, "edge_index": edge_index, "edge_weight": weight}


def write_weights(module: torch.nn.Module, path: Path) -> Path:
    state = {key: value.detach().contiguous() for key, value in module.state_dict().items()}
    save_file(state, str(path))
    return path


def compile_with(spec: Path, module: torch.nn.Module, tmp_path: Path, **overrides: object) -> CompiledModel:
    weights = write_weights(module, tmp_path / "weights.safetensors")
    return dlc.compile(spec, weights=weights, overrides=overrides)


def dlc_outputs(model: CompiledModel, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(ONNX Runtime output, ejected torch module output) of the model's first output."""
    names = [node.attrs.name for node in model.graph.inputs()]
    feed = {name: inputs[name] for name in names}
    onnx_out = next(iter(model.run(feed, provider="cpu").values()))
    network = model.torch_module()
    with torch.no_grad():
        torch_out = network(*(torch.from_numpy(feed[name]) for name in names))
    torch_out = torch_out[0] if isinstance(torch_out, tuple) else torch_out
    return onnx_out, torch_out.numpy()


def assert_matches(
    expected: torch.Tensor | np.ndarray, model: CompiledModel, inputs: dict[str, np.ndarray]
) -> None:
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    onnx_out, torch_out = dlc_outputs(model, inputs)
    onnx_error = max_relative_error(expected, onnx_out)
    torch_error = max_relative_error(expected, torch_out)
    assert onnx_error <= TOLERANCE, f"ONNX Runtime vs PyG: {onnx_error:.2e} (shapes {onnx_out.shape})"
    assert torch_error <= TOLERANCE, f"ejected torch vs PyG: {torch_error:.2e}"
