"""Lower a validated spec to an IR graph.

Layers are sequential by default: a layer without `in` eats the output of the layer
written before it. `id` + `in` wire DAGs (references may point forward; cycles are
errors). Structural layers: `repeat` (stable names ``stage.0``, ``stage.1``, with a loop
variable), `residual` (body + shortcut, summed), `scan` (a loop carrying state; see
`dlc.spec.scan`) and template calls. Every block config is
expanded (``${...}``) and validated against its block's Pydantic model here, so that all
errors of a spec are reported together, each with file:line:col and YAML path.

Naming: a layer is named by its `id`, else ``<block>_<k>`` counting that block within its
scope. Templates, repeats and residuals open a scope (``stage.0.conv2d_1``). A repeat
whose body is one layer without `id` names each iteration's layer ``stage.<i>`` directly
(as torch's `nn.Sequential` does)."""

from __future__ import annotations

import contextlib
import dataclasses
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
from dlc.ir.symbolic import Dim, dim_symbols
from dlc.ir.types import TensorType, parse_dim
from dlc.limits import MAX_DIM, MAX_NESTING, Limits, ResourceLimitError, format_count
from dlc.registry import Registry
from dlc.spec.blocks import BlockType
from dlc.spec.budget import check_parameter_budget, oversized_options
from dlc.spec.context import BlockContext
from dlc.spec.direction import FORWARD, INVERSE, InverseLowering, invertible
from dlc.spec.entries import EntryReading
from dlc.spec.expressions import ExpressionError, evaluate_text
from dlc.spec.loader import Spec
from dlc.spec.model import range_problem
from dlc.spec.parameterization import apply_ntk_parameterization
from dlc.spec.scan import ScanLowering
from dlc.spec.scope import Broken, Entry, Frame, LayerInfo, LayerResult
from dlc.spec.sharing import SharedParameters, Sharing
from dlc.spec.structures import StructureLowering
from dlc.spec.tensor_info import input_names, mentions_input
from dlc.spec.validation import diagnostics_from_validation
from dlc.spec.yaml_source import YamlPath

log = logging.getLogger(__name__)

__all__ = ["LayerInfo", "LayerResult", "LoweredSpec", "lower_spec"]


@dataclass
class LoweredSpec:
    graph: Graph
    layers: list[LayerInfo]


def lower_spec(
    spec: Spec, registry: Registry, limits: Limits | None = None, direction: str = FORWARD
) -> LoweredSpec:
    """Lower `spec` to an IR graph; raise one `SpecError` listing every problem found, or a
    `ResourceLimitError` as soon as the model outgrows `limits`. With `direction`
    ``inverse``, the graph is the spec's inverse map (`dlc.spec.direction`)."""
    return Lowering(spec, registry, limits or Limits(), direction).run()


