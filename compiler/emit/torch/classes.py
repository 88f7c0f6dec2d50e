"""Template calls as `nn.Module` classes, repeats as `nn.ModuleList` loops, in ``model.py``.

The writer first emits the model flat: every parameter at its full path
(``self.layer1[0].conv1``) and every op on one line of ``forward``. This module then folds
each template call whose lines can stand alone into a class of its own:

    class BasicBlock(nn.Module):
        def __init__(self, planes: int, in_channels: int) -> None: ...
        def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    self.layer1 = nn.ModuleList([BasicBlock(planes=64, ...), BasicBlock(planes=64, ...)])
    for block in self.layer1:
        layer1_1 = block(layer1_1)

A call stands alone when its lines are contiguous in ``forward``, read one outside
variable, produce one value the rest reads, and touch only parameters under its own path.
Calls of one template with the same code up to numbers share a class; a number that
differs between them becomes a constructor argument, named after the template argument
that has its value in every call where one does. Attribute names inside the class are the
path's remaining segments, so the state_dict keys do not change. A call that does not
stand alone stays as the writer emitted it: correctness never depends on this module.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dlc.ir.node import Node, Value
from dlc.ir.types import format_shape

if TYPE_CHECKING:
    from dlc.emit.torch.writer import TorchWriter


@dataclass
class _Call:
    """One template call that stands alone."""

    scope: str
    template: str
    args: dict[str, object]
    start: int  # its forward lines [start, end)
    end: int
    source: Value  # the value it reads first (chained from call to call in a repeat)
    result: Value  # the value it returns
    leaves: list[str]  # its leaf paths, relative to `scope`
    nodes: set[str]  # its IR nodes
    extras: list[Value] = field(default_factory=list)  # other values it reads (a mask)
    parameters: list[str] = field(default_factory=list)  # forward's names for extras
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)


@dataclass
class TemplateClasses:
    """What the writer renders instead of the flat model."""

    sources: list[str]  # class definitions, before the model class
    constructors: dict[str, str]  # scope -> ``BasicBlock(planes=64)``
    folded: set[str]  # leaf paths now inside a class
    lines: list[str]  # the model's forward lines


def camel_case(name: str) -> str:
    parts = re.split(r"[^0-9A-Za-z]+", name)
    text = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return text if text and text[0].isalpha() else f"Block{text}"


def fold_templates(writer: TorchWriter, taken_names: set[str]) -> TemplateClasses | None:
    """The model with template calls as classes, or None when no call stands alone."""
    from dlc.emit.torch.writer import attribute_access

    graph = writer.graph
    if not graph.templates or not writer._spans:
        return None
    calls: list[_Call] = []
    for scope in sorted(graph.templates, key=lambda s: s.count(".")):
        if any(scope.startswith(c.scope + ".") for c in calls):
            continue
        if any(t.startswith(scope + ".") and t.rpartition(".")[2].isdigit() for t in graph.templates):
            continue  # it holds a repeat of template calls: fold those, loop over them here
        call = _stand_alone(writer, scope)
        if call is not None and not any(c.scope.startswith(scope + ".") for c in calls):
            calls.append(call)
    if not calls:
        return None
    calls.sort(key=lambda c: c.start)

    sources: list[str] = []
    constructors: dict[str, str] = {}
    by_template: dict[str, list[list[_Call]]] = {}
    for call in calls:
        groups = by_template.setdefault(call.template, [])
        key = _shape_key(call)
        for group in groups:
            if _shape_key(group[0]) == key:
                group.append(call)
                break
        else:
            groups.append([call])
    made: dict[str, str] = {}
    for template, groups in by_template.items():
        for index, group in enumerate(groups):
            name = _class_name(template, index, group, groups[0], taken_names)
            taken_names.add(name)
            source, arguments = _class_source(name, group)
            sources.append(source)
            for call, values in zip(group, arguments, strict=True):
                listed = ", ".join(f"{k}={v}" for k, v in values.items())
                made[call.scope] = f"{name}({listed})"
    constructors = {c.scope: made[c.scope] for c in calls}

    lines: list[str] = []
    position = 0
    for call in calls:
        lines += writer._lines[position : call.start]
        shape = format_shape(call.result.type.shape)
        target = writer._vars[call.result.name]
        lines.append(f"{target} = {attribute_access(call.scope)}({_reads(writer, call)})  # {shape}")
        position = call.end
    lines += writer._lines[position:]
    lines = _loops(writer, calls, lines)
    folded = {f"{c.scope}.{leaf}" for c in calls for leaf in c.leaves}
    return TemplateClasses(sources, constructors, folded, lines)


def _reads(writer: TorchWriter, call: _Call, first: str | None = None) -> str:
    """The call's arguments: the value it reads first (or `first`), then the others."""
    return ", ".join([first or writer._vars[call.source.name], *(writer._vars[v.name] for v in call.extras)])


