"""Property: mutating the recurrent zoo specs (options, inputs, wiring) never crashes
dlc. Every mutant compiles and emits ONNX, or fails with located dlc errors; an internal
plugin error is a bug."""

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
from tests.conftest import SPECS
from tests.spec.test_fuzz_specs import _get, _paths
from tests.test_specs import settings_for


def _seed(path) -> dict[str, Any]:
    """The spec at its CI size (ELMo's cells narrowed), with a small vocabulary."""
    spec = yaml.safe_load(path.read_text())
    spec.get("params", {}).update(settings_for(path)["set"])
    if "vocab" in spec.get("params", {}):
        spec["params"]["vocab"] = 50  # the embedding size is not what is being fuzzed
    return spec


SEEDS = [_seed(path) for path in sorted((SPECS / "recurrent").glob("*.yaml"))]
VALUES = st.one_of(
    st.sampled_from([1, 2, 3, True, False]),
    st.sampled_from([0, -1, 20, None, 0.5, 1.5, "x", "T", "N", "int32", "float32"]),
    st.sampled_from(["tanh", "relu", "lengths", "h0", "rnn.h", "rnn.c", "encoder.h", [1, "N"], [], {}]),
    st.sampled_from([["T", "N", 10], ["N", "T", 10], ["N", 10], ["N"], [2, "N", 20], ["x", "h0"]]),
    st.sampled_from([[[1, 4], [9, 2]], [[0, 3]], "forward_layer_0", "token_embedding", "pixels", 0.999, 64]),
)
OPTIONS = ["hidden", "layers", "bidirectional", "batch_first", "bias", "dropout", "lengths", "initial_state"]
OTHER_OPTIONS = [
    "reverse",
    "cell_clip",
    "input_bias",
    "state",
    "r_min",
    "r_max",
    "chunk",
    "filters",
]  # lstmp, linear_recurrence, char_cnn
KEYS = st.sampled_from(
    [
        *OPTIONS,
        *OTHER_OPTIONS,
        "proj_size",
        "nonlinearity",
        "in",
        "id",
        "shape",
        "dtype",
        "lstm",
        "gru",
        "highway",
    ]
)


@st.composite
def mutants(draw: st.DrawFn) -> str:
    spec = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(spec) if p]
        options = [p for p in paths if p[0] == "layers" and len(p) >= 3]  # mostly block options
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


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_mutated_recurrent_specs_compile_or_fail_with_located_errors(text: str) -> None:
    try:
        dlc.compile(dlc.load_spec("mutant.yaml", text=text)).onnx_model()
    except InternalPluginError as error:
        pytest.fail(f"internal error on a mutated spec:\n{text}\n{error}")
    except DlcError as error:
        assert error.diagnostics and all(d.message for d in error.diagnostics)
        assert error.location is not None and error.location.file == "mutant.yaml", error.render()
