"""Rewrites: pattern + check + rewrite, run to a fixpoint by a `RewritePass`.

A rewrite says where it could apply (`match`, structural, anchored at one node), whether
it does (`check` returns None, or the reason it does not: "the conv's output has other
users"), and how (`rewrite`, which edits the graph). `RewritePass` counts what fired and
keeps the reasons for what did not, so `--print-ir` can say why a pattern was left alone.

Rewrites that fold weights read and create tensor data through `PassTensors`, which draws
initial weights from the pass context's seed exactly as the emitters would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dlc.ir.graph import Graph
from dlc.ir.init import Init, from_array
from dlc.ir.node import Node, Value
from dlc.ir.source_ops import ConstantAttrs, ParameterAttrs, constant_type
from dlc.lazy_imports import numpy as np
from dlc.passes.manager import PassContext, PassResult
from dlc.weights import parameter_data


@dataclass
class Match:
    """The nodes a pattern matched, by role (``{"conv": ..., "norm": ...}``)."""

    nodes: dict[str, Node]
    data: dict[str, object] = field(default_factory=dict)

    def __getitem__(self, role: str) -> Node:
        return self.nodes[role]


class Rewrite(Protocol):
    name: str

    def match(self, graph: Graph, node: Node) -> Match | None: ...

    def check(self, graph: Graph, match: Match) -> str | None: ...

    def rewrite(self, graph: Graph, match: Match) -> None: ...


class RewritePass:
    """Applies its rewrites, in order, until none fires (at most `max_rounds` sweeps)."""

    max_rounds = 20

    def __init__(self, name: str, context: PassContext, rewrites: Sequence[Rewrite]) -> None:
        self.name = name
        self.context = context
        self.rewrites = list(rewrites)
        self.fired: Counter[str] = Counter()
        self.declined: dict[str, str] = {}  # node name -> "rewrite: reason"

    def run(self, graph: Graph) -> PassResult:
        modified = False
        for _ in range(self.max_rounds):
            changed = False
            for rewrite in self.rewrites:
                for name in [n.name for n in graph.toposort()]:
                    if name not in graph:  # removed by an earlier rewrite in this sweep
                        continue
                    match = rewrite.match(graph, graph.node(name))
                    if match is None:
                        continue
                    reason = rewrite.check(graph, match)
                    if reason is not None:
                        self.declined[name] = f"{rewrite.name}: {reason}"
                        continue
                    rewrite.rewrite(graph, match)
                    self.fired[rewrite.name] += 1
                    self.declined.pop(name, None)
                    changed = True
            modified |= changed
            if not changed:
                break
        return PassResult(graph, modified)

    def notes(self) -> list[str]:
        lines = [f"{name}: fired {count}x" for name, count in sorted(self.fired.items())]
        lines += [f"{node}: not rewritten ({reason})" for node, reason in sorted(self.declined.items())]
        return lines


class PassTensors:
    """Reading and writing weight data inside passes.

    Values of parameters come from their initializers (drawn with the context's seed, as
    the emitters draw them) or from loaded data; constants carry their arrays."""

    def __init__(self, context: PassContext) -> None:
        self.seed = context.seed

    def is_known(self, graph: Graph, value: Value | None) -> bool:
        return value is not None and graph.producer(value).op in ("parameter", "constant")

    def array(self, graph: Graph, value: Value) -> np.ndarray:
        producer = graph.producer(value)
        if producer.op == "constant":
            return producer.attrs.value
        if producer.op == "parameter":
            return parameter_data(producer, self.seed)
        raise ValueError(f"'{value.name}' is computed by '{producer.op}', not a weight")

    def replace_parameter(self, graph: Graph, value: Value, array: np.ndarray) -> Value:
        """Give parameter `value` new data of the same shape, keeping its name (a folded
        weight is still `conv1.weight`). For a new shape, make a `new_parameter`."""
        producer = graph.producer(value)
        if producer.op != "parameter":
            raise ValueError(f"'{value.name}' is not a parameter")
        if tuple(array.shape) != tuple(int(d) for d in value.type.shape):
            raise ValueError(
                f"new data {list(array.shape)} for '{value.name}' {value.type} changes its shape"
            )
        array = np.ascontiguousarray(array, dtype=value.type.dtype.numpy)
        return self.replace_parameter_init(graph, value, from_array(array))

    def replace_parameter_init(self, graph: Graph, value: Value, init: Init) -> Value:
        """Give parameter `value` a new initializer (e.g. `deferred_data` of its shape),
        keeping its name."""
        producer = graph.producer(value)
        attrs = ParameterAttrs(name=producer.attrs.name, init=init, trainable=producer.attrs.trainable)
        graph.replace_node(producer, producer.replace(attrs=attrs))
        return value

    def array_later(self, graph: Graph, value: Value) -> Callable[[], np.ndarray]:
        """A function giving the data `array(graph, value)` gives now, to call later: the
        initializer it reads is captured, so rewrites in between do not change it."""
        producer = graph.producer(value)
        if producer.op != "parameter":
            array = self.array(graph, value)
            return lambda: array
        init, name = producer.attrs.init, producer.attrs.name
        shape = tuple(int(d) for d in value.type.shape)
        dtype, seed = value.type.dtype.numpy, self.seed
        return lambda: init.materialize(shape, dtype, seed, name)

    def new_parameter(
        self, graph: Graph, name: str, array: np.ndarray, like: Node, before: Node | None = None
    ) -> Value:
        """A new parameter node holding `array`, named `name` (made unique); `before` places
        it in the order (see `Graph.add`), e.g. just before the layer that reads it."""
        array = np.ascontiguousarray(array)
        unique = graph.fresh_name(name)
        attrs = ParameterAttrs(name=unique, init=from_array(array), trainable=True)
        node = Node(
            unique,
            "parameter",
            (),
            (Value(unique, constant_type(array)),),
            attrs,
            like.module,
            like.layer,
            like.location,
        )
        return graph.add(node, before=before).output

    def new_constant(
        self, graph: Graph, name: str, array: np.ndarray, like: Node, before: Node | None = None
    ) -> Value:
        array = np.ascontiguousarray(array)
        array.setflags(write=False)
        unique = graph.fresh_name(name)
        node = Node(
            unique,
            "constant",
            (),
            (Value(unique, constant_type(array)),),
            ConstantAttrs(value=array),
            like.module,
            like.layer,
            like.location,
        )
        return graph.add(node, before=before).output
