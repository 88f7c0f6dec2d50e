"""`linear_recurrence` against the recurrence itself: a step-by-step float64 numpy loop,
xi_0 = 0, xi_{t+1} = Lambda xi_t + B x_t, y_t = Re(C xi_t) + D x_t (the issue's
indexing), with ONNX Runtime and the ejected module within 1e-4 of the output scale at
T = 4096; one ONNX file for every T, with the same ops; the LRU's initialization."""

from __future__ import annotations

import re
import textwrap
from collections import Counter

import numpy as np
import onnx
import pytest
import torch

import dlc
from dlc.runtime import Session
from dlc.spec.loader import load_spec

FEATURES, STATE = 4, 16


def compile_layer(steps: int | str = "T", batch_first: bool = True, **options) -> dlc.CompiledModel:
    options = {"state": STATE, "r_min": 0.99, "r_max": 0.9999, "batch_first": batch_first, **options}
    shape = ["N", steps, FEATURES] if batch_first else [steps, "N", FEATURES]
    text = f"""
    dlc: 1
    name: lru_layer
    inputs: {{x: {{shape: {shape}}}}}
    layers:
      - linear_recurrence: {options}
        id: lru
    """
    return dlc.compile(load_spec("lru_layer.yaml", text=textwrap.dedent(text).replace("'", "")))


def step_by_step(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The recurrence one step at a time in float64, x [N, T, H] -> y [N, T, H]."""
    w = {name.split(".")[-1]: value.astype(np.float64) for name, value in weights.items()}
    eigenvalues = np.exp(-np.exp(w["nu_log"]) + 1j * np.exp(w["theta_log"]))
    b = (w["B_re"] + 1j * w["B_im"]) * np.exp(w["gamma_log"])[:, None]
    c = w["C_re"] + 1j * w["C_im"]
    state = np.zeros((x.shape[0], len(eigenvalues)), dtype=complex)
    y = np.empty(x.shape)
    for t in range(x.shape[1]):
        y[:, t] = (state @ c.T).real + w["D"] * x[:, t]
        state = eigenvalues * state + x[:, t] @ b.T
    return y


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))


def ejected(model: dlc.CompiledModel, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.torch_module()(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-first"])
def test_onnx_and_torch_match_the_step_by_step_recurrence_at_4096_steps(batch_first: bool) -> None:
    model = compile_layer(batch_first=batch_first)
    x = np.random.default_rng(0).standard_normal((2, 4096, FEATURES)).astype(np.float32)
    expected = step_by_step(model.weights(), x)
    if not batch_first:
        x, expected = x.transpose(1, 0, 2).copy(), expected.transpose(1, 0, 2)
    (onnx_output,) = model.run({"x": x}, provider="cpu").values()
    assert relative_error(onnx_output, expected) <= 1e-4
    assert relative_error(ejected(model, x), expected) <= 1e-4
    # The long memory is there: |lambda| near 1 carries the first inputs to the end.
    assert np.abs(np.exp(-np.exp(model.weights()["lru.nu_log"]))).min() >= 0.99


def test_one_onnx_file_runs_at_every_length_with_a_partial_last_chunk(tmp_path) -> None:
    model = compile_layer(chunk=8)
    path = tmp_path / "lru.onnx"
    model.save(path)
    session = Session(path, "cpu")
    for steps in (1, 7, 8, 9, 300):
        x = np.random.default_rng(steps).standard_normal((3, steps, FEATURES)).astype(np.float32)
        (output,) = session.run({"x": x}).values()
        assert relative_error(output, step_by_step(model.weights(), x)) <= 1e-5, steps


def node_counts(graph: onnx.GraphProto) -> Counter:
    """ONNX op types, subgraphs (the Loop body) included."""
    counts: Counter = Counter()
    for node in graph.node:
        counts[node.op_type] += 1
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                counts += node_counts(attribute.g)
    return counts


def test_the_emitted_graph_has_the_same_ops_for_64_and_4096_steps() -> None:
    short, long = (node_counts(compile_layer(steps).onnx_model().graph) for steps in (64, 4096))
    assert short == long
    assert short["Loop"] == 1 and short["Scan"] == 0
    assert sum(short.values()) < 120


def test_the_ejected_module_has_no_loop_over_time_and_traces_with_fx() -> None:
    model = compile_layer()
    source = model.torch_source()
    assert "self.lru = LinearRecurrence(4, 16, r_min=0.99, r_max=0.9999, batch_first=True)" in source
    assert not re.search(r"\bfor \w+ in\b", source)
    assert len(re.findall(r"\bwhile\b", source)) == 1  # the log2(T / chunk) doubling steps
    traced = model.graph_module()
    for steps in (5, 70):
        x = np.random.default_rng(steps).standard_normal((2, steps, FEATURES)).astype(np.float32)
        with torch.no_grad():
            output = traced(torch.from_numpy(x)).numpy()
        assert relative_error(output, step_by_step(model.weights(), x)) <= 1e-5


def test_parameters_are_the_lrus_with_its_initialization() -> None:
    model = compile_layer(state=64, r_min=0.4, r_max=0.9, max_phase=3.0)
    weights = {name.split(".")[-1]: value for name, value in model.weights().items()}
    assert {name: value.shape for name, value in weights.items()} == {
        "nu_log": (64,),
        "theta_log": (64,),
        "gamma_log": (64,),
        "B_re": (64, FEATURES),
        "B_im": (64, FEATURES),
        "C_re": (FEATURES, 64),
        "C_im": (FEATURES, 64),
        "D": (FEATURES,),
    }
    assert model.summary().params == 3 * 64 + 4 * 64 * FEATURES + FEATURES
    assert model.summary({"N": 1, "T": 10}).macs == 10 * 4 * 64 * FEATURES
    modulus = np.exp(-np.exp(weights["nu_log"].astype(np.float64)))
    assert 0.4 <= modulus.min() < 0.5 and 0.85 < modulus.max() <= 0.9
    phase = np.exp(weights["theta_log"])
    assert 0 < phase.min() < 0.3 and 2.7 < phase.max() <= 3.0
    np.testing.assert_allclose(np.exp(weights["gamma_log"]), np.sqrt(1 - modulus**2), rtol=1e-5)
    assert abs(weights["B_re"].std() * np.sqrt(2 * FEATURES) - 1) < 0.15
    other_seed = dlc.compile(model.spec, seed=1).weights()["lru.nu_log"]
    assert not np.array_equal(other_seed, weights["nu_log"])


def test_the_ejected_module_draws_the_same_ring_by_itself() -> None:
    namespace: dict = {}
    exec(compile_layer().torch_source(), namespace)
    torch.manual_seed(0)
    layer = namespace["LinearRecurrence"](8, 4096, r_min=0.5, r_max=0.8)
    modulus = torch.exp(-torch.exp(layer.nu_log)).detach().numpy()
    assert 0.5 <= modulus.min() < 0.51 and 0.79 < modulus.max() <= 0.8
    np.testing.assert_allclose(
        torch.exp(layer.gamma_log).detach().numpy(), np.sqrt(1 - modulus**2), rtol=1e-4
    )
