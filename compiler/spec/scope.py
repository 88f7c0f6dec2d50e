"""The records lowering works with: scopes (`Frame`), layer results and entries.

`Frame` is a naming scope (the top level, a repeat iteration, a template instance): it
knows which names are visible there, how new layers are named, and the expression
variables in force.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dlc.errors import Location
from dlc.ir.node import Value
from dlc.spec.yaml_source import SourceMap, YamlPath


class Broken(Exception):
    """A layer could not be lowered; its error is already recorded."""


@dataclass
class LayerResult:
    """The outputs of a lowered layer, by port; `default` is used when no port is named."""

    ports: dict[str, Value]
    default: str

    @property
    def value(self) -> Value:
        return self.ports[self.default]

    @staticmethod
    def single(value: Value) -> LayerResult:
        return LayerResult({"out": value}, "out")


@dataclass
class LayerInfo:
    """One lowered layer, for summaries: its dotted name, what it is and where it came from."""

    name: str
    block: str
    kind: str  # block | template | repeat | residual | scan
    location: Location
    outputs: dict[str, Value]
    depth: int


@dataclass
class Frame:
    """A naming scope: where names are looked up and new layers are named."""

    scope: str
    names: dict[str, LayerResult]
    parent: Frame | None
    env: dict[str, Any]
    source: SourceMap
    notes: tuple[str, ...] = ()
    templates_active: tuple[str, ...] = ()
    depth: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)  # skipped layers with no input to stand for
    # A loop body's frame: names it does not define are looked up in `outer` (the frame the
    # loop is written in), and `capture` turns what is found there into body inputs.
    outer: Frame | None = None
    capture: Callable[[LayerResult], LayerResult] | None = None

    def lookup(self, name: str) -> LayerResult | None:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.names:
                return frame.names[name]
            if frame.outer is not None and frame.capture is not None:
                found = frame.outer.lookup(name)
                return None if found is None else frame.capture(found)
            frame = frame.parent
        return None

    def is_skipped(self, name: str) -> bool:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.skipped:
                return True
            frame = frame.parent if frame.outer is None else frame.outer
        return False

    def visible(self) -> list[str]:
        names: set[str] = set()
        frame: Frame | None = self
        while frame is not None:
            names.update(frame.names)
            frame = frame.parent if frame.outer is None else frame.outer
        return sorted(names)

    def child(self, scope: str, env: dict[str, Any] | None = None) -> Frame:
        return Frame(
            scope=scope,
            names={},
            parent=self,
            env=self.env if env is None else env,
            source=self.source,
            notes=self.notes,
            templates_active=self.templates_active,
            depth=self.depth + 1,
        )

    def qualify(self, name: str) -> str:
        return f"{self.scope}.{name}" if self.scope else name


@dataclass
class Entry:
    """A layer entry after its header (kind, head, id, in) has been read."""

    index: int
    raw: Any
    path: YamlPath
    kind: str  # block | template | repeat | residual | scan
    head: str
    name: str
    refs: list[tuple[str, str | None, YamlPath]] | None  # (name, port, path); None = implicit
    explicit_id: bool
    takes_input: bool = True
    sees_earlier: bool = False  # a scan: its body may read every layer written above it
    skip: bool = False  # its `if:` is false: the layer stands for its (first) input
    condition_reads_input: bool = False  # its `if:` reads `input`: decided when it is lowered
