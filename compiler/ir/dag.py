"""A directed graph of hashable nodes: the use-def edges under `Graph`, and the order of a
spec's layers.

Why not `networkx.DiGraph`: importing networkx costs about 0.1 s, a third of what
`dlc validate` of a small spec should take, and dlc needs only adjacency, a topological
order and a cycle. The order is networkx's `lexicographical_topological_sort` (Kahn's
algorithm popping the ready node of smallest key), which depends on the keys alone, so
it is the same as before, node for node. A cycle is described by networkx's
`find_cycle`, imported only then: an error path, where its exact wording is kept.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

Node = TypeVar("Node", bound=Hashable)


class CycleError(Exception):
    """The graph has a cycle, so it has no topological order."""


class Dag(Generic[Node]):
    """Nodes in insertion order, each edge carrying a set of labels (the value names an
    edge stands for, in the IR)."""

    def __init__(self) -> None:
        self._succ: dict[Node, dict[Node, set[str]]] = {}
        self._pred: dict[Node, dict[Node, set[str]]] = {}

    def __contains__(self, node: object) -> bool:
        return node in self._succ

    def __len__(self) -> int:
        return len(self._succ)

    def add_node(self, node: Node) -> None:
        if node not in self._succ:
            self._succ[node] = {}
            self._pred[node] = {}

    def add_edge(self, source: Node, target: Node, label: str | None = None) -> None:
        """Add the edge (both ends too), or add `label` to an existing one."""
        self.add_node(source)
        self.add_node(target)
        labels = self._succ[source].get(target)
        if labels is None:
            labels = self._succ[source][target] = self._pred[target][source] = set()
        if label is not None:
            labels.add(label)

    def has_edge(self, source: Node, target: Node) -> bool:
        return target in self._succ.get(source, {})

    def successors(self, node: Node) -> dict[Node, set[str]]:
        """Each successor of `node` with the labels of the edge to it."""
        return self._succ[node]

    def predecessors(self, node: Node) -> dict[Node, set[str]]:
        return self._pred[node]

    def remove_edge(self, source: Node, target: Node) -> None:
        del self._succ[source][target]
        del self._pred[target][source]

    def remove_node(self, node: Node) -> None:
        for target in self._succ.pop(node):
            del self._pred[target][node]
        for source in self._pred.pop(node):
            del self._succ[source][node]

    def remove_nodes(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            if node in self._succ:
                self.remove_node(node)

    def toposort(self, key: Callable[[Node], Any] | None = None) -> list[Node]:
        """Every node after its predecessors; among the ready nodes, the one of smallest
        `key` first (the node itself without a key). Raises `CycleError` on a cycle."""
        rank = key if key is not None else (lambda node: node)
        position = {node: index for index, node in enumerate(self._succ)}
        indegree = {node: len(sources) for node, sources in self._pred.items() if sources}
        ready = [(rank(node), position[node], node) for node, sources in self._pred.items() if not sources]
        heapq.heapify(ready)
        order: list[Node] = []
        while ready:
            node = heapq.heappop(ready)[2]
            order.append(node)
            for target in self._succ[node]:
                indegree[target] -= 1
                if indegree[target] == 0:
                    del indegree[target]
                    heapq.heappush(ready, (rank(target), position[target], target))
        if indegree:
            raise CycleError(f"{len(indegree)} nodes are on or after a cycle")
        return order

    def is_acyclic(self) -> bool:
        try:
            self.toposort(key=lambda node: 0)
        except CycleError:
            return False
        return True

    def find_cycle(self) -> list[tuple[Node, Node]]:
        """The edges of one cycle, as networkx's `find_cycle` reports it (error path only)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self._succ)
        graph.add_edges_from((source, target) for source, targets in self._succ.items() for target in targets)
        return list(nx.find_cycle(graph))
