"""Reading a list of layer entries: what each item is, its name, its `in` references,
and the order to lower them in (forward references allowed, cycles reported).

A mixin of `Lowering`: it uses the lowering's registry, spec and error collector.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dlc.ir.node import Value
from dlc.spec.model import COMMON_LAYER_KEYS, LAYER_NAME, REPEAT_KEYS, RESIDUAL_KEYS, SCAN_KEYS
from dlc.spec.scope import Broken, Entry, Frame, LayerResult
from dlc.spec.suggest import block_suggestions, did_you_mean
from dlc.spec.tensor_info import mentions_input
from dlc.spec.yaml_source import YamlPath

if TYPE_CHECKING:
    from dlc.errors import ErrorCollector
    from dlc.ir.builder import GraphBuilder
    from dlc.ir.graph import Graph
    from dlc.registry import Registry
    from dlc.spec.loader import Spec
    from dlc.spec.scope import LayerInfo

# Layer names: letters, digits and `_`. All digits is allowed, so that ids can be the
# indices torchvision's nn.Sequential writes into state_dict keys (`features.0.0.weight`).
_LAYER_NAME = re.compile(LAYER_NAME)


class EntryReading:
    """Headers, names, references and dependency order of layer entries."""

    # Provided by `Lowering`, which mixes this class in.
    spec: Spec
    registry: Registry
    graph: Graph
    builder: GraphBuilder
    errors: ErrorCollector
    layers: list[LayerInfo]

    def _read_entry(self, raw: Any, path: YamlPath, frame: Frame, index: int) -> Entry:
        """Read an entry's header: what it is, its id and its `in` references."""
        if isinstance(raw, str):
            head = raw
            kind = self._classify(head, path, frame, key=False)
            return Entry(index, raw, path, kind, head, "", None, False, self._takes_input(kind, head))
        if not isinstance(raw, dict) or not raw:
            self._error(
                "a layer is a block name (`relu`) or a mapping with one block (`linear: {out: 10}`)",
                path,
                frame,
            )
            raise Broken
        heads = [k for k in raw if k not in COMMON_LAYER_KEYS]
        if "repeat" in raw:
            kind, head = "repeat", "repeat"
            self._check_keys(raw, REPEAT_KEYS, path, frame, "a repeat layer")
        elif "residual" in raw:
            kind, head = "residual", "residual"
            self._check_keys(raw, RESIDUAL_KEYS, path, frame, "a residual layer")
        elif "scan" in raw:
            self._check_keys(raw, SCAN_KEYS, path, frame, "a scan layer")
            entry_id = self._read_id(raw, path, frame)
            refs = self._scan_refs(raw["scan"], (*path, "scan"), frame)
            return Entry(
                index,
                raw,
                path,
                "scan",
                "scan",
                entry_id or "",
                refs,
                entry_id is not None,
                takes_input=True,
                sees_earlier=True,
                skip=not self._read_condition(raw, path, frame),
            )
        else:
            known = [k for k in heads if self._is_block_name(k, frame)]
            if len(known) > 1:
                self._error(
                    f"a layer holds one block, found {', '.join(repr(k) for k in known)}",
                    (*path, known[1]),
                    frame,
                    key=True,
                    hint="put each block in its own list item",
                )
                raise Broken
            unknown = [k for k in heads if k not in known]
            if known:
                for key in unknown:
                    hint = did_you_mean(key, COMMON_LAYER_KEYS)
                    self._error(f"unknown key '{key}' in a layer", (*path, key), frame, key=True, hint=hint)
                if unknown:
                    raise Broken
                head = known[0]
            elif unknown:
                head = unknown[0]
                for key in unknown[1:]:
                    self._error(
                        f"unknown key '{key}' in a layer",
                        (*path, key),
                        frame,
                        key=True,
                        hint=did_you_mean(key, COMMON_LAYER_KEYS),
                    )
            else:
                self._error("a layer needs a block, e.g. `- linear: {out: 10}`", path, frame)
                raise Broken
            kind = self._classify(head, (*path, head), frame, key=True)
        entry_id = self._read_id(raw, path, frame)
        refs = self._read_refs(raw, path, frame)
        reads_input = mentions_input(raw.get("if"))  # decided once the input is known
        return Entry(
            index,
            raw,
            path,
            kind,
            head,
            entry_id or "",
            refs,
            entry_id is not None,
            self._takes_input(kind, head),
            skip=not reads_input and not self._read_condition(raw, path, frame),
            condition_reads_input=reads_input,
        )

    def _read_condition(self, raw: dict[str, Any], path: YamlPath, frame: Frame, key: str = "if") -> bool:
        """The value of a layer's `if:` (true when absent); anything but a bool is an error."""
        if key not in raw:
            return True
        value = self._expand(raw[key], (*path, key), frame)
        if not isinstance(value, bool):
            self._error(
                f"`if` takes a condition that is true or false, got {value!r}",
                (*path, key),
                frame,
                hint='compare explicitly, e.g. `if: "${expand != 1}"`',
            )
            raise Broken
        return value

    def _check_keys(
        self, raw: dict[str, Any], allowed: Sequence[str], path: YamlPath, frame: Frame, what: str
    ) -> None:
        bad = [k for k in raw if k not in allowed]
        for key in bad:
            self._error(
                f"unknown key '{key}' in {what}",
                (*path, key),
                frame,
                key=True,
                hint=did_you_mean(key, allowed) or f"allowed keys: {', '.join(allowed)}",
            )
        if bad:
            raise Broken

    def _is_block_name(self, name: str, frame: Frame) -> bool:
        return (
            name in self.spec.templates
            or name in self._plugin_templates
            or bool(self.registry.block_providers(name))
        )

    def _classify(self, head: str, path: YamlPath, frame: Frame, key: bool) -> str:
        if head in ("repeat", "residual", "scan"):
            self._error(f"`{head}` needs a mapping with its options", path, frame)
            raise Broken
        if head in self.spec.templates:
            return "template"
        if head in self._plugin_templates:
            return "template"
        if self.registry.block_providers(head):
            return "block"
        self._unknown_block(head, path, frame, key)
        raise Broken

    def _unknown_block(self, head: str, path: YamlPath, frame: Frame, key: bool) -> None:
        failed = self.registry.plugin_for_failed_block(head)
        if failed is not None:
            self._error(
                f"block '{head}' comes from plugin '{failed.name}', which failed to load",
                path,
                frame,
                key=key,
                notes=[f"plugin '{failed.name}': {failed.error}"],
            )
            return
        suggestions = block_suggestions(
            head, [*self.registry.block_names, *self.spec.templates, *self._plugin_templates]
        )
        hint = None
        if suggestions:
            described = []
            for name in suggestions:
                if name in self.spec.templates:
                    described.append(f"'{name}' (template in this spec)")
                elif name in self._plugin_templates:
                    described.append(
                        f"'{name}' (template from plugin '{self._plugin_templates[name][0].plugin}')"
                    )
                else:
                    providers = ", ".join(b.plugin for b in self.registry.block_providers(name))
                    described.append(f"'{name}' (plugin {providers})")
            hint = "did you mean " + " or ".join(described) + "?"
        notes = [
            f"plugin '{p.name}' failed to load and might provide it: {p.error}" for p in self.registry.failed
        ]
        self._error(
            f"unknown block '{head}'",
            path,
            frame,
            key=key,
            hint=hint or "run `dlc blocks` to list blocks",
            notes=notes,
        )

    def _takes_input(self, kind: str, head: str) -> bool:
        if kind == "block":
            providers = self.registry.block_providers(head)
            return not providers or providers[0].inputs[1] != 0
        return True

    def _read_id(self, raw: dict[str, Any], path: YamlPath, frame: Frame) -> str | None:
        if "id" not in raw:
            return None
        value = layer_name(self._expand(raw["id"], (*path, "id"), frame))
        if value is None:
            self._error(f"`id` must be a name (letters, digits, _), got {raw['id']!r}", (*path, "id"), frame)
            raise Broken
        return value

    def _read_refs(
        self, raw: dict[str, Any], path: YamlPath, frame: Frame
    ) -> list[tuple[str, str | None, YamlPath]] | None:
        if "in" not in raw:
            return None
        value = raw["in"]
        computed = isinstance(value, str) and "${" in value  # `in: "${[f'b{i}' for i in range(k)]}"`
        if computed:
            value = self._expand(value, (*path, "in"), frame)
        items = value if isinstance(value, list) else [value]
        refs = []
        for index, item in enumerate(items):
            item_path = (*path, "in", index) if isinstance(value, list) and not computed else (*path, "in")
            text = self._expand(item, item_path, frame)
            if not isinstance(text, str) or not text:
                self._error(f"`in` takes layer names, got {text!r}", item_path, frame)
                raise Broken
            name, _, port = text.partition(".")
            refs.append((name, port or None, item_path))
        if not refs:
            self._error("`in` is empty", (*path, "in"), frame)
            raise Broken
        return refs

    def _scan_refs(self, raw: Any, path: YamlPath, frame: Frame) -> list[tuple[str, str | None, YamlPath]]:
        """The layers a scan reads directly: its scanned sequences, then its carries'
        initial values (malformed options are reported when the scan is lowered)."""
        refs: list[tuple[str, str | None, YamlPath]] = []
        if not isinstance(raw, dict):
            return refs
        for key in ("over", "carry"):
            items = raw.get(key)
            if not isinstance(items, dict):
                continue
            for name, text in items.items():
                text = self._expand(text, (*path, key, name), frame)
                if isinstance(text, str) and text:
                    layer, _, port = text.partition(".")
                    refs.append((layer, port or None, (*path, key, name)))
        return refs

    def _name_entries(self, entries: list[Entry | None], frame: Frame) -> None:
        explicit = {e.name for e in entries if e is not None and e.explicit_id}
        seen: dict[str, YamlPath] = {}
        for entry in entries:
            if entry is None:
                continue
            if entry.explicit_id:
                if entry.name in seen or entry.name in frame.taken:
                    self._error(
                        f"duplicate id '{entry.name}'",
                        (*entry.path, "id"),
                        frame,
                        notes=[f"first used at {self._locate(seen[entry.name], frame)}"]
                        if entry.name in seen
                        else [],
                    )
                seen.setdefault(entry.name, (*entry.path, "id"))
                continue
            if entry.skip:  # takes no automatic name, so the others are named as without it
                entry.name = f"{entry.head}_skipped_{entry.index}"
                continue
            while True:
                count = frame.counters.get(entry.head, 0)
                frame.counters[entry.head] = count + 1
                candidate = f"{entry.head}_{count}"
                if candidate not in explicit and candidate not in frame.taken:
                    break
            entry.name = candidate
        for entry in entries:
            if entry is not None:
                frame.taken.add(entry.name)

    def _order(self, entries: list[Entry | None], frame: Frame) -> list[int]:
        """Dependency order of the entries (forward references allowed); cycles are errors."""
        by_name: dict[str, int] = {}
        duplicated: set[str] = set()
        for entry in entries:
            if entry is not None:
                if entry.name in by_name:
                    duplicated.add(entry.name)  # reported as a duplicate id already
                by_name.setdefault(entry.name, entry.index)
        dag = _Dependencies()
        for entry in entries:
            if entry is None:
                continue
            dag.add_node(entry.index)
            if entry.sees_earlier:
                for earlier in entries[: entry.index]:
                    if earlier is not None:
                        dag.add_edge(earlier.index, entry.index)
            if entry.refs is None:
                if entry.takes_input and entry.index > 0 and entries[entry.index - 1] is not None:
                    dag.add_edge(entry.index - 1, entry.index)
            else:
                for name, _, _ in entry.refs:
                    if name in by_name and by_name[name] != entry.index:
                        dag.add_edge(by_name[name], entry.index)
                    elif name in by_name and name not in duplicated:
                        self._error(f"layer '{name}' takes its own output as input", entry.path, frame)
                        dag.remove_node(entry.index)
                        break
        while (order := dag.order()) is None:
            cycle = dag.a_cycle()
            names = [entries[i].name for i in cycle]  # type: ignore[union-attr]
            first = entries[cycle[0]]
            assert first is not None
            self._error(
                "layers form a cycle: " + " -> ".join([*names, names[0]]),
                (*first.path, "in") if first.refs is not None else first.path,
                frame,
            )
            dag.remove_nodes_from(cycle)
        return order

    def _entry_inputs(
        self,
        entry: Entry,
        frame: Frame,
        results: dict[int, LayerResult],
        broken: set[int],
        first_input: LayerResult | None,
        several_inputs: Sequence[str],
    ) -> list[Value]:
        if not entry.takes_input:
            if entry.refs is not None:
                self._error(f"block '{entry.head}' takes no input", (*entry.path, "in"), frame)
                raise Broken
            return []
        if entry.refs is None:
            if entry.index == 0:
                if first_input is None:
                    names = ", ".join(several_inputs)
                    self._error(
                        f"the first layer needs `in:` because the spec has several inputs ({names})",
                        entry.path,
                        frame,
                    )
                    raise Broken
                return [first_input.value]
            if entry.index - 1 in broken or entry.index - 1 not in results:
                raise Broken
            return [results[entry.index - 1].value]
        values = []
        for name, port, ref_path in entry.refs:
            where = f"`{ref_path[-2]}`" if entry.kind == "scan" else "`in`"  # scan: over or carry
            value = self._resolve_ref(name, port, ref_path, frame, where)
            if value is None:
                raise Broken
            values.append(value)
        return values

    def _resolve(self, text: Any, frame: Frame, path: YamlPath) -> Value | None:
        text = self._expand(text, path, frame)
        if not isinstance(text, str):
            self._error(f"expected a layer name, got {text!r}", path, frame)
            raise Broken
        name, _, port = text.partition(".")
        return self._resolve_ref(name, port or None, path, frame, f"`{path[0]}`")

    def _resolve_ref(
        self, name: str, port: str | None, path: YamlPath, frame: Frame, where: str = "`in`"
    ) -> Value | None:
        result = frame.lookup(name)
        if result is None:
            if frame.is_skipped(name):
                self._error(
                    f"layer '{name}' is skipped (its `if:` is false) and has no input to stand for it",
                    path,
                    frame,
                    hint=f"give the layers that use '{name}' the same `if:`",
                )
                raise Broken
            if name in self._defined_anywhere(frame):
                return None  # defined but broken: its own error is reported
            candidates = sorted(
                n for n in {*frame.visible(), *self._defined_anywhere(frame)} if "_skipped_" not in n
            )
            hint = did_you_mean(name, candidates) or _list_names(candidates)
            hidden = self._inner_names.get(name)
            notes = [f"'{name}' is defined inside '{hidden}'; refer to '{hidden}' instead"] if hidden else []
            self._error(f"unknown layer '{name}' in {where}", path, frame, hint=hint, notes=notes)
            raise Broken
        if port is None:
            return result.value
        if port not in result.ports:
            ports = ", ".join(result.ports)
            self._error(
                f"layer '{name}' has no output '{port}' (it has: {ports})",
                path,
                frame,
                hint=did_you_mean(port, result.ports),
            )
            raise Broken
        return result.ports[port]

    def _defined_anywhere(self, frame: Frame) -> set[str]:
        names: set[str] = set()
        current: Frame | None = frame
        while current is not None:
            names |= current.taken
            current = current.parent if current.outer is None else current.outer
        return names


