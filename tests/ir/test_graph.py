"""The IR graph: construction, rewiring, erasure, order, verification and printing."""

from __future__ import annotations

import pytest

from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Graph, IRError
from dlc.ir.init import ones
from dlc.ir.node import Node, OpAttrs, Value
from dlc.ir.symbolic import Sym
from dlc.ir.types import DType, TensorType
from dlc.ir.verify import verify_graph
from dlc.registry import default_registry

FLOAT = DType.float32


def small_graph() -> tuple[Graph, GraphBuilder]:
    graph = Graph("g")
    builder = GraphBuilder(graph, default_registry())
    x = builder.add_input("x", TensorType(FLOAT, (Sym.symbol("N"), 4))).output
    relu = builder.add_op("relu", [x], {}, name="relu").output
    identity = builder.add_op("identity", [relu], {}, name="identity").output
    tanh = builder.add_op("tanh", [identity], {}, name="tanh").output
    graph.outputs["y"] = tanh
    return graph, builder


def test_users_and_producers_follow_the_edges() -> None:
    graph, _ = small_graph()
    relu = graph.node("relu")
    assert [n.name for n in graph.users(relu.output)] == ["identity"]
    assert graph.producer(graph.value("tanh")).op == "tanh"
    assert [n.name for n in graph.toposort()] == ["x", "relu", "identity", "tanh"]


def test_replace_all_uses_then_erase() -> None:
    graph, _ = small_graph()
    identity = graph.node("identity")
    graph.replace_all_uses(identity.output, graph.node("relu").output)
    assert graph.users(identity.output) == []
    graph.erase(identity)
    assert "identity" not in graph
    assert graph.node("tanh").inputs[0].name == "relu"
    verify_graph(graph)


def test_erasing_a_used_node_is_refused() -> None:
    graph, _ = small_graph()
    with pytest.raises(IRError, match="still used"):
        graph.erase(graph.node("relu"))


def test_rename_rewires_users_and_outputs() -> None:
    graph, _ = small_graph()
    graph.rename_node(graph.node("tanh"), "final")
    assert graph.outputs["y"].name == "final"
    graph.rename_node(graph.node("relu"), "act")
    assert graph.node("identity").inputs[0].name == "act"
    verify_graph(graph)


def test_replace_node_keeps_position_and_users() -> None:
    graph, _ = small_graph()
    relu = graph.node("relu")
    sigmoid = relu.replace(op="sigmoid")
    graph.replace_node(relu, sigmoid)
    assert [n.op for n in graph.toposort()] == ["input", "sigmoid", "identity", "tanh"]
    assert graph.users(sigmoid.output)[0].name == "identity"
    verify_graph(graph)


def test_verify_catches_a_type_that_inference_disagrees_with() -> None:
    graph, _ = small_graph()
    relu = graph.node("relu")
    wrong = relu.replace(outputs=(Value("relu", TensorType(FLOAT, (Sym.symbol("N"), 5))),))
    graph._nodes["relu"] = wrong  # corrupt it behind the API's back
    with pytest.raises(IRError):
        verify_graph(graph)


def test_adding_a_node_with_an_undefined_input_fails() -> None:
    graph, _ = small_graph()
    ghost = Value("ghost", TensorType(FLOAT, (4,)))
    with pytest.raises(IRError, match="not defined"):
        graph.add(Node("bad", "relu", (ghost,), (Value("bad", ghost.type),), OpAttrs()))


def test_printer_is_deterministic_and_shows_types() -> None:
    first, builder = small_graph()
    builder.add_parameter("scale", (4,), ones())
    second, builder2 = small_graph()
    builder2.add_parameter("scale", (4,), ones())
    assert str(first) == str(second)
    assert "%relu = relu(%x) : float32[N, 4]" in str(first)
    assert "init='constant(1)'" in str(first)


def test_copy_is_independent() -> None:
    graph, _ = small_graph()
    clone = graph.copy()
    clone.replace_all_uses(clone.node("identity").output, clone.node("relu").output)
    clone.erase(clone.node("identity"))
    assert "identity" in graph and "identity" not in clone


def test_a_node_added_before_another_takes_its_place_in_the_order() -> None:
    graph, builder = small_graph()
    x = graph.value("x")
    builder.add_op("sigmoid", [x], {}, name="early", before=graph.node("relu"))
    graph.add(Node("late", "sigmoid", (x,), (Value("late", x.type),), OpAttrs()))
    assert [n.name for n in graph] == ["x", "early", "relu", "identity", "tanh", "late"]
    assert [n.name for n in graph.toposort()] == ["x", "early", "relu", "identity", "tanh", "late"]
    assert [n.name for n in graph.copy()] == [n.name for n in graph]


