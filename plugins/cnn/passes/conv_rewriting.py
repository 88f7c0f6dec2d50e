"""What the CNN rewrites share: reading a layer's operands, asking who else uses a value,
giving a layer new weight data, and adding nodes with inferred types.

Layers here are `conv`, `conv_transpose` and `linear`: inputs ``(x, weight, bias?)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dlc.ir.builder import GraphBuilder
from dlc.lazy_imports import numpy as np
from dlc.passes.rewrite import PassTensors
from dlc.plugin_api import Graph, Node, OpAttrs, PassContext, Value, init

LAYER_OPS = ("conv", "conv_transpose", "linear")

# A fold holds a layer's weight as drawn and rewritten (in float64 in places: 16 bytes an
# element at most) and a few float64 vectors per output channel (64 bytes a channel). A
# layer whose fold would hold more is left as it is (its output is the same either way):
# `--max-params` admits a 10^9-channel layer, and a pass must not allocate tens of GB for
# it before writing, which streams, starts. The largest zoo fold (VGG-sized 102M-element
# weights) needs 1.6 GB.
MAX_FOLD_BYTES = 2**31


def bias_of(layer: Node) -> Value | None:
    return layer.inputs[2] if len(layer.inputs) > 2 else None


def spatial_rank(conv: Node) -> int:
    return conv.inputs[1].type.rank - 2


def kernel_of(conv: Node) -> tuple[int, ...]:
    return tuple(int(k) for k in conv.inputs[1].type.shape[2:])


def has_other_users(graph: Graph, value: Value, user: Node) -> bool:
    """Whether anything but `user` reads `value` (a graph output counts as a reader)."""
    return graph.is_output(value) or any(u.name != user.name for u in graph.users(value))


def describe(node: Node) -> str:
    return f"{node.op} '{node.name}'"


def too_large_to_fold(layer: Node) -> str | None:
    """Why rewriting `layer`'s weights would take too much memory, or None."""
    from dlc.limits import format_bytes

    weight = layer.inputs[1].type
    elements = 1
    for dim in weight.shape:
        elements *= int(dim)
    channels = int(layer.output.type.shape[-1 if layer.op == "linear" else 1])
    needed = 16 * elements + 64 * channels
    if needed <= MAX_FOLD_BYTES:
        return None
    return (
        f"rewriting the weights of {describe(layer)} would hold {format_bytes(needed)} in memory "
        f"(the bound is {format_bytes(MAX_FOLD_BYTES)})"
    )