def _list_names(names: list[str], limit: int = 12) -> str | None:
    """A hint listing the layer names available (automatic ones such as `where_0` too)."""
    if not names:
        return None
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    return f"layers defined here: {shown}"


def layer_name(value: Any) -> str | None:
    """`value` as a layer name, or None when it cannot be one: a string of letters, digits
    and `_`, or a non-negative int (`id: 0`, written as torchvision's `features.0`)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _LAYER_NAME.match(value):
        return value
    return None


class _Dependencies:
    """The entries' dependency graph: ordered smallest index first among the ready ones (the
    order a reader expects), in plain Python; networkx is imported only to name a cycle,
    so that lowering a spec does not pay its import."""

    def __init__(self) -> None:
        # node -> its successors; dicts keep insertion order, as networkx's adjacency does,
        # so the cycle named in an error is the one networkx would find.
        self._successors: dict[int, dict[int, None]] = {}

    def add_node(self, node: int) -> None:
        self._successors.setdefault(node, {})

    def add_edge(self, source: int, target: int) -> None:
        self.add_node(source)
        self.add_node(target)
        self._successors[source][target] = None

    def remove_node(self, node: int) -> None:
        self.remove_nodes_from([node])

    def remove_nodes_from(self, nodes: Sequence[int]) -> None:
        for node in nodes:
            self._successors.pop(node, None)
        for targets in self._successors.values():
            for node in nodes:
                targets.pop(node, None)

    def order(self) -> list[int] | None:
        """The lexicographically smallest topological order, or None if there is a cycle."""
        waiting = dict.fromkeys(self._successors, 0)
        for targets in self._successors.values():
            for target in targets:
                waiting[target] += 1
        ready = [node for node, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for target in self._successors[node]:
                waiting[target] -= 1
                if waiting[target] == 0:
                    heapq.heappush(ready, target)
        return order if len(order) == len(waiting) else None

    def a_cycle(self) -> list[int]:
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self._successors)
        graph.add_edges_from(
            (source, target) for source, targets in self._successors.items() for target in targets
        )
        return [source for source, _ in nx.find_cycle(graph)]
