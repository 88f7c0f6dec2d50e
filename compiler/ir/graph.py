"""The IR graph: typed nodes and their use-def edges.

Nodes keep their insertion order, and the topological order breaks ties by it, so printing
and emission are deterministic: it is the order networkx's lexicographical topological sort
gives with node positions as keys. Through lowering (the whole of `dlc validate`) the order
of positions is already topological (every node was added after its inputs, or checked to
come after them), so `toposort` is that order. After a rewrite that reorders, it is
computed here (Kahn's algorithm, the ready node of least position first) rather than on a
`networkx.DiGraph`: importing networkx and building the DiGraph cost 76 ms of BERT-base's
compile in the first pass that asked. The users of each value are a plain index. networkx
(imported only by `dlc.ir`) names the cycle when a graph has one, which is a dlc bug.

Example (``print(graph)``)::

    graph mlp(%x: float32[N, 784]) -> (logits: float32[N, 10]) {
      %linear_0.weight = parameter() {init='uniform(-0.0357, 0.0357)', ...} : float32[256, 784]
      %linear_0 = linear(%x, %linear_0.weight, %linear_0.bias) : float32[N, 256]
      ...
    }
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

from dlc.ir.node import Node, Value


class IRError(Exception):
    """An internal IR invariant was broken (a dlc bug, not a user error)."""


class Graph:
    """A dataflow graph of `Node`s with named inputs (``input`` nodes) and named outputs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.outputs: dict[str, Value] = {}
        self._users: dict[str, dict[str, None]] = {}  # value name -> its users' names, in use order
        self._positions_topological = True  # every node's inputs come before it
        self._nodes: dict[str, Node] = {}
        # Position keys, compared as tuples: a node added at the end gets ``(count, 0)``; one
        # added before a node keyed ``(*k, 0)`` gets ``(*k, -BIG + i, 0)`` for the i-th such
        # insertion, which sorts after the earlier ones and before that node, so inserting
        # costs O(1) instead of renumbering every later node (quadratic over a rewrite).
        self._order: dict[str, tuple[int, ...]] = {}
        self._inserted_before: dict[str, int] = {}
        self._values: dict[str, tuple[str, int]] = {}  # value name -> (producer, output index)
        self._counter = 0
        # Template calls, by layer scope: (template name, its resolved arguments). Read by the
        # torch writer to give each template its own nn.Module class; passes leave it as is.
        self.templates: dict[str, tuple[str, dict[str, object]]] = {}

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(sorted(self._nodes.values(), key=lambda n: self._order[n.name]))

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    @property
    def nodes(self) -> list[Node]:
        return list(self)

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def has_value(self, name: str) -> bool:
        return name in self._values

    def value(self, name: str) -> Value:
        producer, index = self._values[name]
        return self._nodes[producer].outputs[index]

    def producer(self, value: Value) -> Node:
        return self._nodes[self._values[value.name][0]]

    def users(self, value: Value) -> list[Node]:
        users = [self._nodes[user] for user in self._users[value.name]]
        return sorted(users, key=lambda n: self._order[n.name])

    def is_output(self, value: Value) -> bool:
        return any(v.name == value.name for v in self.outputs.values())

    def inputs(self) -> list[Node]:
        """The graph's ``input`` nodes, in declaration order."""
        return [n for n in self if n.op == "input"]

    def parameters(self) -> list[Node]:
        return [n for n in self if n.op == "parameter"]

    def toposort(self) -> list[Node]:
        if self._positions_topological:  # what the lexicographical sort would give
            return self.nodes
        order = self._lexicographic_order()
        if order is None:
            raise IRError(f"graph has a cycle: {self._cycle()}")
        return [self._nodes[name] for name in order]

    def fresh_name(self, base: str) -> str:
        """A node name not yet used, `base` itself when free."""
        if base not in self._nodes and base not in self._values:
            return base
        index = 1
        while f"{base}_{index}" in self._nodes or f"{base}_{index}" in self._values:
            index += 1
        return f"{base}_{index}"

    # -- mutation ----------------------------------------------------------------------

    def add(self, node: Node, before: Node | None = None) -> Node:
        """Add `node` at the end of the order, or at the position of `before` (which, and
        everything after it, moves one place on): a rewrite then prints and emits its new
        nodes where the nodes they replace were."""
        if node.name in self._nodes:
            raise IRError(f"duplicate node name '{node.name}'")
        for value in node.outputs:
            if value.name in self._values:
                raise IRError(f"duplicate value name '{value.name}'")
        for value in node.input_values:
            self._check_defined(value, node)
        self._nodes[node.name] = node
        if before is None:
            self._order[node.name] = (self._counter, 0)
        else:
            position = self._order[before.name]
            count = self._inserted_before.get(before.name, 0)
            self._inserted_before[before.name] = count + 1
            self._order[node.name] = (*position[:-1], _BEFORE + count, 0)
        self._counter += 1
        for index, value in enumerate(node.outputs):
            self._values[value.name] = (node.name, index)
            self._users[value.name] = {}
        self._link_inputs(node)
        return node

    def replace_node(self, old: Node, new: Node) -> Node:
        """Swap `old` for `new` in place (same position); `new` must keep the output names
        that are still used, or callers must rewire those uses first."""
        if self._nodes.get(old.name) is not old:
            raise IRError(f"node '{old.name}' is not in graph '{self.name}'")
        position = self._order[old.name]
        kept = {v.name: v for v in new.outputs}
        users = {v.name: self.users(v) for v in old.outputs}
        for value in old.outputs:
            used = bool(users[value.name]) or self.is_output(value)
            if used and kept.get(value.name) != value:
                raise IRError(f"replacing '{old.name}' would orphan the uses of '{value.name}'")
        inserted = self._inserted_before.get(old.name, 0)
        self._remove(old, check_users=False)
        self.add(new)
        self._place(new.name, position, inserted)
        for user_list in users.values():
            for user in user_list:
                self._link_inputs(self._nodes[user.name])
        return new

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Make every user of `old` (and any graph output that is `old`) use `new`."""
        if old.name == new.name:
            return
        self._check_defined(new, None)
        for user in self.users(old):
            inputs = tuple(new if v is not None and v.name == old.name else v for v in user.inputs)
            self._relink(user, user.replace(inputs=inputs))
        for key, value in self.outputs.items():
            if value.name == old.name:
                self.outputs[key] = new

    def rename_node(self, node: Node, new_name: str) -> Node:
        """Rename `node` and its outputs (``name`` or ``name:port``), rewiring all uses."""
        if new_name == node.name:
            return node
        if new_name in self._nodes:
            raise IRError(f"cannot rename '{node.name}' to existing '{new_name}'")
        outputs = tuple(
            Value(
                new_name if len(node.outputs) == 1 else f"{new_name}:{v.name.rsplit(':', 1)[-1]}",
                v.type,
            )
            for v in node.outputs
        )
        renamed = node.replace(name=new_name, outputs=outputs)
        users = {v.name: self.users(v) for v in node.outputs}
        was_output = {k: v.name for k, v in self.outputs.items()}
        position = self._order[node.name]
        inserted = self._inserted_before.get(node.name, 0)
        self._remove(node, check_users=False)
        self.add(renamed)
        self._place(new_name, position, inserted)
        for old_value, new_value in zip(node.outputs, outputs, strict=True):
            for user in users[old_value.name]:
                current = self._nodes[user.name]
                inputs = tuple(
                    new_value if v is not None and v.name == old_value.name else v for v in current.inputs
                )
                self._relink(current, current.replace(inputs=inputs))
            for key, name in was_output.items():
                if name == old_value.name:
                    self.outputs[key] = new_value
        return renamed

    def erase(self, node: Node) -> None:
        """Remove a node whose outputs are unused."""
        self._remove(node, check_users=True)

    def copy(self) -> Graph:
        clone = Graph(self.name)
        # Topological order: a node replaced in place may read a node added after it.
        for node in self.toposort():
            clone.add(node)
        clone._order = dict(self._order)  # keep positions, so printing and emission agree
        clone._positions_topological = self._positions_topological
        clone._inserted_before = dict(self._inserted_before)
        clone._counter = self._counter
        clone.outputs = dict(self.outputs)
        clone.templates = dict(self.templates)
        return clone

    # -- checking ----------------------------------------------------------------------

    def verify(self) -> None:
        """Check structural invariants; raise `IRError` naming the first broken one.

        Type consistency against the op registry is checked by `dlc.ir.verify`."""
        if not self._positions_topological and self._lexicographic_order() is None:
            raise IRError(f"graph has a cycle: {self._cycle()}")
        for name, users in self._users.items():
            producer = self._values[name][0]
            for user in users:
                if name not in {v.name for v in self._nodes[user].input_values}:
                    raise IRError(f"'{user}' is listed as a user of '{name}' but does not read it")
                if self._positions_topological and self._order[user] <= self._order[producer]:
                    raise IRError(f"'{user}' comes before '{producer}', whose output it reads")
        for node in self:
            for value in node.input_values:
                self._check_defined(value, node)
        for key, value in self.outputs.items():
            if value.name not in self._values:
                raise IRError(f"output '{key}' refers to undefined value '{value.name}'")
            if self.value(value.name) != value:
                raise IRError(f"output '{key}' has a stale type for '{value.name}'")

    def __str__(self) -> str:
        from dlc.ir.printer import print_graph

        return print_graph(self)

    # -- internals ---------------------------------------------------------------------

    def _lexicographic_order(self) -> list[str] | None:
        """Node names in topological order, of the ready nodes the one of least position
        first (networkx's lexicographical sort keyed by position); None if there is a cycle."""
        waiting: dict[str, int] = {}  # node -> its producers not yet placed
        users: dict[str, list[str]] = {}  # producer -> its distinct users
        for name, node in self._nodes.items():
            producers = {self._values[value.name][0] for value in node.input_values}
            waiting[name] = len(producers)
            for producer in producers:
                users.setdefault(producer, []).append(name)
        ready = [(self._order[name], name) for name, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, name = heapq.heappop(ready)
            order.append(name)
            for user in users.get(name, ()):
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, (self._order[user], user))
        return order if len(order) == len(self._nodes) else None

    def _cycle(self) -> list[tuple[str, str]]:
        """A cycle's edges, as networkx finds it (only for the error naming it)."""
        import networkx as nx

        dag = nx.DiGraph()
        dag.add_nodes_from(self._nodes)
        for node in self._nodes.values():
            for value in node.input_values:
                dag.add_edge(self._values[value.name][0], node.name)
        return nx.find_cycle(dag)

    def _check_defined(self, value: Value, user: Node | None) -> None:
        where = f" (used by '{user.name}')" if user else ""
        if value.name not in self._values:
            raise IRError(f"value '{value.name}' is not defined{where}")
        if self.value(value.name) != value:
            raise IRError(f"value '{value.name}' has a stale type{where}")

    def _link_inputs(self, node: Node) -> None:
        position = self._order[node.name]
        for value in node.input_values:
            producer = self._values[value.name][0]
            self._users[value.name][node.name] = None
            if self._order[producer] >= position:
                self._positions_topological = False

    def _unlink_inputs(self, node: Node) -> None:
        for value in node.input_values:
            users = self._users.get(value.name)
            if users is not None:
                users.pop(node.name, None)

    def _relink(self, old: Node, new: Node) -> None:
        assert old.name == new.name and old.outputs == new.outputs
        self._unlink_inputs(old)
        self._nodes[new.name] = new
        self._link_inputs(new)

    def _place(self, name: str, position: tuple[int, ...], inserted: int) -> None:
        """Give node `name` the position (and the count of nodes inserted before it) of the
        node it replaces."""
        self._order[name] = position
        if inserted:
            self._inserted_before[name] = inserted
        node = self._nodes[name]
        if any(self._order[self._values[v.name][0]] >= position for v in node.input_values):
            self._positions_topological = False

    def _remove(self, node: Node, check_users: bool = True) -> None:
        if self._nodes.get(node.name) is not node:
            raise IRError(f"node '{node.name}' is not in graph '{self.name}'")
        if check_users:
            for value in node.outputs:
                if self.users(value) or self.is_output(value):
                    raise IRError(f"cannot erase '{node.name}': '{value.name}' is still used")
        self._unlink_inputs(node)
        del self._nodes[node.name]
        del self._order[node.name]
        self._inserted_before.pop(node.name, None)
        for value in node.outputs:
            del self._values[value.name]
            del self._users[value.name]


_BEFORE = -(2**62)  # below every count of insertions before one node


def value_names(values: Sequence[Value | None]) -> list[str]:
    return [v.name if v is not None else "" for v in values]
