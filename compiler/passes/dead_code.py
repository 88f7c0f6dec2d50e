"""Dead-code elimination: remove nodes whose outputs nothing uses.

Graph inputs stay (they are the model's signature); unused parameters go, so they are
neither initializers nor state_dict entries."""

from __future__ import annotations

from dlc.ir.graph import Graph
from dlc.passes.manager import PassContext, PassResult


class DeadCodeElimination:
    name = "dead-code-elimination"
    into_bodies = True  # safe in a loop body: it adds no parameters

    def __init__(self, context: PassContext) -> None:
        self.context = context

    def run(self, graph: Graph) -> PassResult:
        modified = False
        for node in reversed(graph.toposort()):
            if node.op == "input":
                continue
            if any(graph.users(v) or graph.is_output(v) for v in node.outputs):
                continue
            graph.erase(node)
            modified = True
        return PassResult(graph, modified)
