"""Each pass: a numerical before/after check in ONNX Runtime (tolerance stated per test)
and a golden IR test (the printed graph after the pass, in tests/golden/)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.passes.manager import PassContext, PassManager, build_pipeline
from dlc.registry import default_registry
from dlc.spec.loader import load_spec

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

SPEC = """
dlc: 1
name: cleanup
inputs: {x: {shape: [N, 4]}}
layers:
  - linear: 6
  - dropout: 0.5
  - identity
  - relu
  - constant: [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    id: c
  - constant: [[2.0, 2.0, 2.0, 2.0, 2.0, 2.0]]
    id: d
  - mul:
    in: [c, d]
    id: scale
  - mul:
    in: [relu_0, scale]
    id: scaled
  - linear: 3
    in: x
    id: unused
  - linear: 2
    in: scaled
    id: out
outputs: [out]
"""


def lowered():
    spec = load_spec("cleanup.yaml", text=textwrap.dedent(SPEC))
    return dlc.compile(spec, opt_level=0)


def run_pass(name: str):
    model = lowered()
    graph = model.graph.copy()
    (info,) = build_pipeline(default_registry(), 2, [name])
    manager = PassManager([info.factory(PassContext(default_registry()))], default_registry(), verify=True)
    after = manager.run(graph)
    return model, after, manager.records[0]


def outputs_of(model, graph) -> np.ndarray:
    from dlc.api import CompiledModel

    optimized = CompiledModel(model.spec, model.lowered, graph, model.registry, model.seed)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    return optimized.run({"x": x})["out"]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.ir"
    if os.environ.get("DLC_UPDATE_GOLDEN") == "1":
        path.write_text(text + "\n")
    assert path.exists(), f"no golden file {path}; run with DLC_UPDATE_GOLDEN=1 to write it"
    assert text + "\n" == path.read_text(), f"IR differs from {path}; DLC_UPDATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize("name", ["identity-removal", "constant-folding", "dead-code-elimination"])
def test_pass_keeps_outputs_and_matches_golden_ir(name: str) -> None:
    model, after, record = run_pass(name)
    assert record.modified
    before_out = outputs_of(model, model.graph)
    after_out = outputs_of(model, after)
    np.testing.assert_allclose(after_out, before_out, rtol=0, atol=1e-6)  # exact rewrites: 1e-6
    check_golden(f"pass-{name}", str(after))


def test_identity_removal_removes_identity_and_dropout() -> None:
    _, after, _ = run_pass("identity-removal")
    assert not {n.op for n in after} & {"identity", "dropout"}


def test_constant_folding_replaces_the_constant_product() -> None:
    _, after, _ = run_pass("constant-folding")
    folded = [n for n in after if n.op == "constant" and n.name.endswith("/folded")]
    assert len(folded) == 1
    assert "scale" not in after  # the mul it replaced is gone
    np.testing.assert_array_equal(folded[0].attrs.value, [[2.0, 4.0, 6.0, 8.0, 10.0, 12.0]])


def test_dead_code_elimination_drops_unused_layer_and_its_parameters() -> None:
    _, after, _ = run_pass("dead-code-elimination")
    names = {n.name for n in after}
    assert "unused" not in names and "unused.weight" not in names
    assert "x" in names  # graph inputs stay


def test_passes_report_no_change_on_a_clean_graph() -> None:
    model = dlc.compile(
        load_spec("clean.yaml", text="dlc: 1\nname: c\ninputs: {x: {shape: [2]}}\nlayers: [relu]\n")
    )
    assert model.pass_records and not any(r.modified for r in model.pass_records)


def test_levels_select_passes() -> None:
    registry = default_registry()
    assert build_pipeline(registry, 0) == []
    level1 = [p.name for p in build_pipeline(registry, 1)]
    assert level1 == ["identity-removal", "constant-folding", "dead-code-elimination"]
    level2 = [p.name for p in build_pipeline(registry, 2)]
    assert [name for name in level2 if name in level1] == level1  # -O2 runs -O1's passes, in order
    assert "select-conv-algorithm" in level2 and level2[-1] == "dead-code-elimination"


def test_unknown_pass_name_suggests_the_closest() -> None:
    with pytest.raises(dlc.DlcError, match="unknown pass 'dead-code'") as caught:
        build_pipeline(default_registry(), 2, ["dead-code"])
    assert "dead-code-elimination" in caught.value.render()
