"""Structural layers: template instances, `repeat` and `residual`.

A mixin of `Lowering`. Templates open a closed scope (only their inputs and params are
visible); repeats open one scope per iteration (``stage.0``, ``stage.1``); a residual
sums its body with a shortcut that is the identity, a projection, or explicit layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dlc.errors import DlcError, ShapeError, SpecError
from dlc.ir.node import Value
from dlc.ir.ops import InferenceError
from dlc.ir.types import TensorType
from dlc.limits import ResourceLimitError, format_count
from dlc.spec.entries import layer_name
from dlc.spec.expressions import ExpressionError, substitute
from dlc.spec.model import ResidualLayer
from dlc.spec.scope import Broken, Entry, Frame, LayerInfo, LayerResult
from dlc.spec.templates import Template
from dlc.spec.tensor_info import input_names
from dlc.spec.validation import diagnostics_from_validation
from dlc.spec.yaml_source import YamlPath

if TYPE_CHECKING:
    from dlc.errors import ErrorCollector
    from dlc.ir.builder import GraphBuilder
    from dlc.ir.graph import Graph
    from dlc.registry import Registry
    from dlc.spec.loader import Spec

_MAX_TEMPLATE_DEPTH = 32


class StructureLowering:
    """Templates, repeats and residual connections."""

    # Provided by `Lowering`, which mixes this class in.
    spec: Spec
    registry: Registry
    graph: Graph
    builder: GraphBuilder
    errors: ErrorCollector
    layers: list[LayerInfo]

    def _template(self, name: str, path: YamlPath, frame: Frame) -> Template:
        if name in self.spec.templates:
            return self.spec.templates[name]
        providers = self._plugin_templates[name]
        if len(providers) > 1:
            plugins = ", ".join(f"'{t.plugin}'" for t in providers)
            self._error(f"template '{name}' is provided by several plugins: {plugins}", path, frame)
            raise Broken
        return providers[0]

    def _instantiate(
        self,
        template: Template,
        args: dict[str, Any],
        entry_path: YamlPath,
        frame: Frame,
        inputs: list[Value],
        full: str,
    ) -> LayerResult:
        location = self._locate(entry_path, frame)
        if template.name in frame.templates_active or len(frame.templates_active) >= _MAX_TEMPLATE_DEPTH:
            chain = " -> ".join([*frame.templates_active, template.name])
            self._error(f"template '{template.name}' uses itself ({chain})", entry_path, frame)
            raise Broken
        definition = template.definition
        self._check_arity(
            template.name,
            (len(definition.inputs), len(definition.inputs)),
            len(inputs),
            entry_path,
            frame,
        )
        where = f"{location}" + (f" ({location.yaml_path})" if location.path else "")
        body_frame = Frame(
            scope=full,
            names={n: LayerResult.single(v) for n, v in zip(definition.inputs, inputs, strict=True)},
            parent=None,
            env={**self.spec.params, **args},
            source=template.source,
            notes=(*frame.notes, f"in template '{template.name}' used at {where}"),
            templates_active=(*frame.templates_active, template.name),
            depth=frame.depth + 1,
            taken=set(definition.inputs),
        )
        first = body_frame.names[definition.inputs[0]]
        body = self.lower_sequence(template.raw["body"], (*template.path, "body"), body_frame, first)
        if body is None:
            raise Broken
        result = body
        if definition.residual is not None and self._residual_enabled(template, body_frame, inputs):
            result = self._residual_merge(
                body,
                first,
                definition.residual.shortcut,
                definition.residual.projection,
                definition.residual.name,
                (*template.path, "residual"),
                body_frame,
                full,
            )
        if definition.post:
            post = self.lower_sequence(template.raw["post"], (*template.path, "post"), body_frame, result)
            if post is None:
                raise Broken
            result = post
        if definition.outputs:  # none listed (or an empty list): the last layer, as in a spec
            result = self._template_outputs(template, body_frame, result)
        self.graph.templates[full] = (template.name, dict(args))
        return self._record(full, template.name, "template", location, result, frame)

    def _residual_enabled(self, template: Template, frame: Frame, inputs: list[Value]) -> bool:
        """A template's `residual: {if: ...}`, evaluated with its arguments and its inputs'
        shapes (``${stride == 1 and input.shape[1] == out}``)."""
        raw = template.raw.get("residual")
        if not isinstance(raw, dict):
            return True
        with_inputs = dataclasses.replace(frame, env=input_names(inputs, frame.env))
        return self._read_condition(raw, (*template.path, "residual"), with_inputs)

    def _template_args(self, template: Template, raw: Any, path: YamlPath, frame: Frame) -> dict[str, Any]:
        expanded = self._expand_all(raw, path, frame)
        if expanded is None:
            given: dict[str, Any] = {}
        elif isinstance(expanded, dict):
            given = expanded
        elif template.shorthand is not None:
            given = {template.shorthand: expanded}
        else:
            self._error(f"template '{template.name}' takes a mapping of parameters", path, frame)
            raise Broken
        values = dict(given)
        for name, default in template.defaults().items():
            if name not in values:
                try:
                    values[name] = _substitute_default(default, {**self.spec.params, **values})
                except ExpressionError as error:
                    self._error(f"default of '{name}': {error.message}", path, frame, hint=error.hint)
                    raise Broken from None
        try:
            parsed = template.args_model.model_validate(values)
        except ValidationError as error:
            source_data = given if isinstance(raw, dict) or raw is None else {template.shorthand: raw}
            diagnostics = diagnostics_from_validation(
                error,
                source_data,
                frame.source,
                path,
                template.args_model,
                f"template '{template.name}'",
            )
            self.errors.add(SpecError(diagnostics=[self._with_notes(d, frame) for d in diagnostics]))
            raise Broken from None
        return parsed.model_dump()

    def _template_outputs(self, template: Template, frame: Frame, last: LayerResult) -> LayerResult:
        declared = template.definition.outputs
        assert declared is not None
        items = (
            list(declared.items())
            if isinstance(declared, dict)
            else [(r.partition(".")[0], r) for r in declared]
        )
        ports: dict[str, Value] = {}
        for index, (port, ref) in enumerate(items):
            key: str | int = port if isinstance(declared, dict) else index
            value = self._resolve(ref, frame, (*template.path, "outputs", key))
            if value is None:
                raise Broken
            ports[port] = value
        return LayerResult(ports, items[0][0])

    def _lower_repeat(
        self, entry: Entry, frame: Frame, get_inputs: Callable[[], list[Value]], full: str
    ) -> LayerResult:
        """The header (count, `as`, `input`, `body`) is checked before the input is
        resolved, so a repeat after a broken layer still reports its own mistakes."""
        raw = entry.raw
        count = self._expand(raw["repeat"], (*entry.path, "repeat"), frame)
        if isinstance(count, str):
            self._error(
                f"`repeat` takes a count >= 0, got the string {count!r}",
                (*entry.path, "repeat"),
                frame,
                hint=f"write `repeat: {count}` without quotes" if count.strip().isdigit() else None,
            )
            raise Broken
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            shown = format_count(count) if isinstance(count, int) else repr(count)
            self._error(f"`repeat` takes a count >= 0, got {shown}", (*entry.path, "repeat"), frame)
            raise Broken
        start = self._expand(raw.get("start", 0), (*entry.path, "start"), frame)
        if isinstance(start, bool) or not isinstance(start, int):
            self._error(f"`start` takes an int, got {start!r}", (*entry.path, "start"), frame)
            raise Broken
        self._check_repeat_room(count, count, 1, entry, frame)  # even an empty iteration costs work
        variable = raw.get("as")
        if variable is not None and (not isinstance(variable, str) or not variable.isidentifier()):
            self._error(f"`as` takes a loop variable name, got {variable!r}", (*entry.path, "as"), frame)
            raise Broken
        carried = raw.get("input")  # a name for each iteration's input, e.g. to pair it with a memory
        if carried is not None and (not isinstance(carried, str) or not carried.isidentifier()):
            message = f"`input` takes a name for each iteration's input, got {carried!r}"
            self._error(message, (*entry.path, "input"), frame)
            raise Broken
        body = raw.get("body")
        if not isinstance(body, list) or not body:
            self._error("`repeat` needs a `body:` list of layers", entry.path, frame, key=False)
            raise Broken
        # Iterations live under the repeat's name (`stage.0`), or, for a `name:` pattern
        # without an `id`, directly in the enclosing scope, as the items of torchvision's
        # flat nn.Sequential do (`features.1` after `features.0`). With `flat: true` an
        # iteration has no name: its layers are named in the enclosing scope by their own
        # (computed) ids, as a loop appending modules to one nn.Sequential names them.
        pattern = raw.get("name")
        inline = pattern is not None and not entry.explicit_id
        base = frame.scope if inline else full
        flat = raw.get("flat", False)
        if not isinstance(flat, bool) or (flat and pattern is not None):
            problem = "takes true or false" if not isinstance(flat, bool) else "and `name` exclude each other"
            self._error(f"`flat` {problem}", (*entry.path, "flat"), frame)
            raise Broken
        current = LayerResult.single(get_inputs()[0])
        if count == 0:  # the identity, like a skipped layer: no nodes and no summary row
            return current
        single = len(body) == 1 and not (isinstance(body[0], dict) and "id" in body[0])
        errors_before = len(self.errors.diagnostics)
        named: set[str] = set()  # iteration names under the repeat's own name
        nodes_before = len(self.graph)
        for iteration in range(start, start + count):
            env = {**frame.env, variable: iteration} if variable else frame.env
            child = frame.child(base, env)
            name = self._iteration_name(pattern, iteration, entry, child, frame.taken if inline else named)
            child.scope = f"{base}.{name}" if base else name
            if flat:  # layers named as if written out in the enclosing sequence, and visible there
                child.scope, child.counters, child.taken = frame.scope, frame.counters, frame.taken
                child.names, child.skipped = frame.names, frame.skipped
            if carried is not None:
                child.names[carried] = current
                child.taken.add(carried)
            if flat:
                result = self.lower_sequence(body, (*entry.path, "body"), child, current)
            elif single:
                child.scope = base
                child.taken = set()
                result = self._lower_single(body[0], (*entry.path, "body", 0), child, current, name)
            else:
                result = self.lower_sequence(body, (*entry.path, "body"), child, current)
            if result is None or len(self.errors.diagnostics) > errors_before:
                raise Broken  # one iteration's errors are enough; the others would repeat them
            current = result
            for inner in () if flat else child.names:
                self._inner_names.setdefault(inner, entry.name)
            if iteration == start:  # the first iteration shows what each one costs
                self._check_repeat_room(count, count - 1, len(self.graph) - nodes_before, entry, frame)
        return self._record(full, "repeat", "repeat", self._locate(entry.path, frame), current, frame)

    def _iteration_name(
        self, pattern: Any, iteration: int, entry: Entry, frame: Frame, taken: set[str]
    ) -> str:
        """One iteration's name: the loop value, or the `name:` pattern evaluated with the
        loop variable, unique in the scope it is named in (`taken` grows with it)."""
        if pattern is None:
            return str(iteration)
        path = (*entry.path, "name")
        name = layer_name(self._expand(pattern, path, frame))
        if name is None:
            self._error(
                f"`name` must give a name (letters, digits, _), got {self._expand(pattern, path, frame)!r}",
                path,
                frame,
            )
            raise Broken
        if name in taken:
            self._error(f"`name` gives '{name}', a name already used in this scope", path, frame)
            raise Broken
        taken.add(name)
        return name

    def _check_repeat_room(
        self, count: int, iterations: int, nodes_each: int, entry: Entry, frame: Frame
    ) -> None:
        """Refuse a repeat whose remaining `iterations` cannot fit under the node limit, before
        lowering them (`repeat: 1000000` fails at once, not after minutes)."""
        location = self._locate((*entry.path, "repeat"), frame)
        what = f"`repeat: {format_count(count)}`"
        self.builder.check_room(iterations * max(nodes_each, 1), location, what)

    def _lower_single(
        self, raw: Any, path: YamlPath, frame: Frame, input_: LayerResult, name: str
    ) -> LayerResult | None:
        """Lower one entry named exactly `name` in `frame` (a repeat iteration or shortcut)."""

        def inputs() -> list[Value]:
            if entry.refs is None:
                return [input_.value] if entry.takes_input else []
            refs = [self._resolve_ref(n, p, rp, frame) for n, p, rp in entry.refs]
            if any(r is None for r in refs):
                raise Broken
            return [r for r in refs if r is not None]

        try:
            entry = self._read_entry(raw, path, frame, 0)
            result = self._lower_entry(entry, frame, name, inputs)
        except Broken:
            return None
        frame.names[name] = result
        return result

    def _lower_residual_layer(
        self, entry: Entry, frame: Frame, inputs: list[Value], full: str
    ) -> LayerResult:
        raw = entry.raw["residual"]
        path = (*entry.path, "residual")
        data = {"body": raw} if isinstance(raw, list) else raw  # the short form is just the body
        try:
            options = ResidualLayer.model_validate(data)
        except ValidationError as error:
            diagnostics = diagnostics_from_validation(
                error, data, frame.source, path, ResidualLayer, "residual"
            )
            self.errors.add(SpecError(diagnostics=[self._with_notes(d, frame) for d in diagnostics]))
            raise Broken from None
        body_raw, body_path = (raw, path) if isinstance(raw, list) else (raw["body"], (*path, "body"))
        child = frame.child(full)
        first = LayerResult.single(inputs[0])
        body = self.lower_sequence(body_raw, body_path, child, first)
        if body is None:
            raise Broken
        result = self._residual_merge(
            body, first, options.shortcut, options.projection, options.name, path, child, full
        )
        if options.post:
            post = self.lower_sequence(raw["post"], (*path, "post"), child, result)
            if post is None:
                raise Broken
            result = post
        return self._record(full, "residual", "residual", self._locate(entry.path, frame), result, frame)

    def _residual_merge(
        self,
        body: LayerResult,
        input_: LayerResult,
        shortcut: Any,
        projection: list[Any] | None,
        shortcut_name: str,
        path: YamlPath,
        frame: Frame,
        full: str,
    ) -> LayerResult:
        """``body + shortcut(input)``: identity, a projection when shapes differ, or layers;
        the shortcut's layers are named under `shortcut_name`."""
        body_type, input_type = body.value.type, input_.value.type
        shortcut_layers: list[Any] | None = None
        layers_path: YamlPath = path
        if isinstance(shortcut, list):
            shortcut_layers, layers_path = shortcut, (*path, "shortcut")
        elif body_type != input_type:
            if shortcut == "identity":
                self._error(
                    f"residual: the body's output {body_type} does not match its input {input_type}, "
                    "so an identity shortcut cannot be added",
                    (*path, "shortcut"),
                    frame,
                    hint="use `shortcut: auto` (a projection) or change the body",
                    error_type=ShapeError,
                )
                raise Broken
            if projection is not None:
                shortcut_layers, layers_path = projection, (*path, "projection")
            else:
                shortcut_layers = self._default_projection(input_type, body_type, path, frame)
        shortcut_value = input_.value
        if shortcut_layers is not None:
            projection_frame = frame.child(full)
            if len(shortcut_layers) == 1:
                result = self._lower_single(
                    shortcut_layers[0], (*layers_path, 0), projection_frame, input_, shortcut_name
                )
            else:
                projection_frame.scope = f"{full}.{shortcut_name}"
                result = self.lower_sequence(shortcut_layers, layers_path, projection_frame, input_)
            if result is None:
                raise Broken
            shortcut_value = result.value
        if shortcut_value.type != body_type:
            self._error(
                f"residual: the body's output {body_type} and the shortcut {shortcut_value.type} "
                "have different shapes",
                path,
                frame,
                error_type=ShapeError,
            )
            raise Broken
        try:
            node = self.builder.add_op(
                "add",
                [body.value, shortcut_value],
                {},
                name=f"{full}/add",
                module=full,
                layer=f"{full}.add",  # inside the residual's scope, like its body
                location=self._locate(path, frame),
            )
        except ResourceLimitError:
            raise
        except (InferenceError, DlcError) as error:
            self._error(f"residual: {error}", path, frame, error_type=ShapeError)
            raise Broken from None
        return LayerResult.single(node.output)

    def _default_projection(
        self, source: TensorType, target: TensorType, path: YamlPath, frame: Frame
    ) -> list[Any]:
        for projection in self.registry.projections:
            made = projection.make(source, target)
            if made is not None:
                block, config = made
                return [{block: config}]
        self._error(
            f"residual: no projection turns the input {source} into the body's output {target}",
            path,
            frame,
            hint="give the shortcut layers explicitly with `projection: [...]`",
            error_type=ShapeError,
        )
        raise Broken


def _substitute_default(default: Any, env: dict[str, Any]) -> Any:
    return substitute(default, env)
