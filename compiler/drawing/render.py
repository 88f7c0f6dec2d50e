"""Write a `Picture` as Graphviz DOT, as SVG, or as one self-contained HTML page.

The HTML page holds one SVG per level of folding (every group at depth k folded into a
box, for each k, and everything unfolded), laid out here; a few lines of inline script
switch between them: click a folded box to unfold its level, a group's header to fold
it. Nothing is fetched at view time: no script, style sheet or font comes from outside.
"""

from __future__ import annotations

from html import escape

from dlc.drawing.layout import Layout, box_lines, layout
from dlc.drawing.structure import Picture, collapse

INPUT_FILL, FOLDED_FILL = "#e8f0fe", "#fdf3e1"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
BOLD = ' font-weight="bold"'
THICK = ' stroke-width="2"'
GROUP_STROKE = {"template": "#c58a1b", "repeat": "#2e8b57", "residual": "#b0306b", "scope": "#888888"}


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(picture: Picture) -> str:
    """Graphviz text: groups are nested `cluster` subgraphs; edges carry shapes."""
    lines = [f"digraph {_quote(picture.name)} {{", "  rankdir=TB;", '  node [shape=box, style="rounded"];']
    children: dict[str | None, list[str]] = {}
    for group in picture.groups:
        children.setdefault(picture.group_of(group.name), []).append(group.name)
    members: dict[str | None, list[str]] = {}
    for box in picture.boxes:
        members.setdefault(picture.group_of(box.name), []).append(box.name)
    boxes = {box.name: box for box in picture.boxes}
    kinds = {group.name: group.title for group in picture.groups}

    def emit(scope: str | None, indent: str) -> None:
        for name in members.get(scope, []):
            box = boxes[name]
            label = "\n".join(box_lines(box.name, box.kind, box.params, box.folded))
            lines.append(f"{indent}{_quote(name)} [label={_quote(label)}];")
        for group in children.get(scope, []):
            lines.append(f"{indent}subgraph {_quote('cluster_' + group)} {{")
            lines.append(f"{indent}  label={_quote(f'{group} ({kinds[group]})')};")
            emit(group, indent + "  ")
            lines.append(f"{indent}}}")

    emit(None, "  ")
    for arrow in picture.arrows:
        lines.append(f"  {_quote(arrow.source)} -> {_quote(arrow.target)} [label={_quote(arrow.shape)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _svg_body(picture: Picture, placed: Layout, depth: int) -> list[str]:
    parts: list[str] = []
    kinds = {group.name: group for group in picture.groups}
    for name, frame in sorted(placed.frames.items(), key=lambda item: kinds[item[0]].depth):
        group = kinds[name]
        stroke = GROUP_STROKE.get(group.kind, GROUP_STROKE["scope"])
        parts.append(
            f'<g class="group" data-group="{escape(name)}" data-depth="{group.depth}">'
            f'<rect x="{frame.left:.1f}" y="{frame.top:.1f}" width="{frame.right - frame.left:.1f}" '
            f'height="{frame.bottom - frame.top:.1f}" rx="8" fill="none" stroke="{stroke}" '
            f'stroke-dasharray="5,3"/>'
            f'<text class="group-label" x="{frame.left + 6:.1f}" y="{frame.top + 12:.1f}" '
            f'fill="{stroke}">{escape(name)} ({escape(group.title)})</text></g>'
        )
    labelled: set[tuple[str, str]] = set()  # a value used twice is labelled once
    for arrow, points in zip(picture.arrows, placed.arrows, strict=True):
        source, target = placed.boxes[arrow.source], placed.boxes[arrow.target]
        start, end = (source.x, source.y + source.height / 2), (target.x, target.y - target.height / 2)
        route = [start, *points[1:-1], end]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in route)
        label_x, label_y = route[0][0] + 4, (route[0][1] + route[1][1]) / 2 + 4
        label = "" if (arrow.source, arrow.shape) in labelled else escape(arrow.shape)
        labelled.add((arrow.source, arrow.shape))
        parts.append(
            f'<g class="edge" data-source="{escape(arrow.source)}" data-target="{escape(arrow.target)}">'
            f'<polyline points="{path}" fill="none" stroke="#555" marker-end="url(#arrow)"/>'
            f'<text class="shape" x="{label_x:.1f}" y="{label_y:.1f}">{label}</text></g>'
        )
    for box in picture.boxes:
        spot = placed.boxes[box.name]
        fill = FOLDED_FILL if box.folded else INPUT_FILL if box.kind in ("input", "output") else "#ffffff"
        lines = box_lines(picture.short_name(box.name), box.kind, box.params, box.folded)
        texts = "".join(
            f'<text x="{spot.x:.1f}" y="{spot.y - spot.height / 2 + 18 + 14 * i:.1f}" '
            f'text-anchor="middle"{BOLD if i == 0 else ""}>{escape(line)}</text>'
            for i, line in enumerate(lines)
        )
        attributes = (
            f'data-layer="{escape(box.name)}" data-kind="{escape(box.kind)}" data-params="{box.params}"'
        )
        if box.folded:
            attributes += f' data-unfold="{depth + 1}"'
        parts.append(
            f'<g class="node{" folded" if box.folded else ""}" {attributes}>'
            f'<rect x="{spot.x - spot.width / 2:.1f}" y="{spot.y - spot.height / 2:.1f}" '
            f'width="{spot.width:.1f}" height="{spot.height:.1f}" rx="6" fill="{fill}" '
            f'stroke="#333"{THICK if box.folded else ""}/><title>{escape(box.name)}</title>{texts}</g>'
        )
    return parts


