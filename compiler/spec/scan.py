"""Lowering `scan` layers: loops whose body runs once per step, carrying named states.

A mixin of `Lowering`. The body is lowered into its own IR graph (the `scan` op's
attribute) in a frame where the carried states, the current slices and the step index
are visible by name, next to every layer of the current step (ports included). Names
the body does not define are looked up where the scan is written; what is found there
(an encoder's outputs, say) is *captured*: it becomes a body input fed from outside.
Parameters the body's layers create go to the top graph under the scan's scope
(``dec.attn.weight``) and are captured too, so all steps share one set of weights.

    - scan:
        over: {x: embedded}     # slices x[:, t] (axis 1)
        carry: {h: h0}          # initial states
        body:
          - concat: {axis: 1}
            in: [x, h]
          - linear: {out: 32}
          - tanh
            id: cell
        next: {h: cell}         # each state's next value
        outputs: {y: cell}      # stacked along axis 1: dec.y is [N, T, 32]
      id: dec                   # ports dec.h (final state) and dec.y
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dlc.errors import Location, ShapeError, SpecError
from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Graph
from dlc.ir.init import Init
from dlc.ir.loops import INDEX_TYPE, ScanAttrs
from dlc.ir.node import Node, Value
from dlc.ir.ops import InferenceError
from dlc.ir.source_ops import InputAttrs
from dlc.ir.types import format_shape, normalize_axis
from dlc.lazy_imports import numpy as np
from dlc.spec.model import ScanOptions
from dlc.spec.scope import Broken, Entry, Frame, LayerInfo, LayerResult
from dlc.spec.suggest import did_you_mean
from dlc.spec.validation import diagnostics_from_validation
from dlc.spec.yaml_source import YamlPath

if TYPE_CHECKING:
    from collections.abc import Callable

    from dlc.errors import ErrorCollector
    from dlc.registry import Registry
    from dlc.spec.loader import Spec


class BodyCaptures:
    """Outer values a loop body reads, each made a body input once (in first-use order)."""

    def __init__(self, body: Graph) -> None:
        self.body = body
        self.outer: list[Value] = []
        self._inner: dict[str, Value] = {}

    def value(self, outer: Value) -> Value:
        if outer.name not in self._inner:
            name = self.body.fresh_name(outer.name)
            node = self.body.add(Node(name, "input", (), (Value(name, outer.type),), InputAttrs(name=name)))
            self._inner[outer.name] = node.output
            self.outer.append(outer)
        return self._inner[outer.name]

    def result(self, outer: LayerResult) -> LayerResult:
        return LayerResult({port: self.value(v) for port, v in outer.ports.items()}, outer.default)

    def prune(self) -> None:
        """Drop the captures the body does not use (a layer's other ports, say)."""
        for outer in list(self.outer):
            inner = self._inner[outer.name]
            if not self.body.users(inner) and not self.body.is_output(inner):
                self.body.erase(self.body.producer(inner))
                del self._inner[outer.name]
                self.outer.remove(outer)


class BodyBuilder(GraphBuilder):
    """Builds a loop body: parameters and constants go to the enclosing graph (for the top
    graph to own every weight) and come back as captured body inputs."""

    def __init__(self, body: Graph, registry: Registry, outer: GraphBuilder, captures: BodyCaptures) -> None:
        super().__init__(body, registry)
        self.outer = outer
        self.captures = captures

    def add_parameter(self, name: str, shape: tuple[int, ...], init: Init, **options: Any) -> Node:
        node = self.outer.add_parameter(name, shape, init, **options)
        return self.graph.producer(self.captures.value(node.output))

    def add_constant(
        self, value: np.ndarray, name: str = "const", layer: str = "", location: Location | None = None
    ) -> Node:
        node = self.outer.add_constant(value, name, layer, location)
        return self.graph.producer(self.captures.value(node.output))

    def parameter_value(self, name: str) -> Value | None:
        value = self.outer.parameter_value(name)
        return None if value is None else self.captures.value(value)

    def parameter_names(self) -> list[str]:
        return self.outer.parameter_names()

    def has_name(self, name: str) -> bool:
        return self.outer.has_name(name)

    def note_input_range(self, value: Value, low: float, high: float) -> None:
        """Body inputs are not model inputs: nothing to note."""


class ScanLowering:
    """`scan` layers."""

    # Provided by `Lowering`, which mixes this class in.
    spec: Spec
    registry: Registry
    graph: Graph
    builder: GraphBuilder
    errors: ErrorCollector
    layers: list[LayerInfo]

    def _lower_scan(
        self, entry: Entry, frame: Frame, get_inputs: Callable[[], list[Value]], full: str
    ) -> LayerResult:
        path: YamlPath = (*entry.path, "scan")
        options = self._scan_options(entry.raw["scan"], path, frame)
        inputs = get_inputs()
        over = dict(zip(options.over, inputs[: len(options.over)], strict=True))
        carry = dict(zip(options.carry, inputs[len(options.over) :], strict=True))
        axes = self._scan_axes(options, over, path, frame)
        location = self._locate(entry.path, frame)
        row = len(self.layers)  # the scan's summary row goes above its body's rows

        body = Graph(full)
        captures = BodyCaptures(body)
        body_builder = BodyBuilder(body, self.registry, self.builder, captures)
        names: dict[str, LayerResult] = {}
        for name, value in carry.items():
            names[name] = LayerResult.single(body_builder.add_input(name, value.type).output)
        for (name, value), axis in zip(over.items(), axes, strict=True):
            sliced = value.type.with_shape(value.type.shape[:axis] + value.type.shape[axis + 1 :])
            names[name] = LayerResult.single(body_builder.add_input(name, sliced).output)
        if options.index is not None:
            names[options.index] = LayerResult.single(
                body_builder.add_input(options.index, INDEX_TYPE).output
            )
        body_frame = Frame(
            scope=full,
            names=dict(names),
            parent=None,
            env=frame.env,
            source=frame.source,
            notes=frame.notes,
            templates_active=frame.templates_active,
            depth=frame.depth + 1,
            taken=set(names),
            outer=frame,
            capture=captures.result,
        )
        first = None
        if len(over) == 1:
            first = names[next(iter(over))]
        elif not over and len(carry) == 1:
            first = names[next(iter(carry))]
        outer_graph, outer_builder = self.graph, self.builder
        self.graph, self.builder = body, body_builder
        try:
            last = self.lower_sequence(
                options.body, (*path, "body"), body_frame, first, several_inputs=list(names)
            )
            if last is None:
                raise Broken
            results = self._scan_results(options, carry, body_frame, path)
        finally:
            self.graph, self.builder = outer_graph, outer_builder
        body.outputs.update(results)
        captures.prune()

        per_step = list(results.values())[len(carry) :]
        try:
            output_axes = tuple(normalize_axis(options.axis, v.type.rank + 1) for v in per_step)
        except ValueError:
            self._error(
                f"axis {options.axis} is out of range to stack the per-step outputs "
                f"({', '.join(format_shape(v.type.shape) for v in per_step)})",
                (*path, "axis"),
                frame,
                error_type=ShapeError,
            )
            raise Broken from None
        attrs = ScanAttrs(
            body=body,
            carries=len(carry),
            scanned=len(over),
            captured=len(captures.outer),
            scan_axes=tuple(axes),
            output_axes=output_axes,
            steps=options.steps,
            reverse=options.reverse,
            index=options.index is not None,
        )
        node_inputs = [*carry.values(), *over.values(), *captures.outer]
        try:
            types = self.registry.op("scan").infer_types(attrs, [v.type for v in node_inputs])
        except InferenceError as error:
            self._error(str(error), path, frame, error_type=ShapeError)
            raise Broken from None
        name = self.graph.fresh_name(full)
        ports = [*carry, *options.outputs]
        outputs = tuple(Value(f"{name}:{port}", t) for port, t in zip(ports, types, strict=True))
        node = self.graph.add(Node(name, "scan", tuple(node_inputs), outputs, attrs, full, full, location))
        result = LayerResult(dict(zip(ports, node.outputs, strict=True)), (list(options.outputs) or ports)[0])
        self.layers.insert(row, LayerInfo(full, "scan", "scan", location, dict(result.ports), frame.depth))
        return result

    def _scan_options(self, raw: Any, path: YamlPath, frame: Frame) -> ScanOptions:
        """Validate the options (expressions expanded, the body kept as written) and check
        how they fit together; every problem is reported at its own key."""
        if not isinstance(raw, dict):
            self._error(
                "`scan` takes a mapping: `over` or `steps`, `carry`, `body`, `next`, `outputs`",
                path,
                frame,
            )
            raise Broken
        data = {k: (v if k == "body" else self._expand_all(v, (*path, k), frame)) for k, v in raw.items()}
        if isinstance(data.get("body"), dict):  # one layer (a template call) needs no list
            data["body"] = [data["body"]]
        try:
            options = ScanOptions.model_validate(data)
        except ValidationError as error:
            diagnostics = diagnostics_from_validation(error, data, frame.source, path, ScanOptions, "scan")
            self.errors.add(SpecError(diagnostics=[self._with_notes(d, frame) for d in diagnostics]))
            raise Broken from None
        if isinstance(raw.get("body"), dict):
            options = options.model_copy(update={"body": [raw["body"]]})
        problems = len(self.errors.diagnostics)
        if options.over and options.steps is not None:
            self._error(
                "a scan takes `over` (sequences) or `steps` (a count), not both",
                (*path, "steps"),
                frame,
                key=True,
            )
        elif not options.over and options.steps is None:
            self._error("a scan needs `over: {name: sequence}` or `steps: count`", path, frame, key=True)
        seen: dict[str, str] = {}
        for key in ("over", "carry"):
            for name in getattr(options, key):
                if name in seen:
                    self._error(
                        f"'{name}' is named in both `{seen[name]}` and `{key}`",
                        (*path, key, name),
                        frame,
                        key=True,
                    )
                seen[name] = key
        if options.index is not None and options.index in seen:
            self._error(
                f"`index` '{options.index}' is also a {seen[options.index]} name", (*path, "index"), frame
            )
        for name in options.next:
            if name not in options.carry:
                hint = did_you_mean(name, options.carry) or (
                    f"carried states: {', '.join(options.carry)}"
                    if options.carry
                    else "declare it in `carry`"
                )
                self._error(
                    f"`next` names '{name}', which is not a carried state",
                    (*path, "next", name),
                    frame,
                    key=True,
                    hint=hint,
                )
        for name in options.carry:
            if name not in options.next:
                where = (*path, "next") if "next" in raw else path
                self._error(
                    f"carried state '{name}' has no next value",
                    where,
                    frame,
                    key=True,
                    hint=f"add `{name}: <body layer>` to `next`",
                )
        for name in options.outputs:
            if name in options.carry:
                self._error(
                    f"output '{name}' has the name of a carried state (both are ports of the scan)",
                    (*path, "outputs", name),
                    frame,
                    key=True,
                )
        if not options.carry and not options.outputs:
            self._error(
                "a scan needs a `carry` or `outputs` (it would compute nothing)", path, frame, key=True
            )
        if len(self.errors.diagnostics) > problems:
            raise Broken
        return options

    def _scan_axes(
        self, options: ScanOptions, over: dict[str, Value], path: YamlPath, frame: Frame
    ) -> list[int]:
        """The scanned axis of each sequence; all must have the same length along it."""
        axes: list[int] = []
        length = None
        for name, value in over.items():
            try:
                axis = normalize_axis(options.axis, value.type.rank)
            except ValueError:
                self._error(
                    f"axis {options.axis} is out of range for '{name}' {format_shape(value.type.shape)} "
                    f"(rank {value.type.rank})",
                    (*path, "axis") if "axis" in options.model_fields_set else (*path, "over", name),
                    frame,
                    error_type=ShapeError,
                    hint="`axis` is the time axis of every sequence in `over` (default 1)",
                )
                raise Broken from None
            if length is not None and value.type.shape[axis] != length:
                self._error(
                    f"the sequences in `over` differ in length along axis {axis}: "
                    f"{length} and {value.type.shape[axis]} ('{name}' {format_shape(value.type.shape)})",
                    (*path, "over", name),
                    frame,
                    error_type=ShapeError,
                )
                raise Broken
            length = value.type.shape[axis]
            axes.append(axis)
        return axes

    def _scan_results(
        self, options: ScanOptions, carry: dict[str, Value], frame: Frame, path: YamlPath
    ) -> dict[str, Value]:
        """The body's outputs: each state's next value (same type as the state), then the
        per-step outputs, resolved among the body's layers."""
        results: dict[str, Value] = {}
        broken = False
        for name, initial in carry.items():
            where = (*path, "next", name)
            try:
                value = self._resolve_body_value(options.next[name], frame, where, "`next`")
            except Broken:
                broken = True
                continue
            if value is None:
                broken = True
                continue
            if value.type != initial.type:
                self._error(
                    f"the next value of '{name}' is {value.type}, but the state is {initial.type}",
                    where,
                    frame,
                    error_type=ShapeError,
                    hint="a carried state keeps its shape and dtype from step to step",
                )
                broken = True
            results[name] = value
        for name, reference in options.outputs.items():
            try:
                value = self._resolve_body_value(reference, frame, (*path, "outputs", name), "`outputs`")
            except Broken:
                broken = True
                continue
            if value is None:
                broken = True
                continue
            results[name] = value
        if broken:
            raise Broken
        return results

    def _resolve_body_value(self, reference: str, frame: Frame, path: YamlPath, where: str) -> Value | None:
        """A body layer (``name`` or ``name.port``) named by `next` or `outputs`."""
        layer, _, port = reference.partition(".")
        return self._resolve_ref(layer, port or None, path, frame, where)
