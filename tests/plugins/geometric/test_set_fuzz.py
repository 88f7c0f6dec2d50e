"""Property: mutating the options of a small spec with every set, point-cloud and spectral
block never crashes dlc. Options are replaced with valid, invalid and absurd values;
every mutant either compiles to ONNX or fails with a located dlc error (in the spec, or in
the family's templates for a T-Net's `k`), never an internal plugin error or a Python
exception."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlc
from dlc.errors import DlcError
from dlc.registry import default_registry
from dlc.spec.lower import InternalPluginError

SEED = yaml.safe_load(
    """
dlc: 1
name: small_sets
inputs:
  sets: {shape: [N, M, 3]}
  mask: {shape: [N, M], dtype: bool}
  cloud: {shape: [N, 3, P]}
  nodes: {shape: [V, 4]}
  basis: {shape: [V, 6]}
layers:
  - perm_equivariant: {out: 8, pool: max, lambda_term: false}
    in: [sets, mask]
  - perm_equivariant: {out: 8, pool: mean, lambda_term: true}
  - set_pool: {reduce: mean, keepdims: false}
    in: [perm_equivariant_1, mask]
    id: set_out
  - tnet: {k: 3, eps: 0.001}
    in: cloud
    id: transform
  - apply_transform:
    in: [cloud, transform]
  - add_identity:
    in: transform
    id: cloud_out
  - spectral_conv: {out: 5, bias: true}
    in: [nodes, basis]
  - spectral_conv: {bias: false}
    in: [spectral_conv_0, basis]
    id: graph_out
outputs: [set_out, cloud_out, graph_out]
"""
)

VALUES = st.one_of(
    st.integers(-2, 9),
    st.lists(st.integers(-1, 5), min_size=0, max_size=3),
    st.sampled_from(["sum", "mean", "max", "min", "x", None, True, False, 2.5, -1.0, {"a": 1}]),
)
TEMPLATE_OPTIONS = {"tnet": ["k", "eps"], "apply_transform": []}


@st.composite
def mutants(draw: st.DrawFn) -> str:
    spec = copy.deepcopy(SEED)
    layers = spec["layers"]
    for _ in range(draw(st.integers(1, 3))):
        layer = layers[draw(st.integers(0, len(layers) - 1))]
        head = next(k for k in layer if k not in ("id", "in"))
        if head in TEMPLATE_OPTIONS:
            fields = TEMPLATE_OPTIONS[head]
        else:
            fields = sorted(default_registry().block(head).config.model_fields)  # the block's own options
        fields = fields or ["k"]  # a block without options: an unknown one
        options = layer[head] if isinstance(layer[head], dict) else {}
        options[draw(st.sampled_from(fields))] = copy.deepcopy(draw(VALUES))
        layer[head] = options
    return yaml.safe_dump(spec, sort_keys=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_mutated_set_options_compile_or_fail_with_located_errors(text: str) -> None:
    try:
        model = dlc.compile(dlc.load_spec("mutant.yaml", text=text))
        model.onnx_model()
    except InternalPluginError as error:  # a bug, not bad input
        pytest.fail(f"internal error on a mutated spec:\n{text}\n{error}")
    except DlcError as error:
        assert error.diagnostics and all(d.message for d in error.diagnostics)
        assert error.location is not None, error.render()
        assert error.location.file == "mutant.yaml" or error.location.file.endswith("templates_sets.yaml"), (
            error.render()
        )