class LayerWeights:
    """Reads and rewrites the weight and bias of a layer for folding rewrites."""

    def __init__(self, context: PassContext) -> None:
        self.tensors = PassTensors(context)
        self.registry = context.registry

    def unfoldable(self, graph: Graph, layer: Node) -> str | None:
        """Why the layer's weights cannot be rewritten in place, or None."""
        if (reason := too_large_to_fold(layer)) is not None:
            return reason
        for role, value in (("weight", layer.inputs[1]), ("bias", bias_of(layer))):
            if value is None:
                continue
            if not self.tensors.is_known(graph, value):
                return f"the {role} of {describe(layer)} is computed, not a parameter"
            if has_other_users(graph, value, layer):
                return f"the {role} of {describe(layer)} is shared with other ops"
        return None

    def known(self, graph: Graph, values: Sequence[Value | None]) -> bool:
        return all(v is None or self.tensors.is_known(graph, v) for v in values)

    def array(self, graph: Graph, value: Value) -> np.ndarray:
        return self.tensors.array(graph, value)

    def array_later(self, graph: Graph, value: Value) -> Callable[[], np.ndarray]:
        return self.tensors.array_later(graph, value)

    def arrays(self, graph: Graph, layer: Node) -> tuple[np.ndarray, np.ndarray | None]:
        """(weight, bias or None) as float64, for exact-as-possible folding arithmetic."""
        bias = bias_of(layer)
        weight = self.array(graph, layer.inputs[1]).astype(np.float64)
        return weight, None if bias is None else self.array(graph, bias).astype(np.float64)

    def write(
        self,
        graph: Graph,
        layer: Node,
        weight: np.ndarray,
        bias: np.ndarray | None,
        *,
        source: Value | None = None,
        attrs: OpAttrs | None = None,
    ) -> Node:
        """Give `layer` new weight (and bias) data, possibly of new shapes, and optionally a
        new input `source` and new `attrs`. Parameters keep their names; a layer without a
        bias gains one named after its weight (``conv1.weight`` -> ``conv1.bias``)."""
        current = graph.node(layer.name)
        old_weight, old_bias = current.inputs[1], bias_of(current)
        renames: list[tuple[Node, str]] = []
        inputs = [source or current.inputs[0], self._store(graph, current, old_weight, weight, renames)]
        if bias is not None:
            inputs.append(
                self._new_bias(graph, current, old_weight, bias)
                if old_bias is None
                else self._store(graph, current, old_bias, bias, renames)
            )
        elif old_bias is not None:
            inputs.append(old_bias)
        changes: dict = {"inputs": tuple(inputs)}
        if attrs is not None:
            changes["attrs"] = attrs
        rewritten = graph.replace_node(current, current.replace(**changes))
        erase_if_unused(graph, [old_weight, old_bias])
        for node, name in renames:  # the old parameter is gone: its name is free again
            renamed = graph.rename_node(graph.node(node.name), name)
            graph.replace_node(
                renamed, renamed.replace(attrs=renamed.attrs.model_copy(update={"name": name}))
            )
        return graph.node(rewritten.name)

    def _store(
        self,
        graph: Graph,
        layer: Node,
        value: Value,
        array: np.ndarray | init.Init,
        renames: list[tuple[Node, str]],
    ) -> Value:
        """A value holding `array` in place of `value`: the same parameter with new data when
        the shape is unchanged, else a new node (renamed to the parameter's name later). An
        `Init` (data computed later, `fold_weight_later`) replaces a parameter of its shape."""
        producer = graph.producer(value)
        if isinstance(array, init.Init):
            assert producer.op == "parameter", "data computed later replaces a parameter"
            return self.tensors.replace_parameter_init(graph, value, array)
        array = array.astype(value.type.dtype.numpy, copy=False)  # no copy when already of that type
        if producer.op == "parameter" and array.shape == tuple(int(d) for d in value.type.shape):
            return self.tensors.replace_parameter(graph, value, array)
        if producer.op == "parameter":
            new = self.tensors.new_parameter(
                graph, f"{producer.attrs.name}/new", array, producer, before=layer
            )
            renames.append((graph.producer(new), producer.attrs.name))
            return new
        return self.tensors.new_constant(graph, f"{value.name}/folded", array, producer, before=layer)

    def _new_bias(self, graph: Graph, layer: Node, weight: Value, array: np.ndarray) -> Value:
        producer = graph.producer(weight)
        base = producer.attrs.name if producer.op == "parameter" else weight.name
        name = base.removesuffix(".weight") + ".bias" if base.endswith(".weight") else f"{base}_bias"
        array = array.astype(weight.type.dtype.numpy)
        return self.tensors.new_parameter(graph, name, array, producer, before=layer)


def erase_if_unused(graph: Graph, values: Sequence[Value | None]) -> None:
    """Remove the parameter and constant nodes behind `values` that nothing reads any more,
    so that a rewrite leaves no stale weights behind (dead-code elimination would later)."""
    for value in values:
        if value is None or not graph.has_value(value.name):
            continue
        producer = graph.producer(value)
        if producer.op in ("parameter", "constant") and not graph.users(value) and not graph.is_output(value):
            graph.erase(producer)


def add_op(
    graph: Graph,
    context: PassContext,
    op: str,
    inputs: Sequence[Value | None],
    attrs: Mapping[str, Any],
    *,
    name: str,
    like: Node,
    module: str | None = None,
) -> Node:
    """A new node of `op`, its output types inferred, placed where `like` is in the order
    (module, layer and location from `like` too)."""
    builder = GraphBuilder(graph, context.registry)
    return builder.add_op(
        op,
        inputs,
        attrs,
        name=name,
        module=like.module if module is None else module,
        layer=like.layer,
        location=like.location,
        before=like,
    )