class Lowering(EntryReading, StructureLowering, SharedParameters, ScanLowering, InverseLowering):
    """Lowers one spec; collects every error on the way."""

    def __init__(self, spec: Spec, registry: Registry, limits: Limits, direction: str = FORWARD) -> None:
        self.spec = spec
        self.direction = direction
        self.registry = registry
        self.limits = limits
        self.graph = Graph(spec.name)
        self.builder = GraphBuilder(self.graph, registry, node_limit=limits.max_nodes)
        self.errors = ErrorCollector()
        self.layers: list[LayerInfo] = []
        self._plugin_templates = registry.template_lookup()  # loads only the plugins used
        self._last_layer_name: str | None = None  # the last top-level layer's explicit id
        self._inner_names: dict[str, str] = {}  # ids inside repeat bodies -> the repeat's name
        self._sharing: list[Sharing] = []  # active `share:` layers, innermost last

    def run(self) -> LoweredSpec:
        spec = self.spec
        root = Frame(scope="", names={}, parent=None, env=dict(spec.params), source=spec.source)
        self._check_template_names()
        shapes = {name: self._input_shape(name, decl.shape, root) for name, decl in spec.model.inputs.items()}
        self.errors.raise_if_any()  # layers on an input of unknown shape would only add noise
        dims = {symbol for shape in shapes.values() for dim in shape for symbol in dim_symbols(dim)}
        for name, decl in spec.model.inputs.items():
            value_range = self._input_range(name, decl.range, root, dims)  # its errors come with the layers'
            node = self.builder.add_input(name, TensorType(decl.dtype, shapes[name]), value_range)
            root.names[name] = LayerResult.single(node.output)
            root.taken.add(name)
        inputs = list(spec.model.inputs)
        first = root.names[inputs[0]] if len(inputs) == 1 else None
        if self.direction == INVERSE:
            try:
                last = self.lower_inverse(root, root.names[inputs[0]])
            except Broken:
                last = None
        else:
            last = self.lower_sequence(spec.raw["layers"], ("layers",), root, first, several_inputs=inputs)
        self._set_outputs(root, last)
        self.errors.raise_if_any()
        if self.direction == INVERSE:
            self.name_inverse_ends(last)
        if spec.model.parameterization == "ntk":
            apply_ntk_parameterization(self.graph, self.builder)
        check_parameter_budget(self.graph, self.layers, self.limits.max_params, spec.source)
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

    def _input_range(
        self, name: str, bounds: Sequence[Any] | None, frame: Frame, dims: set[str]
    ) -> tuple[float | str, float | str] | None:
        """An input's `range: [low, high]`; each bound a number, an expression (`${vocab}`)
        or the name of a symbolic dim of the inputs (`V`: node indices of a graph)."""
        if bounds is None:
            return None
        values: list[float] = []
        for index, bound in enumerate(bounds):
            path = ("inputs", name, "range", index)
            if isinstance(bound, str) and bound in dims:
                values.append(bound)  # type: ignore[arg-type]  # resolved when inputs are drawn
                continue
            try:
                value = self._expand(bound, path, frame)
            except Broken:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                hint = f"or the name of a symbolic dim ({', '.join(sorted(dims))})" if dims else None
                self._error(f"`range` bounds are numbers, got {value!r}", path, frame, hint=hint)
                return None
            values.append(int(value) if float(value).is_integer() and abs(value) < 2**63 else float(value))
        if any(isinstance(v, str) for v in values):
            return values[0], values[1]
        problem = range_problem(values[0], values[1], self.spec.model.inputs[name].dtype)
        if problem:
            self._error(problem, ("inputs", name, "range"), frame)
            return None
        return values[0], values[1]

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
        for index, raw in enumerate(entries):
            if parsed[index] is None:
                self._check_unread_references(raw, (*path, index), frame)
        last = len(entries) - 1
        return results.get(last)

    def _check_unread_references(self, raw: Any, path: YamlPath, frame: Frame) -> None:
        """An entry whose header is broken (an unknown block) still has its `in:` names
        checked, so that every mistake of a spec is reported at once."""
        if not isinstance(raw, dict) or "in" not in raw:
            return
        with contextlib.suppress(Broken):
            for name, port, ref_path in self._read_refs(raw, path, frame) or []:
                if frame.lookup(name) is None and name not in self._defined_anywhere(frame):
                    with contextlib.suppress(Broken):
                        self._resolve_ref(name, port, ref_path, frame)

    def _lower_entry(
        self, entry: Entry, frame: Frame, name: str, get_inputs: Callable[[], list[Value]]
    ) -> LayerResult:
        """Validate the entry's options, then resolve its inputs, then lower it. Options are
        checked first so that a layer downstream of a broken one still reports its own errors."""
        full = frame.qualify(name)
        raw = entry.raw
        if frame.depth >= MAX_NESTING:
            message = (
                f"layers nest more than {MAX_NESTING} deep here "
                "(residuals, repeats and templates inside one another)"
            )
            hint = "chain the layers one after another instead of nesting them"
            diagnostic = frame.source.diagnostic(message, entry.path, hint=hint, notes=frame.notes)
            raise ResourceLimitError(diagnostics=[diagnostic])
        if entry.skip:
            return self._skipped(entry, frame, name, get_inputs)
        if entry.condition_reads_input:  # `if: "${input.shape[1] != out}"`
            inputs = get_inputs()
            decided = dataclasses.replace(frame, env=input_names(inputs, frame.env))
            if not self._read_condition(raw, entry.path, decided):
                return self._skipped(entry, frame, name, lambda: inputs)
            get_inputs = lambda: inputs  # noqa: E731
        if isinstance(raw, dict) and mentions_input(
            {k: v for k, v in raw.items() if k not in ("in", "id", "if")}
        ):
            inputs = get_inputs()  # the options read the input's shape: resolve it first
            frame = dataclasses.replace(frame, env=input_names(inputs, frame.env))
            get_inputs = lambda: inputs  # noqa: E731
        if isinstance(raw, dict) and "share" in raw:
            return self._lower_shared(
                entry, frame, full, lambda: self._lower_kind(entry, frame, full, get_inputs)
            )
        return self._lower_kind(entry, frame, full, get_inputs)

    def _lower_kind(
        self, entry: Entry, frame: Frame, full: str, get_inputs: Callable[[], list[Value]]
    ) -> LayerResult:
        raw = entry.raw
        if entry.kind == "repeat":
            return self._lower_repeat(entry, frame, get_inputs, full)
        if entry.kind == "residual":
            return self._lower_residual_layer(entry, frame, get_inputs(), full)
        if entry.kind == "scan":
            return self._lower_scan(entry, frame, get_inputs, full)
        config_raw = raw[entry.head] if isinstance(raw, dict) else None
        config_path = (*entry.path, entry.head) if isinstance(raw, dict) else entry.path
        try:
            if entry.kind == "template":
                template = self._template(entry.head, entry.path, frame)
                args = self._template_args(template, config_raw, config_path, frame)
            else:
                block = self._block(entry.head, entry.path, frame)
                config = self._block_config(block, config_raw, config_path, frame)
        except Broken:
            self._report_reference_errors(get_inputs)
            raise
        if entry.kind == "template":
            return self._instantiate(template, args, entry.path, frame, get_inputs(), full)
        return self._lower_block(block, config, entry.path, frame, get_inputs(), full)

    @staticmethod
    def _report_reference_errors(get_inputs: Callable[[], list[Value]]) -> None:
        """Resolve a broken layer's inputs anyway, so that a bad `in:` reference is reported
        together with the layer's other mistakes."""
        with contextlib.suppress(Broken):
            get_inputs()

    def _skipped(
        self, entry: Entry, frame: Frame, name: str, get_inputs: Callable[[], list[Value]]
    ) -> LayerResult:
        """A layer whose `if:` is false: no nodes, no parameters, no summary row; its name
        stands for its first input."""
        inputs = get_inputs() if entry.takes_input else []
        if not inputs:
            frame.skipped.add(name)
            raise Broken
        return LayerResult.single(inputs[0])

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
        ctx.path = entry_path
        result = self._call_lower(block, ctx, config, inputs)
        layer = self._as_layer_result(result, block, ctx)
        producer = self.graph.producer(layer.value)
        # Name the node that makes the layer's output after the layer (`%fc1`, not `%fc1/linear`).
        created_here = producer.name in ctx.created and producer.op not in ("parameter", "input")
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
        except ResourceLimitError:
            raise
        except MemoryError:
            message = f"{block.name} layer '{ctx.name}' asks for more memory than this machine has"
            hint = "make its sizes smaller (its options, or the dims of its input)"
            raise self.located_error(message, ctx.frame, ctx.location, hint, (), ResourceLimitError) from None
        except Broken:
            raise  # a template lowered inside the block reported its own errors
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
            config = block.config.model_validate(data)
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
        problems = oversized_options(config)
        for field_path, value in problems:
            where = path if shorthand else (*path, *field_path)
            self._error(
                f"block '{block.name}': {'.'.join(map(str, field_path))} = {format_count(value)} is "
                f"larger than the limit {MAX_DIM:,} (2^31 - 1) for sizes and counts",
                where,
                frame,
            )
        if problems:
            raise Broken
        return config

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
        inverse: bool = False,
    ) -> LayerResult:
        """A block, or a template, lowered from inside another block's lowering (composite
        blocks, `time_distributed`); with `inverse`, the block's inverse (a flow's steps)."""
        if not self.registry.block_providers(block_name) and (
            block_name in self.spec.templates or block_name in self._plugin_templates
        ):
            return LayerResult.single(self._nested_template(ctx, block_name, config, inputs, name))
        block = self.registry.block(block_name)
        if inverse:
            block = invertible(block)
        parsed = block.config.model_validate(config)
        child = BlockContext(self, ctx.frame, block, ctx.qualify(name), ctx.location)
        child.path = ctx.path
        result = self._as_layer_result(block.lower(child, parsed, inputs), block, child)
        ctx.created.extend(child.created)
        return result

    def _nested_template(
        self, ctx: BlockContext, name: str, config: dict[str, Any], inputs: list[Value], scope: str
    ) -> Value:
        """A template called by a block; its errors point at the calling layer's options."""
        template = self._template(name, ctx.path, ctx.frame)
        options_path = (*ctx.path, ctx.block.name, "options")
        args = self._template_args(template, config, options_path, ctx.frame)
        rows = len(self.layers)
        full = ctx.qualify(scope)
        result = self._instantiate(template, args, ctx.path, ctx.frame, inputs, full)
        del self.layers[rows:]  # summarized as part of the calling layer, as nested blocks are
        ctx.created.extend(n.name for n in self.graph if n.layer.startswith(f"{full}."))
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
