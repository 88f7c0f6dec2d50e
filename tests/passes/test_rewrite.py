"""The rewrite framework: fixpoint application, fired counts, reasons for declined matches,
and weight access for folding rewrites."""

from __future__ import annotations

import textwrap

import numpy as np

import dlc
from dlc.ir.graph import Graph
from dlc.ir.node import Node
from dlc.passes.manager import PassContext
from dlc.passes.rewrite import Match, PassTensors, RewritePass
from dlc.registry import default_registry
from dlc.spec.loader import load_spec


class CollapseDoubleRelu:
    """relu(relu(x)) = relu(x), when the inner relu has no other user."""

    name = "collapse-double-relu"

    def match(self, graph: Graph, node: Node) -> Match | None:
        if node.op != "relu":
            return None
        inner = graph.producer(node.inputs[0])
        return Match({"outer": node, "inner": inner}) if inner.op == "relu" else None

    def check(self, graph: Graph, match: Match) -> str | None:
        if len(graph.users(match["inner"].output)) > 1:
            return "the inner relu has other users"
        return None

    def rewrite(self, graph: Graph, match: Match) -> None:
        graph.replace_all_uses(match["outer"].output, match["inner"].output)
        graph.erase(match["outer"])


SPEC = """
dlc: 1
name: t
inputs: {x: {shape: [N, 4]}}
layers:
  - relu
  - relu
  - relu
  - relu:
    id: shared
  - relu:
    in: shared
  - add:
    in: [shared, relu_3]
"""


def test_rewrites_run_to_a_fixpoint_and_explain_what_they_left() -> None:
    model = dlc.compile(load_spec("t.yaml", text=textwrap.dedent(SPEC)), opt_level=0)
    graph = model.graph.copy()
    rewrite_pass = RewritePass("collapse", PassContext(default_registry()), [CollapseDoubleRelu()])
    result = rewrite_pass.run(graph)
    assert result.modified
    assert rewrite_pass.fired["collapse-double-relu"] == 3
    assert [n.op for n in graph].count("relu") == 2
    notes = rewrite_pass.notes()
    assert "collapse-double-relu: fired 3x" in notes
    assert any("not rewritten (collapse-double-relu: the inner relu has other users)" in n for n in notes)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    before = model.run({"x": x})
    model.graph = graph
    after = model.run({"x": x})
    np.testing.assert_array_equal(before["output"], after["output"])


def test_pass_tensors_read_seeded_weights_and_replace_them_in_place() -> None:
    spec = load_spec("w.yaml", text="dlc: 1\nname: w\ninputs: {x: {shape: [N, 4]}}\nlayers: [{linear: 3}]\n")
    model = dlc.compile(spec, opt_level=0, seed=3)
    tensors = PassTensors(PassContext(default_registry(), seed=3))
    weight = model.graph.value("linear_0.weight")
    np.testing.assert_array_equal(tensors.array(model.graph, weight), model.weights()["linear_0.weight"])
    tensors.replace_parameter(model.graph, weight, np.zeros((3, 4), np.float32))
    assert model.graph.node("linear_0.weight").attrs.init.kind == "data"
    try:
        tensors.replace_parameter(model.graph, weight, np.zeros((2, 4), np.float32))
    except ValueError as error:
        assert "changes its shape" in str(error)
    else:
        raise AssertionError("a shape change was accepted")


def test_pass_tensors_can_place_a_new_weight_before_its_reader() -> None:
    spec = load_spec(
        "w.yaml", text="dlc: 1\nname: w\ninputs: {x: {shape: [N, 4]}}\nlayers: [{linear: 3}, relu]\n"
    )
    graph = dlc.compile(spec, opt_level=0).graph
    tensors = PassTensors(PassContext(default_registry()))
    layer = graph.node("linear_0")
    tensors.new_parameter(graph, "extra", np.zeros(3, np.float32), layer, before=layer)
    assert [n.name for n in graph.toposort()].index("extra") < [n.name for n in graph.toposort()].index(
        "relu_0"
    )
