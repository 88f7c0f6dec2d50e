"""Property: mutating a valid spec never crashes dlc. Every mutant either compiles (and
emits ONNX) or raises a located dlc error; anything else, including an internal plugin
error, is a bug."""

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

SEEDS = [yaml.safe_load(path.read_text()) for path in sorted(SPECS.glob("*.yaml"))]

SCALARS = st.one_of(
    st.integers(-3, 300),
    st.floats(-2, 2, allow_nan=False),
    st.sampled_from(["", "relu", "x", "N", "${width}", "${nope}", "${1/0}", "${", "linear", "stem", "a.b"]),
    st.none(),
    st.booleans(),
    st.just([]),
    st.just({}),
    st.just([1, "N"]),
)
KEYS = st.sampled_from(
    ["id", "in", "out", "linear", "relu", "body", "repeat", "as", "shape", "dtype", "residual"]
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutants(draw: st.DrawFn) -> str:
    spec = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(spec) if p]
        path = draw(st.sampled_from(paths))
        parent = _get(spec, path[:-1])
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "rename", "duplicate", "insert"]))
        if action == "replace":
            parent[key] = copy.deepcopy(draw(SCALARS))
        elif action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(KEYS) + draw(st.sampled_from(["", "x"]))] = parent.pop(key)
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(KEYS)] = copy.deepcopy(draw(SCALARS))
    return yaml.safe_dump(spec, sort_keys=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_mutated_specs_compile_or_fail_with_located_errors(text: str) -> None:
    try:
        spec = dlc.load_spec("mutant.yaml", text=text)
        model = dlc.compile(spec)
        model.onnx_model()
    except InternalPluginError as error:  # a bug, not bad input
        pytest.fail(f"internal error on a mutated spec:\n{text}\n{error}")
    except DlcError as error:
        assert error.diagnostics
        assert all(d.message for d in error.diagnostics)
        assert error.location is not None and error.location.file == "mutant.yaml", error.render()
