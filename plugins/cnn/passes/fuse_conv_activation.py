"""Fuse conv + bias + activation, and a residual add before the activation, into ONNX
Runtime's contrib op FusedConv (`fused_conv`):

    act(conv(x, W, b))      -> fused_conv(x, W, b)     {activation: act}
    act(conv(x, W, b) + z)  -> fused_conv(x, W, b, z)  {activation: act}

for act in relu, leaky_relu, sigmoid and tanh: the same arithmetic in one kernel, exact up
to float rounding. Only for ONNX Runtime output: with ``--portable`` it declines, so plain
ONNX never holds a contrib op. Declined too when the conv's (or the add's) output has other
users, or the add broadcasts. It runs after algorithm selection, on direct convs only.

ONNX Runtime makes this very fusion itself when a session starts. Measured against the
plain graph in one run (benchmarks/fused_conv.py, the zoo, default session options): after
its own optimizations ONNX Runtime runs exactly the same kernels for both graphs (on CPU its
NCHWc convs with the activation fused in), and the timings differ only by noise. So the pass
is registered opt-in (`--passes ...,fuse-conv-activation`), for runtimes or settings where
ONNX Runtime's own fusion does not run.
"""

from __future__ import annotations

from dlc.passes.rewrite import Match, RewritePass
from dlc.plugin_api import Graph, Node, PassContext

from ..fused_conv import ACTIVATIONS, FusedConvAttrs
from .conv_rewriting import bias_of, describe, has_other_users


class FuseConvActivation:
    """act(conv(x) [+ z]) -> fused_conv(x, z)."""

    name = "fuse-conv-activation"

    def __init__(self, context: PassContext) -> None:
        self.portable = context.portable

    def match(self, graph: Graph, node: Node) -> Match | None:
        if node.op not in ACTIVATIONS:
            return None
        producer = graph.producer(node.inputs[0])
        if producer.op == "conv":
            return Match({"activation": node, "conv": producer})
        if producer.op != "add" or len(producer.inputs) != 2:
            return None
        convs = [
            (graph.producer(v), other)
            for v, other in zip(producer.inputs, reversed(producer.inputs), strict=True)
        ]
        convs = [(conv, other) for conv, other in convs if conv.op == "conv"]
        if not convs:
            return None
        # Prefer a conv that only the add reads (the residual branch, not the shortcut).
        conv, addend = next(
            ((c, o) for c, o in convs if not has_other_users(graph, c.output, producer)), convs[0]
        )
        return Match({"activation": node, "conv": conv, "add": producer}, {"addend": addend})

    def check(self, graph: Graph, match: Match) -> str | None:
        if self.portable:
            return "--portable output keeps to standard ONNX ops"
        conv, activation = match["conv"], match["activation"]
        add = match.nodes.get("add")
        if has_other_users(graph, conv.output, add or activation):
            return f"the output of {describe(conv)} has other users"
        if add is not None:
            if has_other_users(graph, add.output, activation):
                return f"the output of {describe(add)} has other users"
            if match.data["addend"].type != conv.output.type:
                return f"{describe(add)} broadcasts its inputs"
        return None

    def rewrite(self, graph: Graph, match: Match) -> None:
        conv, activation = match["conv"], match["activation"]
        add = match.nodes.get("add")
        alpha = activation.attrs.negative_slope if activation.op == "leaky_relu" else None
        attrs = FusedConvAttrs(**conv.attrs.model_dump(), activation=activation.op, alpha=alpha)
        inputs = (conv.inputs[0], conv.inputs[1], bias_of(conv))
        if add is not None:
            inputs += (match.data["addend"],)
        fused = activation.replace(
            op="fused_conv",
            inputs=inputs,
            attrs=attrs,
            module=conv.module,
            layer=conv.layer,
            location=conv.location,
        )
        graph.replace_node(activation, fused)
        if add is not None:
            graph.erase(add)
        graph.erase(conv)
        graph.rename_node(graph.node(fused.name), conv.name)  # the conv's name, as in the spec


def fuse_conv_activation_pass(context: PassContext) -> RewritePass:
    return RewritePass("fuse-conv-activation", context, [FuseConvActivation(context)])
