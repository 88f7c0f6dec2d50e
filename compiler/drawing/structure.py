"""What `dlc graph` draws: boxes, the groups that hold them, and arrows carrying shapes.

The spec picture has one box per spec layer (a block, or the `add` of a residual) and
one group per template call, repeat, residual or other scope, nested as the spec nests
them; names are the layers' dotted names (``layer2.0.conv1``), so a box belongs to every
group whose name is a dotted prefix of its own. The IR picture has one box per IR node
and the same groups. Graph inputs and outputs get boxes of their own (``output:NAME``).
Parameter nodes are not drawn; their element counts go on the box that uses them.
`collapse` folds every group at a given depth into a single box.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from dlc.ir.graph import Graph
from dlc.ir.node import Node
from dlc.ir.symbolic import product
from dlc.ir.types import format_shape
from dlc.spec.lower import LayerInfo


@dataclass(frozen=True)
class Box:
    """One drawn node: a layer (or IR node), or a folded group."""

    name: str
    kind: str  # the block (conv2d), IR op (conv), "input", or the folded group's kind
    params: int
    folded: bool = False


@dataclass(frozen=True)
class Group:
    """A template call, repeat, residual or scope: a frame around its members."""

    name: str
    kind: str  # template, repeat, residual, scope
    depth: int
    title: str  # what the frame says: the template's name, "repeat x2", ...


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    shape: str


@dataclass
class Picture:
    name: str
    boxes: list[Box] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)

    def group_of(self, name: str) -> str | None:
        """The innermost group holding box or group `name`, or None at top level."""
        names = {g.name for g in self.groups}
        return next((prefix for prefix in reversed(scopes_of(name)) if prefix in names), None)

    def short_name(self, name: str) -> str:
        """A box's name inside its group's frame (``conv1`` in ``layer1.0``); the frame
        says the rest."""
        group = self.group_of(name)
        return name if group is None else name[len(group) + 1 :]

    @property
    def max_depth(self) -> int:
        return max((g.depth for g in self.groups), default=-1) + 1


def scopes_of(name: str) -> list[str]:
    """The dotted prefixes of a name, outermost first: ``a.0.b`` -> ``a``, ``a.0``. IR
    nodes that a layer adds (``layer1.0/add``) separate with a slash."""
    return [name[: match.start()] for match in re.finditer(r"[./]", name)]


def _box_name(layer: str, node_name: str) -> str:
    return layer or node_name


def spec_picture(graph: Graph, layers: list[LayerInfo]) -> Picture:
    """The spec's structure: one box per layer of the lowered (unoptimized) graph."""
    return _picture(graph, layers, lambda node: _box_name(node.layer, node.name), by_layer=True)


def ir_picture(graph: Graph, layers: list[LayerInfo]) -> Picture:
    """The IR's structure: one box per node of `graph` (typically after the passes)."""
    return _picture(graph, layers, lambda node: node.name, by_layer=False)


def _picture(graph: Graph, layers: list[LayerInfo], box_of: Callable[[Node], str], by_layer: bool) -> Picture:
    blocks = {info.name: info.block for info in layers if info.kind == "block"}
    picture = Picture(graph.name)
    params: dict[str, int] = {}
    kinds: dict[str, str] = {}
    order: list[str] = []
    parameter_users: dict[str, str] = {}
    for node in graph:
        if node.op == "parameter":
            continue
        box = box_of(node)
        if box not in kinds:
            order.append(box)
            kinds[box] = blocks.get(box, node.op) if by_layer else node.op
        for value in node.input_values:
            producer = graph.producer(value)
            if producer.op == "parameter" and producer.name not in parameter_users:
                parameter_users[producer.name] = box
                if producer.attrs.trainable:
                    params[box] = params.get(box, 0) + int(product(producer.output.type.shape))
    seen: set[tuple[str, str]] = set()
    for node in graph:
        if node.op == "parameter":
            continue
        target = box_of(node)
        for value in node.input_values:
            producer = graph.producer(value)
            if producer.op == "parameter":
                continue
            source = box_of(producer)
            if source != target and (source, target) not in seen:
                seen.add((source, target))
                picture.arrows.append(Arrow(source, target, format_shape(value.type.shape)))
    for output, value in graph.outputs.items():
        name = f"output:{output}"
        order.append(name)
        kinds[name] = "output"
        source = box_of(graph.producer(value))
        picture.arrows.append(Arrow(source, name, format_shape(value.type.shape)))
    picture.boxes = [Box(name, kinds[name], params.get(name, 0)) for name in order]
    picture.groups = _groups(order, layers)
    return picture


def _groups(box_names: list[str], layers: list[LayerInfo]) -> list[Group]:
    """Structural layers become groups; so does every other dotted scope (a residual's
    `shortcut` inside a template) that holds a box."""
    structural = {info.name: info for info in layers if info.kind != "block"}
    boxes = set(box_names)
    scopes: dict[str, set[str]] = {}  # scope -> the names one level inside it
    for name in box_names:
        for prefix in scopes_of(name):
            if prefix not in boxes:
                scopes.setdefault(prefix, set()).add(re.split(r"[./]", name[len(prefix) + 1 :])[0])
    groups = []
    for name, inside in scopes.items():
        info = structural.get(name)
        kind = info.kind if info else "scope"
        if kind == "repeat":
            title = f"repeat ×{len(inside)}"
        elif kind == "template" and info is not None:
            title = info.block
        else:
            title = kind
        groups.append(Group(name, kind, len(scopes_of(name)), title))
    return groups


def collapse(picture: Picture, depth: int) -> Picture:
    """Fold every group at `depth` (0: the outermost) into one box; drop deeper groups."""
    folded = [g for g in picture.groups if g.depth == depth]

    def owner(name: str) -> str:
        for group in folded:
            if name.startswith((group.name + ".", group.name + "/")):
                return group.name
        return name

    boxes: dict[str, Box] = {}
    for box in picture.boxes:
        name = owner(box.name)
        if name == box.name:
            boxes[name] = box
        else:
            kind = next(g.title for g in folded if g.name == name)
            previous = boxes.get(name, Box(name, kind, 0, folded=True))
            boxes[name] = replace(previous, params=previous.params + box.params)
    arrows: list[Arrow] = []
    seen: set[tuple[str, str]] = set()
    for arrow in picture.arrows:
        source, target = owner(arrow.source), owner(arrow.target)
        if source != target and (source, target) not in seen:
            seen.add((source, target))
            arrows.append(Arrow(source, target, arrow.shape))
    groups = [g for g in picture.groups if g.depth < depth]
    return Picture(picture.name, list(boxes.values()), groups, arrows)
