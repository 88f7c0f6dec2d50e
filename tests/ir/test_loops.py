"""The scan op's IR contract: verify checks bodies and their invariant, inference checks
the carried types, and nodes in bodies count once per step."""

from __future__ import annotations

import pytest

from dlc.ir import init
from dlc.ir.graph import IRError
from dlc.ir.loops import scan_samples, walk_with_trips, with_bodies
from dlc.ir.node import Node, Value
from dlc.ir.ops import InferenceError
from dlc.ir.source_ops import ParameterAttrs
from dlc.ir.symbolic import Sym
from dlc.ir.verify import verify_graph
from dlc.registry import default_registry
from dlc.testing import sample_graph


def sample_loop():
    registry = default_registry()
    graph, _ = sample_graph(registry.op("scan"), scan_samples()[0], registry)
    (loop,) = [n for n in graph if n.op == "scan"]
    return graph, loop


def test_a_sample_loop_verifies_and_its_body_runs_once_per_step() -> None:
    graph, _ = sample_loop()
    verify_graph(graph)
    trips = {node.name: count for node, count in walk_with_trips(graph)}
    assert trips["op"] == 1 and trips["new"] == Sym.symbol("T")


def test_verify_rejects_a_weight_inside_a_body() -> None:
    graph, loop = sample_loop()
    body = loop.attrs.body.copy()
    weight = Value("w", body.value("h").type)
    body.add(Node("w", "parameter", (), (weight,), ParameterAttrs(name="w", init=init.constant(0.0))))
    graph.replace_node(loop, with_bodies(loop, [body]))
    with pytest.raises(IRError, match="must live in the top graph"):
        verify_graph(graph)


def test_inference_rejects_a_next_state_of_another_shape() -> None:
    _, loop = sample_loop()
    body = loop.attrs.body.copy()
    wide = body.value("h").type.with_shape((2, 8))
    concat = default_registry().op("concat").make_attrs({"axis": 1})
    body.add(Node("wide", "concat", (body.value("h"), body.value("x")), (Value("wide", wide),), concat))
    body.outputs["h"] = body.value("wide")
    widened = loop.attrs.model_copy(update={"body": body})
    with pytest.raises(InferenceError, match=r"carry 'h' starts as float32\[2, 4\] but its next value is"):
        default_registry().op("scan").infer_types(widened, [v.type for v in loop.inputs])
