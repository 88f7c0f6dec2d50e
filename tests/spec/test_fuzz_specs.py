"""Property: mutating a valid spec never crashes dlc. Every mutant either compiles (and
emits ONNX) or raises a located dlc error; anything else, including an internal plugin
error, is a bug.

Two fuzzers: gentle mutations (hypothesis, valid YAML with plausible values), and hostile
ones (`hostile_specs.py`: deep nesting, huge numbers, tags, aliases, long strings, odd
Unicode, damaged text and bytes) of every spec in `specs/`. The hostile run is short by
default; ``DLC_FUZZ_CASES=20000 DLC_FUZZ_SEED=1`` makes it the long campaign, and
``DLC_FUZZ_REPORT=path.json`` writes its figures and findings, and ``DLC_FUZZ_SHARD=i/n``
splits the campaign over n processes (``DLC_FUZZ_FROM=k`` checks from case k on)."""

from __future__ import annotations

import copy
import json
import math
import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlc
from dlc.errors import DlcError
from dlc.spec.lower import InternalPluginError
from tests.conftest import SPECS
from tests.spec.hostile_specs import hostile_case

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


FUZZ_CASES = int(os.environ.get("DLC_FUZZ_CASES", "25"))
FUZZ_SEED = int(os.environ.get("DLC_FUZZ_SEED", "1"))
# "i/n": check only the cases whose index is i modulo n. Every shard draws the whole seeded
# sequence, so n processes together check exactly the cases one process would.
FUZZ_SHARD = tuple(int(part) for part in os.environ.get("DLC_FUZZ_SHARD", "0/1").split("/"))
# The first case to check (the sequence is drawn from 0 all the same): a second process per
# shard can take the second half of the campaign.
FUZZ_FROM = int(os.environ.get("DLC_FUZZ_FROM", "0"))
# A mutant that takes longer is reported as a hang. CPU time: on the shared machine (load
# 10-15, the campaign niced) wall time measures the load more than dlc; the wall-clock
# limit still catches a mutant that blocks without computing.
CASE_SECONDS = 20
CASE_WALL_SECONDS = 300
TORCH_PARAMETERS = 2_000_000  # generate model.py (which draws the weights) below this size


class _Hang(Exception):
    pass


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, expire), signal.signal(signal.SIGPROF, expire)
    # Each fires again every second: an exception raised where Python ignores it (a
    # __del__) must not let a runaway case go on.
    signal.setitimer(signal.ITIMER_PROF, seconds, 1.0)
    signal.setitimer(signal.ITIMER_REAL, CASE_WALL_SECONDS, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous[0])
        signal.signal(signal.SIGPROF, previous[1])


def _parameter_count(model: dlc.CompiledModel) -> int:
    return sum(math.prod(int(d) for d in node.output.type.shape) for node in model.graph.parameters())


def check_hostile_mutant(mutant: str | bytes, directory: Path, opt_level: int) -> str | None:
    """None if dlc compiles the mutant or refuses it with a located error; else the finding."""
    try:
        with _deadline(CASE_SECONDS):
            if isinstance(mutant, bytes):
                path = directory / "mutant.yaml"
                path.write_bytes(mutant)
                spec = dlc.load_spec(path)
            else:
                spec = dlc.load_spec("mutant.yaml", text=mutant)
            model = dlc.compile(spec, opt_level=opt_level)
            model.onnx_model(streamed=True)
            if _parameter_count(model) <= TORCH_PARAMETERS:
                compile(model.torch_source(), "model.py", "exec")
    except _Hang:
        return f"hang: over {CASE_SECONDS} s of CPU or {CASE_WALL_SECONDS} s"
    except DlcError as error:
        error.render()
        location = error.location
        in_spec = location is not None and (location.file or "").endswith("mutant.yaml")
        # An error inside a library template is located there, with a note on the spec's use.
        via_template = location is not None and any("mutant.yaml" in n for n in error.diagnostics[0].notes)
        if not (in_spec or via_template):
            return f"unlocated {type(error).__name__}: {error.message[:120]}"
        return None
    except InternalPluginError as error:
        return f"internal plugin error: {str(error)[:200]}"
    except (Exception, RecursionError, MemoryError) as error:
        return f"{type(error).__name__}: {str(error)[:200]}"
    return None


def test_hostile_mutants_compile_or_fail_with_located_errors(tmp_path: Path) -> None:
    rng = random.Random(FUZZ_SEED)
    findings: dict[str, list[tuple[int, str]]] = {}
    start = time.perf_counter()

    def report(done: int) -> dict[str, Any]:
        """The figures so far; written every 500 cases, so a long campaign can be watched."""
        figures = {
            "cases": FUZZ_CASES,
            "done": done,
            "seed": FUZZ_SEED,
            "shard": f"{FUZZ_SHARD[0]}/{FUZZ_SHARD[1]}",
            "from": FUZZ_FROM,
            "seconds": round(time.perf_counter() - start, 1),
            "findings": {k: {"count": len(v), "first": v[:3]} for k, v in findings.items()},
        }
        if os.environ.get("DLC_FUZZ_REPORT"):
            Path(os.environ["DLC_FUZZ_REPORT"]).write_text(json.dumps(figures, indent=2))
        return figures

    for index in range(FUZZ_CASES):
        seed_spec, mutant = hostile_case(rng)
        opt_level = rng.choice((0, 1, 2))
        if index % FUZZ_SHARD[1] == FUZZ_SHARD[0] and index >= FUZZ_FROM:
            finding = check_hostile_mutant(mutant, tmp_path, opt_level=opt_level)
            if finding is not None:
                findings.setdefault(finding, []).append((index, seed_spec))
        if index % 500 == 499:
            report(index + 1)
    assert not findings, json.dumps(report(FUZZ_CASES), indent=2)
    report(FUZZ_CASES)