def test_copy_keeps_a_node_replaced_in_place_that_reads_a_newer_node() -> None:
    graph, builder = small_graph()
    newer = builder.add_op("sigmoid", [graph.value("x")], {}, name="newer").output
    tanh = graph.node("tanh")
    graph.replace_node(tanh, tanh.replace(inputs=(newer,)))  # keeps its position, before "newer"
    clone = graph.copy()
    assert str(clone) == str(graph)
    assert [n.name for n in clone] == [n.name for n in graph]


def test_nodes_inserted_before_the_same_node_keep_their_insertion_order() -> None:
    """Positions are tuple keys, so inserting is O(1); nodes inserted one after another
    before one node, and before those, still print in the order a list insert gives."""
    graph, builder = small_graph()
    x = graph.value("x")
    relu = graph.node("relu")
    for name in ("a", "b", "c"):
        builder.add_op("sigmoid", [x], {}, name=name, before=relu)
    builder.add_op("sigmoid", [x], {}, name="before_b", before=graph.node("b"))
    renamed = graph.rename_node(relu, "relu_renamed")
    builder.add_op("sigmoid", [x], {}, name="d", before=renamed)
    expected = ["x", "a", "before_b", "b", "c", "d", "relu_renamed", "identity", "tanh"]
    assert [n.name for n in graph] == expected
    assert [n.name for n in graph.copy()] == expected


def _networkx_order(graph: Graph) -> list[str]:
    """The order networkx's lexicographical sort gives, from the nodes' inputs alone."""
    import networkx as nx

    dag = nx.DiGraph()
    dag.add_nodes_from(n.name for n in graph)
    for node in graph:
        for value in node.input_values:
            dag.add_edge(graph.producer(value).name, node.name)
    position = {n.name: i for i, n in enumerate(graph)}
    return list(nx.lexicographical_topological_sort(dag, key=position.__getitem__))


@pytest.mark.parametrize("seed", range(40))
def test_toposort_and_users_agree_with_networkx_through_random_rewrites(seed: int) -> None:
    """Lowering keeps positions topological and the graph answers without networkx; random
    insertions before other nodes, in-place replacements, renames and rewirings must give
    the order and the users networkx computes from the edges, and copies must agree."""
    import random

    rng = random.Random(seed)
    graph, builder = small_graph()
    for step in range(30):
        nodes = [n for n in graph if n.op != "input"]
        values = [v for n in graph for v in n.outputs]
        action = rng.choice(("append", "before", "replace", "rename", "rewire"))
        if action == "append" or not nodes:
            builder.add_op("relu", [rng.choice(values)], {}, name=f"a{step}")
        elif action == "before":
            anchor = rng.choice(nodes)
            source = rng.choice(values)
            builder.add_op("tanh", [source], {}, name=f"b{step}", before=anchor)
        elif action == "replace":
            node = rng.choice(nodes)
            graph.replace_node(node, node.replace(op="tanh" if node.op == "relu" else "relu"))
        elif action == "rename":
            graph.rename_node(rng.choice(nodes), f"r{step}")
        else:
            node = rng.choice(nodes)
            fresh = builder.add_op("identity", [node.inputs[0]], {}, name=f"w{step}")
            graph.replace_all_uses(node.output, fresh.output)
        graph.verify()
        expected = _networkx_order(graph)
        assert [n.name for n in graph.toposort()] == expected
        assert [n.name for n in graph.copy().toposort()] == expected
        for node in graph:
            for value in node.outputs:
                readers = sorted(n.name for n in graph if value.name in {v.name for v in n.input_values})
                assert sorted(n.name for n in graph.users(value)) == readers


def test_a_cycle_is_named_by_verify_and_toposort() -> None:
    """A rewrite that closes a loop (a dlc bug) is an IRError naming the cycle, from the
    structural check and from any pass that asks for the order, not a hang or a traceback."""
    graph, builder = small_graph()
    relu, tanh = graph.node("relu"), graph.node("tanh")
    fresh = builder.add_op("identity", [tanh.output], {}, name="late")
    graph.replace_all_uses(relu.output, fresh.output)  # identity -> tanh -> late -> identity
    with pytest.raises(IRError, match=r"graph has a cycle: \[\('identity', 'tanh'\), \('tanh', 'late'\)"):
        graph.verify()
    with pytest.raises(IRError, match="graph has a cycle"):
        graph.toposort()
