"""Property: mutating specs that use grouped-query attention, additive biases, rotary
embeddings and the Llama templates never crashes dlc. Every mutant compiles and emits ONNX
(fused and portable), or fails with located dlc errors (inside a plugin template: located
there, with a note naming the spec line that uses it); an internal plugin error is a bug."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlc
from dlc.errors import DlcError
from dlc.spec.lower import InternalPluginError
from tests.spec.test_fuzz_specs import _get, _paths

SEED_TEXT = """
dlc: 1
name: attention_mutants
inputs:
  x: {shape: [N, T, 32]}
  positions: {shape: [N, T], dtype: int64, range: [0, 100]}
  bias: {shape: [1, 4, T, T]}
layers:
  - linear: 32
    id: q
    in: x
  - linear: 16
    id: k
    in: x
  - linear: 16
    id: v
    in: x
  - rotary_embedding: {head_dim: 8, dim: 4, base: 500.0, interleaved: true}
    id: q_rotated
    in: [q, positions]
  - rotary_embedding: {head_dim: 8, offset: 3, llama3_scaling: {factor: 8.0, original_max_position: 64}}
    id: k_rotated
    in: k
  - scaled_dot_product_attention: {heads: 4, kv_heads: 2, causal: true}
    in: [q_rotated, k_rotated, v, bias]
    id: attention
  - multi_head_attention: {heads: 4, kv_heads: 1, packed: false}
    in: [attention, bias]
    id: block
  - grouped_query_attention: {dim: 32, heads: 4, kv_heads: 2, theta: 100.0}
    id: template
  - llama_decoder_layer: {dim: 32, heads: 4, kv_heads: 1, hidden: 48}
    id: layer
"""
SEED: dict[str, Any] = yaml.safe_load(SEED_TEXT)
VALUES = st.one_of(
    st.sampled_from([1, 2, 3, 4, 5, 8, 16, 0, -1, True, False, None, 0.5, 1e6]),
    st.sampled_from(["x", "q", "k", "bias", "positions", "attention", "T", "N", [1, "N"], [], {}]),
    st.sampled_from([[1, 4, "T", 1], ["N", 4, "T", "T"], [4, "T", "T"], ["N", "T"], ["T"], [2, 3, "T", "T"]]),
    st.sampled_from(
        [{"factor": 0}, {"factor": 2.0, "low_freq_factor": 4.0}, {"oops": 1}, "int64", "float32"]
    ),
)
KEYS = st.sampled_from(
    [
        "heads",
        "kv_heads",
        "head_dim",
        "dim",
        "base",
        "interleaved",
        "offset",
        "llama3_scaling",
        "causal",
        "scale",
        "packed",
        "rotary",
        "theta",
        "in",
        "shape",
        "dtype",
    ]
)


@st.composite
def mutants(draw: st.DrawFn) -> str:
    spec = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(spec) if p]
        options = [p for p in paths if p[0] in ("layers", "inputs") and len(p) >= 3]
        path = draw(st.sampled_from(options if options and draw(st.booleans()) else paths))
        parent, key = _get(spec, path[:-1]), path[-1]
        action = draw(st.sampled_from(["replace", "delete", "insert"]))
        if action == "replace":
            parent[key] = copy.deepcopy(draw(VALUES))
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = copy.deepcopy(draw(VALUES))
    return yaml.safe_dump(spec, sort_keys=False)


def test_the_seed_compiles() -> None:
    dlc.compile(dlc.load_spec("seed.yaml", text=SEED_TEXT)).onnx_model()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants(), st.booleans())
def test_mutated_attention_specs_compile_or_fail_with_located_errors(text: str, portable: bool) -> None:
    try:
        dlc.compile(dlc.load_spec("mutant.yaml", text=text), portable=portable).onnx_model()
    except InternalPluginError as error:
        pytest.fail(f"internal error on a mutated spec:\n{text}\n{error}")
    except DlcError as error:
        assert error.diagnostics and all(d.message for d in error.diagnostics)
        # In a plugin template, the error points into the template and notes where it is used.
        assert error.location is not None, error.render()
        assert error.location.file == "mutant.yaml" or "used at mutant.yaml:" in error.render()