def _class_name(template: str, index: int, group: list[_Call], first: list[_Call], taken: set[str]) -> str:
    """`BasicBlock` for a template's first shape; a later shape is named after the
    submodules the first lacks (`BasicBlockWithDownsample`), else numbered."""
    name = camel_case(template)
    if index:
        have = {leaf.split(".")[0] for leaf in first[0].leaves}
        extra = sorted({leaf.split(".")[0] for leaf in group[0].leaves} - have)
        named = f"{name}With{''.join(camel_case(e) for e in extra)}" if extra else ""
        name = named if named and named not in taken else f"{name}{index + 1}"
    while name in taken:
        name += "_"
    return name


def _stand_alone(writer: TorchWriter, scope: str) -> _Call | None:
    from dlc.emit.torch.writer import attribute_access

    graph = writer.graph
    spans = writer._spans
    inside = [i for i, (node, _, _) in enumerate(spans) if _within(node, scope)]
    if not inside or inside != list(range(inside[0], inside[-1] + 1)):
        return None
    nodes = {spans[i][0].name for i in inside}
    start, end = spans[inside[0]][1], spans[inside[-1]][2]
    if start == end:
        return None
    outside_reads: list[Value] = []
    for i in inside:
        for value in spans[i][0].input_values:
            producer = graph.producer(value)
            if producer.name in nodes or producer.op in ("parameter", "constant"):
                continue
            if value not in outside_reads:
                outside_reads.append(value)
    results: list[Value] = []
    for i in inside:
        for value in spans[i][0].outputs:
            if graph.is_output(value) or any(u.name not in nodes for u in graph.users(value)):
                results.append(value)
    if not outside_reads or len(results) != 1:
        return None
    source, result = outside_reads[0], results[0]
    if any(v.name not in writer._vars for v in (*outside_reads, result)):
        return None
    access = attribute_access(scope)
    own = re.compile(rf"(?<![\w.]){re.escape(access)}(?=[.\[])")
    body = writer._lines[start:end]
    for line in (*writer._lines[:start], *writer._lines[end:]):
        if own.search(line):
            return None  # a parameter of the call is read elsewhere (tied weights)
    marked = [own.sub("__own__", line) for line in body]
    if any(re.search(r"(?<![\w.])self\b(?!\.training\b)", line) for line in marked):
        return None  # a parameter outside the call (tied weights, constants)
    body = [line.replace("__own__", "self") for line in marked]
    leaves = [p for p in writer._leaves if p == scope or p.startswith(scope + ".")]
    if scope in leaves or any(writer._leaves[p].kind == "constant" for p in leaves):
        return None
    name, args = writer.graph.templates[scope]
    relative = [p[len(scope) + 1 :] for p in leaves]
    if any(p.split(".")[0].isdigit() for p in relative):
        return None  # numbered children (``features.0``): the call is a ModuleList, not a class
    call = _Call(scope, name, args, start, end, source, result, relative, nodes, outside_reads[1:])
    renamed = _rename(writer, call, body, inside)
    if renamed is None:
        return None
    call.forward = renamed
    call.init = _class_init(writer, scope, call.leaves)
    if any("\n" in line for line in (*call.init, *call.forward)):
        return None  # numbers are found line by line
    return call


def _within(node: Node, scope: str) -> bool:
    return node.layer == scope or node.layer.startswith(scope + ".")


