"""Load YAML into plain Python data while remembering where every key and value came from.

PyYAML's composer gives nodes with start marks; we build dicts, lists and scalars from
them ourselves and record, for every YAML path, the position of its key and of its value.
Errors later point at ``file:line:col`` with the YAML path. Duplicate keys, which PyYAML
silently accepts, are errors here.

Hostile YAML is bounded while it is composed and built: only the standard tags (`!!str`,
`!!int`, `!!float`, `!!bool`, `!!null`, `!!seq`, `!!map`) may be written, nesting stops at
`MAX_NESTING` levels (before Python's recursion limit), and a spec holds at most
`MAX_VALUES` values with its aliases expanded (a "billion laughs" stops there). Values
that do not parse (`!!int abc`, 5,000-digit integers) are located errors.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from dlc.errors import Diagnostic, Location, SpecError
from dlc.spec.spec_text import check_printable, read_spec_text

# Limits on what one YAML document may make dlc build (stated in the README).
MAX_NESTING = 100  # lists and mappings inside each other; real specs nest fewer than 15
MAX_VALUES = 100_000  # scalars, lists and mappings, aliases expanded; real specs hold < 2,000


class _PythonParser(Reader, Scanner, Parser):
    """PyYAML's own parser: slower than libyaml's, with the clearer syntax-error messages
    and positions dlc reports."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)


try:
    from yaml._yaml import CParser as _FastParser
except ImportError:  # PyYAML built without libyaml
    _FastParser = _PythonParser


_STANDARD = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {
    ScalarEvent: {f"{_STANDARD}{name}" for name in ("str", "int", "float", "bool", "null")},
    SequenceStartEvent: {f"{_STANDARD}seq"},
    MappingStartEvent: {f"{_STANDARD}map"},
}
# Implicitly resolved scalars dlc keeps as data; others (dates, `=`, `<<` as a value) stay text.
_DATA_TAGS = _ALLOWED_TAGS[ScalarEvent]
_SURROGATE = re.compile("[\ud800-\udfff]")

YamlPath = tuple[str | int, ...]


