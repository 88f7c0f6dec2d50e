"""The spec's `parameterization:`, applied to the lowered graph.

`standard` (the default) is torch's: a layer's weight is drawn with a scale of
`1/sqrt(fan_in)` and used as it is. `ntk` is the parameterization of Jacot et al. (2018),
under which the infinite-width statements of NTK theory hold (a deterministic kernel at
initialization, constant during training):

    linear:  y = (W / sqrt(fan_in)) x + b        W_ij ~ N(0, 1),  b_i ~ N(0, 1)
    conv:    the same, with fan_in = in_channels / groups * prod(kernel)

The function at initialization has the same distribution as a normal-initialized standard
network, but the gradients differ: the scale sits in the forward pass, not in the drawn
weights. In the graph each such weight becomes a unit-normal parameter followed by a
`scale` op (`W * 1/sqrt(fan_in)`), so the state_dict keys, the ONNX initializer names and
every emitter stay as they are; ONNX Runtime folds the constant product when it loads.
"""

from __future__ import annotations

import math

from dlc.ir import init
from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Graph
from dlc.ir.node import Node

PARAMETERIZATIONS = ("standard", "ntk")
# Ops whose input 1 is a weight [out, in / groups, *kernel] (linear: [out, in]) and input 2 a bias.
SCALED_OPS = ("linear", "conv")


def apply_ntk_parameterization(graph: Graph, builder: GraphBuilder) -> int:
    """Rewrite every linear and conv layer whose weight is a trainable parameter into the
    NTK parameterization; returns how many layers were rewritten."""
    rewritten = 0
    redrawn: set[str] = set()
    for node in list(graph.toposort()):
        if node.op not in SCALED_OPS or len(node.inputs) < 2 or node.inputs[1] is None:
            continue
        weight = graph.producer(node.inputs[1])
        if weight.op != "parameter" or not weight.attrs.trainable:
            continue
        fan_in = math.prod(int(d) for d in weight.output.type.shape[1:])
        for parameter in [weight, *_bias(graph, node)]:
            if parameter.name not in redrawn:
                graph.replace_node(parameter, parameter.replace(attrs=_unit_normal(parameter)))
                redrawn.add(parameter.name)
        scaled = builder.add_op(
            "scale",
            [node.inputs[1]],
            {"factor": 1.0 / math.sqrt(fan_in)},
            name=graph.fresh_name(f"{node.name}_ntk_scale"),
            module=node.module,
            layer=node.layer,
            location=node.location,
            before=node,
        )
        current = graph.node(node.name)
        inputs = (current.inputs[0], scaled.output, *current.inputs[2:])
        graph.replace_node(current, current.replace(inputs=inputs))
        rewritten += 1
    return rewritten


def _bias(graph: Graph, node: Node) -> list[Node]:
    if len(node.inputs) < 3 or node.inputs[2] is None:
        return []
    bias = graph.producer(node.inputs[2])
    return [bias] if bias.op == "parameter" and bias.attrs.trainable else []


def _unit_normal(parameter: Node):
    return parameter.attrs.model_copy(update={"init": init.normal(1.0)})