def _rename(writer: TorchWriter, call: _Call, body: list[str], inside: list[int]) -> list[str] | None:
    """The body with the outside variable named `x` and each variable of the call named
    after the layer (relative to the call) that first writes it: ``attn``, ``mlp``, or
    ``out`` for the call's own ops. Calls of the same shape get the same text."""
    from dlc.emit.torch.writer import _identifier

    pattern = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
    writers: dict[str, set[str]] = {}  # variable -> the layers (first segment) writing it
    for i in inside:
        node = writer._spans[i][0]
        relative = node.layer[len(call.scope) + 1 :] if node.layer != call.scope else ""
        for value in node.outputs:
            var = writer._vars.get(value.name)
            if var is not None:
                writers.setdefault(var, set()).add(relative.split(".")[0])
    defined = [
        (var, _identifier(next(iter(layers))) if len(layers) == 1 and "" not in layers else "out")
        for var, layers in writers.items()
    ]
    source = writer._vars[call.source.name]
    names: dict[str, str] = {source: "x"}
    ours = {v for v, _ in defined} | {source}
    kept = {m.group() for line in body for m in pattern.finditer(line)} - ours
    taken = set(kept) | {"x", "self", "torch", "nn", "F"}
    for var, base in defined:
        if var in names:
            continue
        name, index = base, 1
        while name in taken:
            name = f"{base}_{index}"
            index += 1
        names[var] = name
        taken.add(name)
    result = [
        pattern.sub(lambda m: names.get(m.group(), m.group()), line.split("  # ")[0])
        + (("  # " + line.split("  # ", 1)[1]) if "  # " in line else "")
        for line in body
    ]
    returned = names.get(writer._vars[call.result.name], writer._vars[call.result.name])
    last = result[-1] if result else ""
    if last.startswith(f"{returned} = "):  # ``return self.norm(out)``: the same text whatever it was called
        result[-1] = "return " + last[len(returned) + 3 :]
    else:
        result.append(f"return {returned}")
    call.parameters = [names.get(writer._vars[v.name], writer._vars[v.name]) for v in call.extras]
    if len(set(call.parameters)) != len(call.parameters) or "x" in call.parameters:
        return None
    return result


def _class_init(writer: TorchWriter, scope: str, leaves: list[str]) -> list[str]:
    from dlc.emit.torch.writer import _Leaf

    relative = {p: writer._leaves[f"{scope}.{p}"] for p in leaves}
    return init_lines({p: _Leaf(leaf.kind, leaf.code, leaf.values) for p, leaf in relative.items()}, {})