_STYLE = (
    "text{font:12px sans-serif;fill:#222}"
    " text.shape{font-size:10px;fill:#666}"
    " text.group-label{font-size:11px}"
)
_DEFS = (
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
    'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
    "</marker></defs>"
)


def to_svg(picture: Picture, depth: int | None = None) -> str:
    """A standalone SVG of `picture`, folded at `depth` (None: every group unfolded)."""
    shown = picture if depth is None else collapse(picture, depth)
    placed = layout(shown)
    level = picture.max_depth if depth is None else depth
    return (
        f'<svg xmlns="{SVG_NAMESPACE}" width="{placed.width:.0f}" height="{placed.height:.0f}" '
        f'viewBox="0 0 {placed.width:.0f} {placed.height:.0f}" data-depth="{level}">'
        f"<style>{_STYLE}</style>{_DEFS}" + "".join(_svg_body(shown, placed, level)) + "</svg>\n"
    )


_SCRIPT = """
(function () {
  var views = document.querySelectorAll('.view');
  var deepest = views.length - 1;
  function show(depth) {
    depth = Math.max(0, Math.min(deepest, depth));
    var shown = null;
    views.forEach(function (view) {
      var on = Number(view.dataset.depth) === depth;
      view.style.display = on ? '' : 'none';
      if (on) { shown = view; }
    });
    document.body.dataset.depth = String(depth);
    document.body.dataset.visibleLayers = String(shown.querySelectorAll('.node').length);
    document.getElementById('level').textContent =
      depth === deepest ? 'all groups open' : 'groups folded at level ' + depth;
  }
  document.addEventListener('click', function (event) {
    var folded = event.target.closest('.node.folded');
    if (folded) { show(Number(folded.dataset.unfold)); return; }
    var group = event.target.closest('.group');
    if (group) { show(Number(group.dataset.depth)); return; }
    var button = event.target.closest('button[data-show]');
    if (button) { show(Number(button.dataset.show)); }
  });
  var match = /depth=(\\d+)/.exec(location.hash);
  show(match ? Number(match[1]) : deepest);
  document.body.dataset.ready = 'true';
})();
"""


def to_html(picture: Picture, title: str) -> str:
    """One page, no outside resources: an SVG per folding level and a small switcher."""
    views = []
    for depth in [*range(picture.max_depth), None]:
        level = picture.max_depth if depth is None else depth
        # Inline SVG needs no namespace; without it the page names no outside address at all.
        svg = to_svg(picture, depth).replace(f' xmlns="{SVG_NAMESPACE}"', "", 1)
        svg = svg.replace("<svg ", f'<svg class="view" data-depth="{level}" ', 1)
        views.append(svg.replace(f' data-depth="{level}">', ">", 1))
    buttons = "".join(
        f'<button data-show="{d}">{"open all" if d == picture.max_depth else f"fold level {d}"}</button>'
        for d in range(picture.max_depth + 1)
    )
    params = sum(box.params for box in picture.boxes)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>"
        "body{font:14px sans-serif;margin:12px;color:#222}"
        " .node.folded,.group-label{cursor:pointer} button{margin-right:6px}"
        " header{margin-bottom:8px}"
        "</style></head><body>"
        f"<header><b>{escape(title)}</b> &middot; {len(picture.boxes)} nodes &middot; "
        f"{params:,} parameters &middot; <span id='level'></span><br>{buttons}</header>"
        + "".join(views)
        + f"<script>{_SCRIPT}</script></body></html>\n"
    )


FORMATS = (".html", ".svg", ".dot")


def render(picture: Picture, suffix: str, title: str) -> str:
    """The picture in the format a file suffix names (one of `FORMATS`)."""
    if suffix == ".dot":
        return to_dot(picture)
    if suffix == ".svg":
        return to_svg(picture)
    if suffix == ".html":
        return to_html(picture, title)
    raise ValueError(f"no picture format for '{suffix}' (known: {', '.join(FORMATS)})")
