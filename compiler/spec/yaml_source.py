"""Load YAML into plain Python data while remembering where every key and value came from.

PyYAML's composer gives nodes with start marks; we build dicts, lists and scalars from
them ourselves and record, for every YAML path, the position of its key and of its value.
Errors later point at ``file:line:col`` with the YAML path. Duplicate keys, which PyYAML
silently accepts, are errors here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dlc.errors import Diagnostic, Location, SpecError

YamlPath = tuple[str | int, ...]


@dataclass
class SourceMap:
    """Positions of keys and values by YAML path, plus the text for caret rendering."""

    file: str
    text: str
    value_marks: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> Location:
        """Location of `path`; the nearest enclosing path that has a position if it has none."""
        path = tuple(path)
        marks = self.key_marks if key else self.value_marks
        probe = path
        while True:
            mark = marks.get(probe) or self.value_marks.get(probe) or self.key_marks.get(probe)
            if mark is not None or not probe:
                break
            probe = probe[:-1]
        line, column = mark if mark is not None else (None, None)
        return Location(self.file, line, column, path)

    def source_line(self, location: Location) -> str | None:
        if location.line is None:
            return None
        lines = self.text.splitlines()
        return lines[location.line - 1] if 0 < location.line <= len(lines) else None

    def diagnostic(
        self,
        message: str,
        path: Sequence[str | int],
        *,
        key: bool = False,
        hint: str | None = None,
        notes: Sequence[str] = (),
    ) -> Diagnostic:
        location = self.locate(path, key=key)
        return Diagnostic(message, location, hint, tuple(notes), self.source_line(location))

    def error(
        self,
        message: str,
        path: Sequence[str | int],
        *,
        key: bool = False,
        hint: str | None = None,
        notes: Sequence[str] = (),
        error_type: type[SpecError] = SpecError,
    ) -> SpecError:
        return error_type(diagnostics=[self.diagnostic(message, path, key=key, hint=hint, notes=notes)])


def load_yaml(text: str, file: str = "<spec>") -> tuple[Any, SourceMap]:
    """Parse YAML text into plain data and a `SourceMap`; raise `SpecError` on bad YAML."""
    source = SourceMap(file=file, text=text)
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        if error.context_mark is not None and "<stream end>" in (error.problem or ""):
            mark = error.context_mark  # where the unclosed bracket or quote began
        location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = error.problem or "invalid YAML"
        context = f" ({error.context})" if error.context else ""
        hint = None
        if "mapping values are not allowed" in problem:
            hint = (
                "a layer with options or an `id` needs a colon after the block name: `- relu:` then `id: act`"
            )
        elif "found character '\\t'" in problem:
            hint = "YAML indents with spaces, not tabs"
        raise SpecError(
            diagnostics=[
                Diagnostic(
                    f"YAML syntax error: {problem}{context}",
                    location,
                    hint,
                    source_line=source.source_line(location),
                )
            ]
        ) from None
    except yaml.YAMLError as error:
        raise SpecError(f"YAML syntax error: {error}", location=Location(file)) from None
    if root is None:
        return None, source
    builder = _Builder(source)
    data = builder.build(root, ())
    if builder.errors:
        raise SpecError(diagnostics=builder.errors)
    return data, source


def _compose(text: str) -> Node | None:
    """The node tree of `text`. libyaml composes the very same nodes (tags, values, line
    and column marks) about 15 times faster than PyYAML's Python parser; on bad YAML the
    Python parser runs again, so error messages read the same with or without libyaml."""
    fast_loader = getattr(yaml, "CSafeLoader", None)
    if fast_loader is not None:
        try:
            return yaml.compose(text, Loader=fast_loader)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def load_yaml_file(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}", location=Location(str(path))) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"cannot read spec file: {error}", location=Location(str(path))) from None
    return load_yaml(text, str(path))


class _Builder:
    """Turns composed YAML nodes into Python data, recording marks by path."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.constructor = SafeConstructor()
        self.errors: list[Diagnostic] = []
        self._active: set[int] = set()  # guards against recursive aliases

    def build(self, node: Node, path: YamlPath) -> Any:
        self.source.value_marks.setdefault(path, _mark(node))
        if isinstance(node, ScalarNode):
            return self.constructor.construct_object(node, deep=True)
        if id(node) in self._active:
            self.errors.append(self.source.diagnostic("recursive YAML alias", path))
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self._active.discard(id(node))
        return None

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        try:
            self.constructor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        except yaml.MarkedYAMLError as error:
            self.errors.append(self.source.diagnostic(f"bad YAML merge: {error.problem}", path))
            return {}
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.errors.append(
                    Diagnostic(
                        "mapping keys must be plain names",
                        Location(self.source.file, *_mark(key_node), path),
                    )
                )
                continue
            key = self.constructor.construct_object(key_node)
            key = key if isinstance(key, str) else str(key)
            child = (*path, key)
            if key in result:
                first_line = self.source.key_marks[child][0]
                location = Location(self.source.file, *_mark(key_node), child)
                self.errors.append(
                    Diagnostic(
                        f"duplicate key '{key}' (first given on line {first_line})",
                        location,
                        source_line=self.source.source_line(location),
                    )
                )
                continue
            self.source.key_marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        return result


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