def _numbers(line: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of each number in the code part of a line."""
    code = line.split("  # ")[0].lstrip()
    offset = len(line) - len(line.lstrip())
    found = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(code + "\n").readline):
            if token.type == tokenize.NUMBER:
                found.append((offset + token.start[1], offset + token.end[1], token.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    return found


def _shape_key(call: _Call) -> tuple[str, ...]:
    """A call's code with numbers blanked and comments dropped."""
    key = [",".join(call.parameters)]
    for line in (*call.init, "--", *call.forward):
        code = line.split("  # ")[0]
        for start, end, _ in reversed(_numbers(code)):
            code = code[:start] + "#" + code[end:]
        key.append(code)
    return tuple(key)


def _class_source(name: str, group: list[_Call]) -> tuple[str, list[dict[str, str]]]:
    """The class for calls of one shape, and each call's constructor arguments."""
    first = group[0]
    sections = [("init", first.init), ("forward", first.forward)]
    per_call_numbers = [[[n[2] for n in _numbers(line)] for line in (*c.init, *c.forward)] for c in group]
    parameters: dict[tuple[str, ...], str] = {}  # values across calls -> argument name
    arguments: list[dict[str, str]] = [{} for _ in group]
    used_in_forward: set[str] = set()
    lines_out: dict[str, list[str]] = {"init": [], "forward": []}
    line_index = 0
    for section, lines in sections:
        for line_number, line in enumerate(lines):
            numbers = _numbers(line)
            text = line
            for k in reversed(range(len(numbers))):
                start, end, _ = numbers[k]
                values = tuple(per_call_numbers[c][line_index][k] for c in range(len(group)))
                if section == "init" and line[:start].endswith("range(") and len(set(values)) == 1:
                    continue  # a container's length (``nn.Module() for _ in range(2)``)
                argument = _argument(values, group, parameters, section == "init")
                if argument is None:
                    continue
                for c, value in enumerate(values):
                    arguments[c][argument] = value
                if section == "forward":
                    used_in_forward.add(argument)
                    argument = f"self.{argument}"
                text = text[:start] + argument + text[end:]
            if "  # " in text:
                comments = {(c.init + c.forward)[line_index].partition("  # ")[2] for c in group}
                if len(comments) > 1:
                    text = text.partition("  # ")[0]
            lines_out[section].append(text)
            line_index += 1
            del line_number
    declared = list(first.args)
    names = sorted(
        dict.fromkeys(arguments[0]), key=lambda a: declared.index(a) if a in declared else len(declared)
    )
    arguments = [{a: values[a] for a in names} for values in arguments]
    kinds = {a: "int" if all(v.isdigit() for v in (c[a] for c in arguments)) else "float" for a in names}
    signature = "".join(f", {a}: {kinds[a]}" for a in names)
    body = [f"class {name}(nn.Module):"]
    doc = (
        f'    """The template `{first.template}`'
        + (f" ({len(group)} calls)." if len(group) > 1 else ".")
        + '"""'
    )
    body += [doc, "", f"    def __init__(self{signature}) -> None:", "        super().__init__()"]
    body += [f"        self.{a} = {a}" for a in names if a in used_in_forward]
    body += [f"        {line}" for line in lines_out["init"]]
    extras = "".join(f", {p}: torch.Tensor" for p in first.parameters)
    body += ["", f"    def forward(self, x: torch.Tensor{extras}) -> torch.Tensor:"]
    body += [f"        {line}" for line in lines_out["forward"]]
    return "\n".join(body), arguments


def _argument(
    values: tuple[str, ...],
    group: list[_Call],
    parameters: dict[tuple[str, ...], str],
    in_init: bool,
) -> str | None:
    """The constructor argument a number becomes, or None to keep the literal."""
    varies = len(set(values)) > 1
    if values in parameters:
        return parameters[values]
    try:
        numbers = [ast.literal_eval(v) for v in values]
    except (ValueError, SyntaxError):
        return None
    name = None
    if varies or in_init:
        for arg, _ in group[0].args.items():
            given = [c.args.get(arg) for c in group]
            if all(
                isinstance(g, int) and not isinstance(g, bool) and g == n and (varies or g > 1)
                for g, n in zip(given, numbers, strict=True)
            ):
                name = arg if arg.isidentifier() else None
                break
    if name is None and varies:
        source_dims = [c.source.type.shape for c in group]
        if all(len(s) >= 3 and s[1] == n for s, n in zip(source_dims, numbers, strict=True)):
            name = "in_channels"
        elif all(len(s) >= 1 and s[-1] == n for s, n in zip(source_dims, numbers, strict=True)):
            name = "in_features"
        else:
            name = f"size{len(parameters)}"
    if name is None:
        return None
    while name in parameters.values() or name in ("x", "self"):
        name += "_"
    parameters[values] = name
    return name


def _loops(writer: TorchWriter, calls: list[_Call], lines: list[str]) -> list[str]:
    """Consecutive calls of a repeat (``self.layer1[0](x)``, ``self.layer1[1](...)``, each
    reading the one before) as one ``for`` loop over the ModuleList."""
    from dlc.emit.torch.writer import attribute_access

    by_container: dict[str, list[_Call]] = {}
    for call in calls:
        parent, _, last = call.scope.rpartition(".")
        if parent and last.isdigit():
            by_container.setdefault(parent, []).append(call)
    for parent, members in by_container.items():
        members.sort(key=lambda c: int(c.scope.rpartition(".")[2]))
        indices = [int(c.scope.rpartition(".")[2]) for c in members]
        siblings = [p for p in writer._leaves if p.startswith(parent + ".")]
        if indices != list(range(len(members))) or any(
            not any(p.startswith(c.scope + ".") for c in members) for p in siblings
        ):
            continue
        if any(
            members[i + 1].source != members[i].result
            or members[i + 1].extras != members[0].extras
            or any(u.name not in members[i + 1].nodes for u in writer.graph.users(members[i].result))
            for i in range(len(members) - 1)
        ):
            continue
        call_lines = [
            f"{writer._vars[c.result.name]} = {attribute_access(c.scope)}({_reads(writer, c)})"
            f"  # {format_shape(c.result.type.shape)}"
            for c in members
        ]
        try:
            first = lines.index(call_lines[0])
        except ValueError:
            continue
        if lines[first : first + len(members)] != call_lines:
            continue
        result = writer._vars[members[-1].result.name]
        source = writer._vars[members[0].source.name]
        loop = [] if result == source else [f"{result} = {source}"]
        loop += [
            f"for block in {attribute_access(parent)}:",
            f"    {result} = block({_reads(writer, members[-1], result)})"
            f"  # {format_shape(members[-1].result.type.shape)}",
        ]
        lines = lines[:first] + loop + lines[first + len(members) :]
    return lines


def init_lines(leaves: dict[str, object], constructors: dict[str, str]) -> list[str]:
    """``__init__`` lines for leaves (path -> `_Leaf`) and class instances (path ->
    constructor): containers first (``nn.Module()`` / ``nn.ModuleList``), then the rest in
    creation order. A container whose items are all instances is built in one line."""
    from dlc.emit.torch.writer import attribute_access

    order = list(dict.fromkeys([*leaves, *constructors]))
    tree: dict[str, dict] = {}
    for path in order:
        node = tree
        for segment in path.split("."):
            node = node.setdefault(segment, {})
    lines: list[str] = []
    built: set[str] = set()

    def containers(level: dict[str, dict], prefix: str, listed: bool) -> None:
        for segment, children in level.items():
            path = f"{prefix}.{segment}" if prefix else segment
            if path in leaves or path in constructors or not children:
                continue
            keys = list(children)
            as_list = all(k.isdigit() for k in keys)
            numbered = [int(k) for k in keys if k.isdigit()]
            if as_list:
                keys.sort(key=int)
            items = [f"{path}.{k}" for k in keys]
            if (
                as_list
                and all(i in constructors for i in items)
                and keys == [str(i) for i in range(len(keys))]
            ):
                made = ", ".join(constructors[i] for i in items)
                if len(items) > 1 and len({constructors[i] for i in items}) == 1:
                    made = f"{constructors[items[0]]} for _ in range({len(items)})"
                line = f"{attribute_access(path)} = nn.ModuleList([{made}])"
                # continuation lines carry the indentation of an __init__ body (8)
                bracket, close = f"\n{' ' * 12}", f"\n{' ' * 8})"
                if len(line) > 90 and " for _ in range(" in made:
                    line = f"{attribute_access(path)} = nn.ModuleList({bracket}[{made}]{close}"
                elif len(line) > 90:  # one block a line, as ruff format would write it
                    made = "".join(f"\n{' ' * 16}{constructors[i]}," for i in items)
                    line = f"{attribute_access(path)} = nn.ModuleList({bracket}[{made}{bracket}]{close}"
                lines.append(line)
                built.update(items)
                continue
            # A container with numbered children is a ModuleList (`self.features[0]`), its other
            # children attributes beside them (torchvision's MLPBlock: `mlp[0]`, `mlp.dropout_0`).
            if numbered:
                count = max(numbered) + 1
                lines.append(
                    f"{attribute_access(path)} = nn.ModuleList([nn.Module() for _ in range({count})])"
                )
            elif not (listed and segment.isdigit()):
                lines.append(f"{attribute_access(path)} = nn.Module()")
            containers(children, path, bool(numbered))

    containers(tree, "", False)
    for path in order:
        if path in built:
            continue
        if path in constructors:
            lines.append(f"{attribute_access(path)} = {constructors[path]}")
            continue
        leaf = leaves[path]
        parent, _, attribute = path.rpartition(".")
        owner = attribute_access(parent) if parent else "self"
        if leaf.kind == "buffer":  # type: ignore[attr-defined]
            lines.append(f'{owner}.register_buffer("{attribute}", {leaf.code})')  # type: ignore[attr-defined]
        elif leaf.kind == "constant":  # type: ignore[attr-defined]
            lines.append(f'{owner}.register_buffer("{attribute}", {leaf.code}, persistent=False)')  # type: ignore[attr-defined]
        else:
            lines.append(f"{attribute_access(path)} = {leaf.code}")  # type: ignore[attr-defined]
    return lines or ["pass"]
