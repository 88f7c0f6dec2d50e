"""Lower a validated spec to an IR graph.

Layers are sequential by default: a layer without `in` eats the output of the layer
written before it. `id` + `in` wire DAGs (references may point forward; cycles are
errors). Structural layers: `repeat` (stable names ``stage.0``, ``stage.1``, with a loop
variable), `residual` (body + shortcut, summed) and template calls. Every block config is
expanded (``${...}``) and validated against its block's Pydantic model here, so that all
errors of a spec are reported together, each with file:line:col and YAML path.

Naming: a layer is named by its `id`, else ``<block>_<k>`` counting that block within its
scope. Templates, repeats and residuals open a scope (``stage.0.conv2d_1``). A repeat
whose body is one layer without `id` names each iteration's layer ``stage.<i>`` directly
(as torch's `nn.Sequential` does)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from dlc.errors import Diagnostic, DlcError, ErrorCollector, Location, PluginError, SpecError
from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Graph
from dlc.ir.node import Value
from dlc.ir.ops import InferenceError
from dlc.ir.symbolic import Dim
from dlc.ir.types import TensorType, parse_dim
from dlc.registry import Registry
from dlc.spec.blocks import BlockType
from dlc.spec.context import BlockContext
from dlc.spec.entries import EntryReading
from dlc.spec.expressions import ExpressionError, evaluate_text
from dlc.spec.loader import Spec
from dlc.spec.scope import Broken, Entry, Frame, LayerInfo, LayerResult
from dlc.spec.structures import StructureLowering
from dlc.spec.validation import diagnostics_from_validation
from dlc.spec.yaml_source import YamlPath

log = logging.getLogger(__name__)

__all__ = ["LayerInfo", "LayerResult", "LoweredSpec", "lower_spec"]


@dataclass
class LoweredSpec:
    graph: Graph
    layers: list[LayerInfo]


def lower_spec(spec: Spec, registry: Registry) -> LoweredSpec:
    """Lower `spec` to an IR graph; raise one `SpecError` listing every problem found."""
    return Lowering(spec, registry).run()


class Lowering(EntryReading, StructureLowering):
    """Lowers one spec; collects every error on the way."""

    def __init__(self, spec: Spec, registry: Registry) -> None:
        self.spec = spec
        self.registry = registry
        self.graph = Graph(spec.name)
        self.builder = GraphBuilder(self.graph, registry)
        self.errors = ErrorCollector()
        self.layers: list[LayerInfo] = []
        self._plugin_templates = registry.template_lookup()  # loads only the plugins used
        self._last_layer_name: str | None = None  # the last top-level layer's explicit id
        self._inner_names: dict[str, str] = {}  # ids inside repeat bodies -> the repeat's name

    def run(self) -> LoweredSpec:
        spec = self.spec
        root = Frame(scope="", names={}, parent=None, env=dict(spec.params), source=spec.source)
        self._check_template_names()
        for name, decl in spec.model.inputs.items():
            shape = self._input_shape(name, decl.shape, root)
            node = self.builder.add_input(name, TensorType(decl.dtype, shape), decl.range)
            root.names[name] = LayerResult.single(node.output)
            root.taken.add(name)
        self.errors.raise_if_any()  # layers on an input of unknown shape would only add noise
        inputs = list(spec.model.inputs)
        first = root.names[inputs[0]] if len(inputs) == 1 else None
        last = self.lower_sequence(spec.raw["layers"], ("layers",), root, first, several_inputs=inputs)
        self._set_outputs(root, last)
        self.errors.raise_if_any()
        return LoweredSpec(self.graph, self.layers)

    def _input_shape(self, name: str, dims: Sequence[Any], frame: Frame) -> tuple[Dim, ...]:
        """An input's dims: ints, symbols (`N`), or `${...}` expressions over params, so that
        `--set image=64` can shrink a model's input."""
        shape: list[Dim] = []
        for index, dim in enumerate(dims):
            path = ("inputs", name, "shape", index)
            try:
                shape.append(parse_dim(self._expand(dim, path, frame)))
            except Broken:
                shape.append(1)
            except ValueError as error:
                self._error(str(error), path, frame)
                shape.append(1)
        return tuple(shape)

    def _check_template_names(self) -> None:
        for name, template in self.spec.templates.items():
            providers = self.registry.block_providers(name)
            if providers:
                plugins = ", ".join(f"'{b.plugin}'" for b in providers)
                self.errors.add(
                    self.spec.source.error(
                        f"template '{name}' has the name of a block from plugin {plugins}",
                        template.path,
                        key=True,
                        hint="rename the template",
                    )
                )

    def _set_outputs(self, root: Frame, last: LayerResult | None) -> None:
        declared = self.spec.model.outputs
        raw = self.spec.raw.get("outputs")
        if declared is None:
            if last is not None:
                name = self._last_layer_name or "output"
                self.graph.outputs[name] = last.value
            return
        items = list(declared.items()) if isinstance(declared, dict) else [(r, r) for r in declared]
        for index, (out_name, ref) in enumerate(items):
            path: YamlPath = ("outputs", out_name) if isinstance(raw, dict) else ("outputs", index)
            if out_name in self.spec.model.inputs and ref != out_name:
                self.errors.add(
                    self.spec.source.error(f"output name '{out_name}' is also an input name", path, key=True)
                )
                continue
            if out_name in self.graph.outputs:
                self.errors.add(self.spec.source.error(f"output '{out_name}' is listed twice", path))
                continue
            try:
                value = self._resolve(ref, root, path)
            except Broken:
                continue
            if value is not None:
                self.graph.outputs[out_name] = value

    def lower_sequence(
        self,
        entries: Any,
        path: YamlPath,
        frame: Frame,
        first_input: LayerResult | None,
        several_inputs: Sequence[str] = (),
    ) -> LayerResult | None:
        """Lower a list of layer entries in `frame`; return the last layer's result."""
        if not isinstance(entries, list) or not entries:
            self._error("expected a non-empty list of layers", path, frame)
            return None
        parsed: list[Entry | None] = []
        for index, raw in enumerate(entries):
            try:
                parsed.append(self._read_entry(raw, (*path, index), frame, index))
            except Broken:
                parsed.append(None)
        self._name_entries(parsed, frame)
        order = self._order(parsed, frame)
        results: dict[int, LayerResult] = {}
        broken: set[int] = {i for i, e in enumerate(parsed) if e is None}
        for index in order:
            entry = parsed[index]
            assert entry is not None
            try:
                result = self._lower_entry(
                    entry,
                    frame,
                    entry.name,
                    lambda entry=entry: self._entry_inputs(
                        entry, frame, results, broken, first_input, several_inputs
                    ),
                )
            except Broken:
                broken.add(index)
                continue
            results[index] = result
            frame.names[entry.name] = result
            if frame.parent is None:
                self._last_layer_name = entry.name if entry.explicit_id else None
        last = len(entries) - 1
        return results.get(last)

    def _lower_entry(
        self, entry: Entry, frame: Frame, name: str, get_inputs: Callable[[], list[Value]]
    ) -> LayerResult:
        """Validate the entry's options, then resolve its inputs, then lower it. Options are
        checked first so that a layer downstream of a broken one still reports its own errors."""
        full = frame.qualify(name)
        raw = entry.raw
        if entry.kind == "repeat":
            return self._lower_repeat(entry, frame, get_inputs(), full)
        if entry.kind == "residual":
            return self._lower_residual_layer(entry, frame, get_inputs(), full)
        config_raw = raw[entry.head] if isinstance(raw, dict) else None
        config_path = (*entry.path, entry.head) if isinstance(raw, dict) else entry.path
        if entry.kind == "template":
            template = self._template(entry.head, entry.path, frame)
            args = self._template_args(template, config_raw, config_path, frame)
            return self._instantiate(template, args, entry.path, frame, get_inputs(), full)
        block = self._block(entry.head, entry.path, frame)
        config = self._block_config(block, config_raw, config_path, frame)
        return self._lower_block(block, config, entry.path, frame, get_inputs(), full)

    def _block(self, name: str, path: YamlPath, frame: Frame) -> BlockType:
        try:
            return self.registry.block(name)
        except PluginError as error:
            self._error(
                error.message,
                path,
                frame,
                hint="uninstall or disable one of them (DLC_DISABLE_PLUGINS)",
            )
            raise Broken from None

    def _lower_block(
        self,
        block: BlockType,
        config: BaseModel,
        entry_path: YamlPath,
        frame: Frame,
        inputs: list[Value],
        full: str,
    ) -> LayerResult:
        location = self._locate(entry_path, frame)
        self._check_arity(block.name, block.inputs, len(inputs), entry_path, frame)
        ctx = BlockContext(self, frame, block, full, location)
        result = self._call_lower(block, ctx, config, inputs)
        layer = self._as_layer_result(result, block, ctx)
        producer = self.graph.producer(layer.value)
        # Name the node that makes the layer's output after the layer (`%fc1`, not `%fc1/linear`).
        created_here = producer.name in ctx.created and producer.op != "parameter"
        if created_here and producer.name != full and full not in self.graph:
            renamed = self.graph.rename_node(producer, full)
            mapping = {v.name: w for v, w in zip(producer.outputs, renamed.outputs, strict=True)}
            layer = LayerResult({p: mapping.get(v.name, v) for p, v in layer.ports.items()}, layer.default)
        return self._record(full, block.name, "block", location, layer, frame)

    def _record(
        self, name: str, block: str, kind: str, location: Location, result: LayerResult, frame: Frame
    ) -> LayerResult:
        """Remember a lowered layer for summaries; returns its result."""
        self.layers.append(LayerInfo(name, block, kind, location, dict(result.ports), frame.depth))
        return result

    def _call_lower(self, block: BlockType, ctx: BlockContext, config: BaseModel, inputs: list[Value]) -> Any:
        try:
            return block.lower(ctx, config, inputs)
        except DlcError as error:
            self.errors.add(error)
            raise Broken from None
        except InferenceError as error:
            self.errors.add(ctx.error(str(error)))
            raise Broken from None
        except Exception as error:
            log.debug("block %s failed", block.name, exc_info=True)
            self.errors.add(
                InternalPluginError(
                    f"block '{block.name}' (plugin '{block.plugin}') failed on layer '{ctx.name}': "
                    f"{type(error).__name__}: {error}",
                    location=ctx.location,
                    notes=["this is a bug in the plugin; set DLC_DEBUG=1 for the traceback"],
                )
            )
            raise Broken from error

    def _as_layer_result(self, result: Any, block: BlockType, ctx: BlockContext) -> LayerResult:
        if isinstance(result, Value):
            return LayerResult({block.outputs[0]: result}, block.outputs[0])
        if isinstance(result, Mapping):
            ports = dict(result)
            return LayerResult(ports, block.outputs[0] if block.outputs[0] in ports else next(iter(ports)))
        values = list(result)
        ports = dict(zip(block.outputs, values, strict=False))
        return LayerResult(ports, block.outputs[0])

    def _block_config(self, block: BlockType, raw: Any, path: YamlPath, frame: Frame) -> BaseModel:
        expanded = self._expand_all(raw, path, frame)
        shorthand = False
        if expanded is None:
            data: Any = {}
        elif isinstance(expanded, dict):
            data = expanded
        elif block.shorthand is not None:
            data = {block.shorthand: expanded}
            shorthand = True
        else:
            fields = list(block.config.model_fields)
            hint = f"write `{block.name}: {{{fields[0]}: ...}}`" if fields else f"write `- {block.name}`"
            self._error(
                f"block '{block.name}' takes a mapping of options, not {expanded!r}",
                path,
                frame,
                hint=hint,
            )
            raise Broken
        try:
            return block.config.model_validate(data)
        except ValidationError as error:
            source_data = data if not shorthand else {block.shorthand: raw}
            diagnostics = diagnostics_from_validation(
                error, source_data, frame.source, path, block.config, f"block '{block.name}'"
            )
            if shorthand:  # the value is written directly, so point at it, not at a key
                diagnostics = [
                    Diagnostic(d.message, frame.source.locate(path), d.hint, d.notes, d.source_line)
                    for d in diagnostics
                ]
            self.errors.add(SpecError(diagnostics=[self._with_notes(d, frame) for d in diagnostics]))
            raise Broken from None

    def _check_arity(
        self, name: str, arity: tuple[int, int | None], count: int, path: YamlPath, frame: Frame
    ) -> None:
        low, high = arity
        if count < low or (high is not None and count > high):
            if high is None:
                expected = f"at least {low}"
            elif low == high:
                expected = str(low)
            else:
                expected = f"{low} to {high}"
            hint = "list the inputs with `in: [a, b]`" if low > 1 else None
            self._error(f"block '{name}' takes {expected} input(s), got {count}", path, frame, hint=hint)
            raise Broken

    def lower_nested_block(
        self,
        ctx: BlockContext,
        block_name: str,
        config: dict[str, Any],
        inputs: list[Value],
        name: str,
    ) -> Value:
        """A block lowered from inside another block's lowering (composite blocks)."""
        block = self.registry.block(block_name)
        parsed = block.config.model_validate(config)
        child = BlockContext(self, ctx.frame, block, f"{ctx.scope}.{name}", ctx.location)
        result = self._as_layer_result(block.lower(child, parsed, inputs), block, child)
        ctx.created.extend(child.created)
        return result.value

    def _expand(self, value: Any, path: YamlPath, frame: Frame) -> Any:
        if not isinstance(value, str) or "${" not in value:
            return value
        try:
            return evaluate_text(value, frame.env)
        except ExpressionError as error:
            self._error(error.message, path, frame, hint=error.hint)
            raise Broken from None

    def _expand_all(self, value: Any, path: YamlPath, frame: Frame) -> Any:
        """Expand expressions in a nested config, reporting each bad one at its path."""
        failed = False

        def walk(item: Any, item_path: YamlPath) -> Any:
            nonlocal failed
            if isinstance(item, dict):
                return {k: walk(v, (*item_path, k)) for k, v in item.items()}
            if isinstance(item, list):
                return [walk(v, (*item_path, i)) for i, v in enumerate(item)]
            try:
                return self._expand(item, item_path, frame)
            except Broken:
                failed = True
                return None

        result = walk(value, path)
        if failed:
            raise Broken
        return result

    def _locate(self, path: YamlPath, frame: Frame) -> Location:
        return frame.source.locate(path)

    def _with_notes(self, diagnostic: Diagnostic, frame: Frame) -> Diagnostic:
        if not frame.notes:
            return diagnostic
        return Diagnostic(
            diagnostic.message,
            diagnostic.location,
            diagnostic.hint,
            (*diagnostic.notes, *frame.notes),
            diagnostic.source_line,
        )

    def located_error(
        self,
        message: str,
        frame: Frame,
        location: Location,
        hint: str | None,
        notes: Sequence[str],
        error_type: type[SpecError],
    ) -> SpecError:
        diagnostic = Diagnostic(
            message, location, hint, (*notes, *frame.notes), frame.source.source_line(location)
        )
        return error_type(diagnostics=[diagnostic])

    def _error(
        self,
        message: str,
        path: YamlPath,
        frame: Frame,
        *,
        key: bool = False,
        hint: str | None = None,
        notes: Sequence[str] = (),
        error_type: type[SpecError] = SpecError,
    ) -> None:
        diagnostic = frame.source.diagnostic(message, path, key=key, hint=hint, notes=(*notes, *frame.notes))
        self.errors.add(error_type(diagnostics=[diagnostic]))


class InternalPluginError(PluginError):
    """A block's lowering raised something other than a dlc error: a bug, not bad input."""
