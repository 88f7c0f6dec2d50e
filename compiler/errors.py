"""The dlc error hierarchy: every error a user can cause carries where it comes from.

A `DlcError` holds one or more `Diagnostic`s, so a spec with five mistakes reports all
five at once. Each diagnostic has a message, an optional `Location` (file, line, column
and YAML path such as ``layers[3].linear.out``), an optional did-you-mean hint and notes.
The CLI renders them compiler-style and never shows a traceback for a `DlcError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def format_yaml_path(path: Sequence[str | int]) -> str:
    """Render a YAML path tuple as ``layers[3].linear.out``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = _escaped(str(part))
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True)
class Location:
    """Where something came from: a file position and the YAML path inside the spec."""

    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    path: tuple[str | int, ...] = ()

    @property
    def yaml_path(self) -> str:
        return format_yaml_path(self.path)

    def __str__(self) -> str:
        parts = [self.file or "<spec>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


@dataclass(frozen=True)
class Diagnostic:
    """One problem: a message, where it is, and what might fix it."""

    message: str
    location: Location | None = None
    hint: str | None = None
    notes: tuple[str, ...] = ()
    source_line: str | None = field(default=None, compare=False)

    def render(self) -> str:
        where = f"{self.location}: " if self.location else "dlc: "
        path = f" (at {self.location.yaml_path})" if self.location and self.location.path else ""
        lines = [_printable(f"{where}error: {self.message}{path}")]
        if self.source_line is not None and self.location and self.location.column:
            text, column = _excerpt(self.source_line.rstrip(), self.location.column)
            lines.append(f"    {text}")
            lines.append("    " + " " * (column - 1) + "^")
        if self.hint:
            lines.append(_printable(f"  hint: {self.hint}"))
        lines.extend(_printable(f"  note: {note}") for note in self.notes)
        return "\n".join(lines)


def _printable(text: str) -> str:
    """`text` with control characters escaped (and its line breaks kept): a spec's keys and
    values reach messages, and must not move the terminal's cursor or fake output lines."""
    if text.isprintable():
        return text
    return "\n".join(_escaped(line) for line in text.split("\n"))


def _escaped(text: str) -> str:
    return "".join(c if c.isprintable() or c == "\t" else _escape(c) for c in text)


def _escape(character: str) -> str:
    return character.encode("unicode_escape").decode("ascii")


_EXCERPT_WIDTH = 100


def _excerpt(line: str, column: int) -> tuple[str, int]:
    """At most about `_EXCERPT_WIDTH` characters of a long source line around `column`, with
    the column moved to match (a hostile spec may have megabyte-long lines)."""
    if len(line) <= _EXCERPT_WIDTH:
        return line, column
    start = max(0, min(column - 1 - _EXCERPT_WIDTH // 2, len(line) - _EXCERPT_WIDTH))
    text = line[start : start + _EXCERPT_WIDTH]
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + _EXCERPT_WIDTH < len(line) else ""
    return prefix + text + suffix, column - start + len(prefix)


class DlcError(Exception):
    """Base of every error dlc reports to users; carries one or more diagnostics."""

    kind = "error"

    def __init__(
        self,
        message: str | None = None,
        *,
        location: Location | None = None,
        hint: str | None = None,
        notes: Iterable[str] = (),
        diagnostics: Iterable[Diagnostic] | None = None,
    ) -> None:
        found = list(diagnostics or [])
        if message is not None:
            found.insert(0, Diagnostic(message, location, hint, tuple(notes)))
        if not found:
            raise ValueError("a DlcError needs a message or diagnostics")
        self.diagnostics: list[Diagnostic] = found
        super().__init__(self.render())

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    @property
    def location(self) -> Location | None:
        return self.diagnostics[0].location

    def render(self) -> str:
        body = "\n".join(d.render() for d in self.diagnostics)
        if len(self.diagnostics) > 1:
            body += f"\n{len(self.diagnostics)} errors"
        return body


class SpecError(DlcError):
    """The spec is malformed: YAML syntax, unknown keys, bad values, bad references."""


class ShapeError(SpecError):
    """Shapes do not fit together; names the layer and the shapes involved."""


class PassError(DlcError):
    """An optimization pass failed; names the pass."""


class EmitError(DlcError):
    """Writing ONNX or PyTorch output failed."""


class PluginError(DlcError):
    """A plugin failed to load or register, or two plugins clash on a name a spec uses."""


class WeightsError(DlcError):
    """A weights file does not fit the model: missing, unexpected or mis-shaped tensors."""


class RuntimeSessionError(DlcError):
    """Running a model in ONNX Runtime failed: bad inputs, missing provider, bad model file."""


class ErrorCollector:
    """Gathers diagnostics so that all errors of a spec are reported at once."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self._error_type: type[DlcError] = SpecError

    def add(self, error: DlcError) -> None:
        if not self.diagnostics:
            self._error_type = type(error)
        for diagnostic in error.diagnostics:
            if diagnostic not in self.diagnostics:
                self.diagnostics.append(diagnostic)

    def __bool__(self) -> bool:
        return bool(self.diagnostics)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            ordered = sorted(self.diagnostics, key=_diagnostic_order)
            raise self._error_type(diagnostics=ordered)


def _diagnostic_order(diagnostic: Diagnostic) -> tuple[int, int]:
    location = diagnostic.location
    if location is None or location.line is None:
        return (1 << 30, 0)
    return (location.line, location.column or 0)
