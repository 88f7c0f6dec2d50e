"""Remove ops that are the identity at inference: `identity`, and dropout (which scales
nothing and drops nothing when not training). Uses of ``y = op(x)`` become uses of `x`.

Ops declare this with ``OpDef(inference_identity=True)``, so plugin ops such as
`dropout2d` are covered too."""

from __future__ import annotations

from dlc.ir.graph import Graph
from dlc.passes.manager import PassContext, PassResult


class IdentityRemoval:
    name = "identity-removal"
    into_bodies = True  # safe in a loop body: it adds no parameters

    def __init__(self, context: PassContext) -> None:
        self.registry = context.registry

    def run(self, graph: Graph) -> PassResult:
        modified = False
        for name in [n.name for n in graph.toposort()]:
            node = graph.node(name)  # re-read: removing an earlier identity rewired this one
            if not self.registry.op(node.op).inference_identity:
                continue
            source = node.inputs[0]
            if source is None or source.type != node.outputs[0].type:
                continue
            graph.replace_all_uses(node.outputs[0], source)
            graph.erase(node)
            modified = True
        return PassResult(graph, modified)
