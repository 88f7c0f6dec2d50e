"""Place a `Picture` top to bottom with grandalf's Sugiyama layout.

grandalf is a small, pure-Python implementation of the layered (Sugiyama) method that
Graphviz's `dot` uses: rank assignment, crossing reduction, Brandes-Köpf coordinates and
edge routing through dummy nodes. It needs no binary and no JavaScript, so the SVG and
the HTML are computed here and the HTML needs no layout code at view time. Group frames
are drawn around their members' boxes afterwards (grandalf has no clusters), which is
right for networks whose groups occupy consecutive ranks, as repeats and templates do.
"""

from __future__ import annotations

from dataclasses import dataclass

from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

from dlc.drawing.structure import Picture

CHARACTER_WIDTH = 7.2  # px per character of the 12px sans-serif labels, a little generous
BOX_HEIGHT = 46.0
RANK_GAP = 76.0  # room between ranks for the shape labels and nested group frames
COLUMN_GAP = 40.0
FRAME_PADDING = 10.0
FRAME_HEADER = 16.0
COMPONENT_GAP = 60.0


@dataclass
class Placed:
    x: float  # centre
    y: float
    width: float
    height: float


@dataclass
class Frame:
    left: float
    top: float
    right: float
    bottom: float


@dataclass
class Layout:
    boxes: dict[str, Placed]
    arrows: list[list[tuple[float, float]]]  # in `picture.arrows` order
    frames: dict[str, Frame]
    width: float
    height: float


class _Size:
    """grandalf reads a vertex's size from `view.w`/`view.h` and writes `view.xy`."""

    def __init__(self, width: float, height: float) -> None:
        self.w, self.h = width, height
        self.xy = (0.0, 0.0)


class _Route:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: list[tuple[float, float]]) -> None:
        self.points = [tuple(p) for p in points]


def box_lines(name: str, kind: str, params: int, folded: bool) -> list[str]:
    """The text of a box: its name, its block, its parameter count."""
    lines = [name, f"{kind} (folded)" if folded else kind]
    if params:
        lines.append(f"{params:,} params")
    return lines


def layout(picture: Picture) -> Layout:
    vertices = {}
    for box in picture.boxes:
        lines = box_lines(picture.short_name(box.name), box.kind, box.params, box.folded)
        width = max(len(line) for line in lines) * CHARACTER_WIDTH + 20
        height = BOX_HEIGHT + (14 if len(lines) > 2 else 0)
        vertex = Vertex(box.name)
        vertex.view = _Size(width, height)
        vertices[box.name] = vertex
    edges = []
    for arrow in picture.arrows:
        edge = Edge(vertices[arrow.source], vertices[arrow.target])
        edge.view = _Route()
        edges.append(edge)
    graph = Graph(list(vertices.values()), edges)
    offset = 0.0
    placed: dict[str, Placed] = {}
    for component in graph.C:
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = COLUMN_GAP, RANK_GAP
        roots = [v for v in component.sV if not v.e_in()]
        sugiyama.init_all(roots=roots or None)
        sugiyama.draw()
        left = min(v.view.xy[0] - v.view.w / 2 for v in component.sV)
        shift = offset - left
        for vertex in component.sV:
            x, y = vertex.view.xy
            placed[vertex.data] = Placed(x + shift, y, vertex.view.w, vertex.view.h)
        for edge in component.sE:
            edge.view.points = [(x + shift, y) for x, y in edge.view.points]
        offset = max(p.x + p.width / 2 for p in placed.values()) + COMPONENT_GAP
    routes = [e.view.points for e in edges]
    frames = _frames(picture, placed, routes)
    return _normalized(placed, routes, frames)


def _frames(
    picture: Picture, placed: dict[str, Placed], routes: list[list[tuple[float, float]]]
) -> dict[str, Frame]:
    """Frames from the innermost groups outwards, each padded around what it holds: its
    boxes, its inner frames, and the bends of the arrows that end inside it (a residual's
    skip connection runs beside the body it skips)."""
    frames: dict[str, Frame] = {}
    bends: dict[str | None, list[Frame]] = {}
    for arrow, points in zip(picture.arrows, routes, strict=True):
        for x, y in points[1:-1]:
            bends.setdefault(picture.group_of(arrow.target), []).append(Frame(x, y, x, y))
    for group in sorted(picture.groups, key=lambda g: -g.depth):
        inside = [
            Frame(p.x - p.width / 2, p.y - p.height / 2, p.x + p.width / 2, p.y + p.height / 2)
            for name, p in placed.items()
            if picture.group_of(name) == group.name
        ] + [frame for name, frame in frames.items() if picture.group_of(name) == group.name]
        inside += bends.get(group.name, [])
        if not inside:
            continue
        frames[group.name] = Frame(
            min(f.left for f in inside) - FRAME_PADDING,
            min(f.top for f in inside) - FRAME_PADDING - FRAME_HEADER,
            max(f.right for f in inside) + FRAME_PADDING,
            max(f.bottom for f in inside) + FRAME_PADDING,
        )
    return frames


def _normalized(
    placed: dict[str, Placed], arrows: list[list[tuple[float, float]]], frames: dict[str, Frame]
) -> Layout:
    """Move everything so that the drawing starts at (margin, margin)."""
    margin = 20.0
    lefts = [p.x - p.width / 2 for p in placed.values()] + [f.left for f in frames.values()]
    tops = [p.y - p.height / 2 for p in placed.values()] + [f.top for f in frames.values()]
    rights = [p.x + p.width / 2 for p in placed.values()] + [f.right for f in frames.values()]
    bottoms = [p.y + p.height / 2 for p in placed.values()] + [f.bottom for f in frames.values()]
    dx, dy = margin - min(lefts, default=0), margin - min(tops, default=0)
    return Layout(
        boxes={n: Placed(p.x + dx, p.y + dy, p.width, p.height) for n, p in placed.items()},
        arrows=[[(x + dx, y + dy) for x, y in points] for points in arrows],
        frames={n: Frame(f.left + dx, f.top + dy, f.right + dx, f.bottom + dy) for n, f in frames.items()},
        width=max(rights, default=0) + dx + margin,
        height=max(bottoms, default=0) + dy + margin,
    )
