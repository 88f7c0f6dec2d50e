"""The recurrent blocks against torch's own nn.RNN / nn.LSTM / nn.GRU: the same weights
(a torch checkpoint loaded with `weights=`), run in ONNX Runtime and in the ejected
PyTorch module, agree with torch's module run sequence by sequence within 1e-5 (max abs
error), for every cell, 1 and 2 layers, one and two directions, with and without initial
states and padded lengths, batch-first and time-first."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import yaml

import dlc
from dlc.runtime import Session
from dlc.spec.loader import load_spec
from tests.plugins.recurrent.reference import CELLS, HIDDEN, Case, torch_reference

TOLERANCE = 1e-5

# torch's own LSTM with proj_size says so on every call; it is the reference, not the subject.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


def all_cases() -> list[Case]:
    cases = []
    for cell, layers, bidirectional, lengths, initial_state in itertools.product(
        CELLS, (1, 2), (False, True), (False, True), (False, True)
    ):
        # Both layouts, alternating, so that each appears with every other option.
        batch_first = (layers + bidirectional + lengths + initial_state) % 2 == 1
        cases.append(Case(cell, layers, bidirectional, batch_first, lengths, initial_state))
    return cases


def max_errors(
    case: Case, model, inputs: dict[str, np.ndarray], module: torch.nn.RNNBase
) -> dict[str, float]:
    """Max abs error of ONNX Runtime and of the ejected module against torch's module."""
    expected = torch_reference(case, module, inputs)
    onnx_outputs = model.run(inputs, provider="cpu")
    ejected = model.torch_module()
    names = [n.attrs.name for n in model.graph.inputs()]
    with torch.no_grad():
        ejected_outputs = ejected(*(torch.from_numpy(inputs[n]) for n in names))
    errors = {}
    for (name, want), got in zip(expected.items(), ejected_outputs, strict=True):
        assert onnx_outputs[name].shape == want.shape == tuple(got.shape), name
        errors[f"onnx {name}"] = float(np.abs(onnx_outputs[name] - want).max())
        errors[f"torch {name}"] = float(np.abs(got.numpy() - want).max())
    return errors


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.name)
def test_onnx_runtime_and_ejected_module_match_torchs_own_module(case: Case, tmp_path) -> None:
    module = case.torch_module()
    model = case.compile(tmp_path, module)
    errors = max_errors(case, model, case.inputs(time=7, batch=4), module)
    assert max(errors.values()) <= TOLERANCE, errors


@pytest.mark.parametrize(
    "case",
    [Case("lstm", 2, True, False, True, True), Case("lstm-projection", 2, True, True, True, True)],
    ids=lambda c: c.name,
)
def test_one_onnx_file_runs_at_1_7_and_300_steps(case: Case, tmp_path) -> None:
    module = case.torch_module()
    path = tmp_path / "model.onnx"
    case.compile(tmp_path, module).save(path)
    session = Session(path, "cpu")
    for time in (1, 7, 300):
        inputs = case.inputs(time=time, batch=3, seed=time)
        expected = torch_reference(case, module, inputs)
        for name, got in session.run(inputs).items():
            assert np.abs(got - expected[name]).max() <= TOLERANCE, (time, name)


def test_state_dict_is_torchs_and_its_keys_are_the_onnx_initializer_names(tmp_path) -> None:
    case = Case("lstm-projection", layers=2, bidirectional=True)
    module = case.torch_module()
    model = case.compile(tmp_path, module)
    ejected = model.torch_module().state_dict()
    assert list(ejected) == [f"rnn.{key}" for key in module.state_dict()]
    assert all(ejected[f"rnn.{k}"].shape == v.shape for k, v in module.state_dict().items())
    initializers = {t.name for t in model.onnx_model().graph.initializer}
    assert set(ejected) <= initializers


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_onnx_runtime_folds_the_gate_reordering_when_the_session_starts(cell: str, tmp_path) -> None:
    """Gates are reordered from torch's tensors in the graph; with the weights as
    initializers ONNX Runtime folds that into constants, leaving the recurrent op alone."""
    case = Case(cell, layers=2, bidirectional=True)
    model = case.compile(tmp_path, case.torch_module())
    emitted = Counter(node.op_type for node in model.onnx_model().graph.node)
    assert emitted["Split"] > 0
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    onnxruntime.InferenceSession(
        model.onnx_model().SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    optimized = Counter(node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    assert optimized[cell.upper()] == 2
    assert optimized["Split"] == optimized["Unsqueeze"] == 0


def test_projected_lstm_is_a_scan_per_layer_and_direction(tmp_path) -> None:
    case = Case("lstm-projection", layers=2, bidirectional=True, lengths=True)
    ops = Counter(n.op_type for n in case.compile(tmp_path, case.torch_module()).onnx_model().graph.node)
    assert ops["Scan"] == 4
    assert ops["LSTM"] == 0 and ops["Loop"] == 0


def test_graph_module_traces_a_padded_batch(tmp_path) -> None:
    case = Case("gru", layers=2, bidirectional=True, batch_first=True, lengths=True, initial_state=True)
    module = case.torch_module()
    model = case.compile(tmp_path, module)
    inputs = case.inputs(time=6, batch=3)
    expected = torch_reference(case, module, inputs)
    with torch.no_grad():
        traced = model.graph_module()(*(torch.from_numpy(a) for a in inputs.values()))
    for (name, want), got in zip(expected.items(), traced, strict=True):
        assert np.abs(got.numpy() - want).max() <= TOLERANCE, name


@pytest.mark.parametrize("cell", ["rnn-tanh", "lstm-projection", "gru"])
def test_weights_are_drawn_as_torch_draws_them(cell: str) -> None:
    """torch: every weight and bias U(-1/sqrt(hidden), 1/sqrt(hidden))."""
    model = dlc.compile(load_spec("case.yaml", text=yaml.safe_dump(Case(cell, layers=2).spec())))
    bound = 1 / np.sqrt(HIDDEN)
    values = np.abs(np.concatenate([a.ravel() for a in model.weights().values()]))
    assert values.max() <= bound
    assert values.max() > 0.95 * bound and 0.4 * bound < values.mean() < 0.6 * bound
