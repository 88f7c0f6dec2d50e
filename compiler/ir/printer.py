"""A deterministic text form of the IR, for `dlc compile --print-ir` and golden tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlc.errors import format_yaml_path

if TYPE_CHECKING:
    from dlc.ir.graph import Graph
    from dlc.ir.node import Node


def _format_attr(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_attr(v) for v in value) + "]"
    return str(value)


def format_node(node: Node) -> str:
    outputs = ", ".join(f"%{v.name}" for v in node.outputs)
    inputs = ", ".join(f"%{v.name}" if v is not None else "_" for v in node.inputs)
    attrs = node.attrs.describe()
    attr_text = ""
    if attrs:
        attr_text = " {" + ", ".join(f"{k}={_format_attr(attrs[k])}" for k in sorted(attrs)) + "}"
    types = ", ".join(str(v.type) for v in node.outputs)
    line = f"{outputs} = {node.op}({inputs}){attr_text} : {types}"
    if node.location is not None and node.location.path:
        line += f"  # {format_yaml_path(node.location.path)}"
    return line


def print_graph(graph: Graph) -> str:
    inputs = ", ".join(f"%{n.output.name}: {n.output.type}" for n in graph.inputs())
    outputs = ", ".join(f"{name}: {v.type}" for name, v in graph.outputs.items())
    lines = [f"graph {graph.name}({inputs}) -> ({outputs}) {{"]
    _print_nodes(graph, "  ", lines)
    returned = ", ".join(f"{name}=%{v.name}" for name, v in graph.outputs.items())
    lines.append(f"  return {returned}")
    lines.append("}")
    return "\n".join(lines)


def _print_nodes(graph: Graph, indent: str, lines: list[str]) -> None:
    """Each node on a line; a loop's body below it, one level deeper (bodies nest rarely
    and shallowly, so recursing per nesting level is fine)."""
    from dlc.ir.loops import nested_graphs

    for node in graph.toposort():
        if node.op == "input":
            continue
        lines.append(f"{indent}{format_node(node)}")
        for body in nested_graphs(node):
            inputs = ", ".join(f"%{n.output.name}: {n.output.type}" for n in body.inputs())
            lines.append(f"{indent}  body {body.name}({inputs}) {{")
            _print_nodes(body, indent + "    ", lines)
            returned = ", ".join(f"{name}=%{v.name}" for name, v in body.outputs.items())
            lines.append(f"{indent}    return {returned}")
            lines.append(f"{indent}  }}")