class YamlSyntaxError(SpecError):
    """The text is not YAML at all (as opposed to YAML that breaks a limit or uses a bad tag)."""


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
    check_printable(text, file)
    try:
        root = _compose(text)
    except _LimitExceeded as error:
        mark = error.problem_mark
        location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise SpecError(
            diagnostics=[
                Diagnostic(error.problem, location, error.hint, source_line=source.source_line(location))
            ]
        ) from None
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
        raise YamlSyntaxError(
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
        raise YamlSyntaxError(f"YAML syntax error: {error}", location=Location(file)) from None
    if root is None:
        return None, source
    builder = _Builder(source)
    try:
        data = builder.build(root, ())
    except _TooManyValues:
        data = None
    if builder.errors:
        raise SpecError(diagnostics=builder.errors)
    return data, source


def load_yaml_file(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    return load_yaml(read_spec_text(path), str(path))


class _LimitExceeded(yaml.MarkedYAMLError):
    """A document broke one of the limits above, or used a tag dlc does not read."""

    def __init__(self, problem: str, mark: yaml.Mark | None, hint: str | None = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


class _BoundedComposer(Composer, SafeConstructor, Resolver):
    """PyYAML's safe loader, composing no deeper than `MAX_NESTING`, no more than
    `MAX_VALUES` nodes, and only the standard tags (checked as each node starts).

    Events come from libyaml's parser where PyYAML has it (about 7 times faster than the
    pure-Python scanner); nodes are composed here, in Python, so that every node is counted
    and checked before the next one is read. A syntax error is reported as PyYAML's
    parser words and places it (see `load_yaml`)."""

    def __init__(self, stream: str) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        self._nodes += 1
        if self._nodes > MAX_VALUES:
            raise _LimitExceeded(
                f"the spec holds more than {MAX_VALUES:,} values", event.start_mark, _VALUES_HINT
            )
        tag = getattr(event, "tag", None)
        allowed = _ALLOWED_TAGS.get(type(event))
        if tag not in (None, "!") and allowed is not None and tag not in allowed:
            raise _LimitExceeded(
                f"the YAML tag {_short_tag(tag)} is not allowed in a spec",
                event.start_mark,
                "a spec may use only the standard tags !!str, !!int, !!float, !!bool, !!null, "
                "!!seq and !!map",
            )
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _LimitExceeded(
                    f"lists and mappings nest more than {MAX_NESTING} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _FastLoader(_BoundedComposer, _FastParser):
    def __init__(self, stream: str) -> None:
        _FastParser.__init__(self, stream)
        _BoundedComposer.__init__(self, stream)


class _CarefulLoader(_BoundedComposer, _PythonParser):
    def __init__(self, stream: str) -> None:
        _PythonParser.__init__(self, stream)
        _BoundedComposer.__init__(self, stream)


def _compose(text: str) -> Node | None:
    """The document's node tree; syntax errors as PyYAML's own parser reports them."""
    loader = _FastLoader(text)
    try:
        return loader.get_single_node()
    except _LimitExceeded:
        raise
    except yaml.YAMLError:
        if _FastParser is _PythonParser:
            raise
    finally:
        loader.dispose()
    careful = _CarefulLoader(text)
    try:
        return careful.get_single_node()
    finally:
        careful.dispose()


_VALUES_HINT = "a spec describes an architecture; compute long lists with expressions such as ${range(n)}"


class _TooManyValues(Exception):
    """Stops building when aliases expand past `MAX_VALUES`; reported as one diagnostic."""


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_STANDARD) if tag.startswith(_STANDARD) else tag


class _Builder:
    """Turns composed YAML nodes into Python data, recording marks by path."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.constructor = SafeConstructor()
        self.errors: list[Diagnostic] = []
        self._active: set[int] = set()  # guards against recursive aliases
        self._values = 0

    def build(self, node: Node, path: YamlPath) -> Any:
        self._values += 1
        if self._values > MAX_VALUES or len(path) > MAX_NESTING:
            what = f"more than {MAX_VALUES:,} values" if self._values > MAX_VALUES else "nesting"
            self.errors.append(
                self.source.diagnostic(
                    f"YAML aliases expand this spec past the limit ({what}; "
                    f"at most {MAX_VALUES:,} values, {MAX_NESTING} levels)",
                    path,
                    hint="write the repeated part once, as a block template or a repeat",
                )
            )
            raise _TooManyValues
        self.source.value_marks.setdefault(path, _mark(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
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

    def _scalar(self, node: ScalarNode, path: YamlPath, *, key: bool = False) -> Any:
        """The scalar's value; text for implicit dates and the like; errors for bad values."""
        surrogate = _SURROGATE.search(node.value)
        if surrogate is not None:  # from an escape such as "\ud800": not a character
            location = Location(self.source.file, *_mark(node), path)
            self.errors.append(
                Diagnostic(
                    f"the escape for U+{ord(surrogate.group()):04X} (a lone surrogate) is not a character",
                    location,
                    "write the character itself, or its \\U00XXXXXX escape",
                    source_line=self.source.source_line(location),
                )
            )
            return None
        if node.tag not in _DATA_TAGS:
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, KeyError, yaml.YAMLError) as error:
            location = Location(self.source.file, *_mark(node), path)
            message = f"{_short_tag(node.tag)} value '{node.value[:40]}' does not parse"
            hint = None
            if "digits" in str(error):  # Python's int-to-str limit
                message = f"an integer of {len(node.value):,} digits is too long"
                hint = f"dlc reads integers of at most {sys.get_int_max_str_digits():,} digits"
            self.errors.append(
                Diagnostic(message, location, hint, source_line=self.source.source_line(location))
            )
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
            key = self._scalar(key_node, (*path, key_node.value[:40]), key=True)
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
