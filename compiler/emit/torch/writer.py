"""`TorchWriter`: turns an IR graph into the source of a readable `nn.Module`.

Each op's torch lowering returns a Python expression. Where an op's parameters belong to
it alone and sit at its module path, it asks for a real submodule (``self.fc1 =
nn.Linear(784, 256)``); otherwise (tied weights, raw parameters) it uses the functional
form with ``self.<path>`` references. Either way the `state_dict` keys are the IR's
parameter names, which are also the ONNX initializer names.

The forward pass reads like hand-written code: sequential chains reuse one variable
(``x = self.fc1(x)``), branches get the layer's name, and each line carries its output
shape as a comment.
"""

from __future__ import annotations

import builtins
import keyword
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dlc.emit.torch.classes import fold_templates, init_lines
from dlc.emit.torch.literals import NONFINITE_NAMES, docstring_text, nonfinite_definitions
from dlc.errors import DlcError, EmitError
from dlc.ir.graph import Graph
from dlc.ir.init import Init
from dlc.ir.node import Node, Value
from dlc.ir.symbolic import Dim
from dlc.ir.types import format_shape
from dlc.lazy_imports import numpy as np
from dlc.registry import Registry


@dataclass(frozen=True)
class TorchExpr:
    """An expression for a multi-output op; `unpack` is a target pattern such as
    ``"{0}, ({1}, {2})"`` for ``y, (h, c) = self.lstm(x)``."""

    code: str
    unpack: str | None = None


@dataclass
class _Leaf:
    kind: str  # module | parameter | buffer | constant (a non-persistent buffer: not in the state_dict)
    code: str  # constructor expression (module) or tensor expression (parameter, buffer)
    values: dict[str, str] = field(default_factory=dict)  # state key -> IR value name


# Public attributes of torch.nn.Module (torch 2.13): a submodule or parameter of that name
# would shadow them. Names starting with "_" are nn.Module internals and refused as well.
# fmt: off
NN_MODULE_ATTRIBUTES = frozenset((
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children",
    "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu",
    "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad",
))
# fmt: on

# Names a generated variable must not take: Python's builtins (`slice`, `input`, `id`...)
# and the names model.py itself uses.
_RESERVED_NAMES = frozenset(dir(builtins)) | {"self", "torch", "nn", "F", "Path"} | NONFINITE_NAMES


def _identifier(text: str) -> str:
    # ASCII only: Python normalizes (NFKC) non-ASCII identifiers, so two names could merge.
    name = re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_") or "x"
    if name[0].isdigit():
        name = f"v{name}"
    if keyword.iskeyword(name) or name in _RESERVED_NAMES:
        name += "_"
    return name


def _group(node: Node, scope: str = "") -> str | None:
    """The scope a node's layer sits in, as a variable name: ``stage.1.fc`` -> ``stage_1``;
    None for a layer at the top level (of the loop body whose scope is `scope`)."""
    layer = node.layer.removeprefix(f"{scope}.") if scope else node.layer
    segments = layer.split(".") if layer else []
    if len(segments) < 2:
        return None
    group = [segments[0]]
    for segment in segments[1:-1]:
        if not segment.isdigit():
            break
        group.append(segment)
    return "_".join(group)


def _output_names(graph: Graph) -> dict[str, str]:
    """IR value name -> the spec's output name, for values the model returns."""
    names: dict[str, str] = {}
    for name, value in graph.outputs.items():
        names.setdefault(value.name, name)
    return names


def class_name(spec_name: str) -> str:
    parts = re.split(r"[^0-9A-Za-z]+", spec_name)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return name if name and name[0].isalpha() else f"Model{name}"


def attribute_access(path: str) -> str:
    """``stage.0.fc`` -> ``self.stage[0].fc``."""
    access = "self"
    for segment in path.split("."):
        access += f"[{segment}]" if segment.isdigit() else f".{segment}"
    return access


def _init_code(init: Init, shape: tuple[int, ...], dtype: str) -> str:
    dims = ", ".join(str(d) for d in shape) if shape else ""
    empty = (
        f"torch.empty({dims}{', ' if dims else ''}dtype={dtype})"
        if shape
        else f"torch.empty((), dtype={dtype})"
    )
    if init.transform is not None:
        return empty  # a function of a draw (or of another parameter's): from the weights file
    if init.kind == "constant":
        if init.first == 0.0:
            return f"torch.zeros({dims or '()'}, dtype={dtype})"
        if init.first == 1.0:
            return f"torch.ones({dims or '()'}, dtype={dtype})"
        return f"torch.full(({dims}{',' if len(shape) == 1 else ''}), {init.first!r}, dtype={dtype})"
    if init.kind == "uniform":
        return f"{empty}.uniform_({init.first!r}, {init.second!r})"
    if init.kind == "normal":
        return f"{empty}.normal_({init.first!r}, {init.second!r})"
    if init.kind == "truncated_normal":
        bound = 2 * init.second
        return f"nn.init.trunc_normal_({empty}, {init.first!r}, {init.second!r}, {-bound!r}, {bound!r})"
    return empty  # literal data: loaded from the weights file


def _constant_code(value: np.ndarray, dtype: str) -> str:
    """A constant's values written out, on the CPU even under `torch.device("meta")` (which
    `load_model` uses to skip random init): a constant is part of the model's code, not of
    its weights, so the weights file holds only what training changes."""
    # tolist() gives Python floats holding each float32 exactly; torch rounds them back unchanged.
    literal = repr(np.asarray(value).tolist())
    wrapped = textwrap.fill(literal, width=100, subsequent_indent=" " * 12, break_long_words=False)
    indent = " " * 12
    return f'torch.tensor(\n{indent}{wrapped},\n{indent}dtype={dtype},\n{indent}device="cpu",\n        )'


class TorchWriter:
    """Collects submodules, parameters and forward statements for one graph."""

    def __init__(self, graph: Graph, registry: Registry) -> None:
        self.graph = graph
        self.registry = registry
        self._leaves: dict[str, _Leaf] = {}
        self._claimed: set[str] = set()
        self._vars: dict[str, str] = {}
        self._var_values: dict[str, list[str]] = {}
        self._used_names: set[str] = set()
        self._helpers: dict[str, str] = {}  # emitted name -> source
        self._helper_names: dict[str, str] = {}  # requested name -> emitted name
        self._lines: list[str] = []
        self._spans: list[tuple[Node, int, int]] = []  # node -> its forward lines [start, end)
        self._last_use: dict[str, int] = {}
        self._returned = _output_names(graph)
        self._position = 0
        self.current: Node | None = None
        self._parent: TorchWriter | None = None  # set for a loop body's writer
        self._captures: dict[str, Value] = {}  # body input value name -> the outer value it reads
        self._scope = ""  # a loop body's layer scope: its variables are named within it

    # -- the API op lowerings use --------------------------------------------------------

    def var(self, value: Value | None) -> str:
        """A Python expression for an input value: a local, or a `self.` parameter reference."""
        if value is None:
            return "None"
        if value.name in self._vars:
            return self._vars[value.name]
        if value.name in self._captures and self._parent is not None:  # read lazily: a module may own it
            return self._parent.var(self._captures[value.name])
        producer = self.graph.producer(value)
        if producer.op == "parameter":
            return self._tensor_leaf(producer, producer.attrs.name)
        if producer.op == "constant":
            return self._tensor_leaf(producer, "constants." + _identifier(producer.name))
        raise EmitError(f"torch emission: value '{value.name}' used before it is defined")

    def module(self, node: Node, ctor: str, params: Mapping[str, Value | None] | None = None) -> str | None:
        """Declare ``self.<node.module> = <ctor>`` owning `params` (attribute -> value), if
        the op may own them; returns the access expression, or None (use functional form)."""
        path = node.module
        if not path:
            return None
        self._check_names(path, node)
        if not self._path_free(path):
            return None
        owned: dict[str, str] = {}
        for attribute, value in (params or {}).items():
            if value is None:
                continue
            parameter = self._sole_use_of_parameter(value, f"{path}.{attribute}")
            if parameter is None:
                return None
            owned[f"{path}.{attribute}"] = parameter.name
        self._leaves[path] = _Leaf("module", ctor, owned)
        self._claimed.update(owned.values())
        return attribute_access(path)

    def _sole_use_of_parameter(self, value: Value, key: str) -> Value | None:
        """The parameter `key` behind `value` if this is its only use, else None. In a loop
        body, a captured parameter is followed to the top graph (used there by the loop only)."""
        if len(self.graph.users(value)) != 1 or self.graph.is_output(value):
            return None
        if value.name in self._captures and self._parent is not None:
            return self._parent._sole_use_of_parameter(self._captures[value.name], key)
        producer = self.graph.producer(value)
        if producer.op != "parameter" or producer.attrs.name != key or value.name in self._claimed:
            return None
        return value

    def statement(self, line: str) -> None:
        """A forward-pass statement written before the current op's assignment (a loop
        header, an append): for ops whose torch form is more than one expression."""
        self._lines.append(line)

    def local(self, base: str) -> str:
        """A fresh local variable name, reserved."""
        base = _identifier(base)
        name, index = base, 1
        while name in self._used_names:
            name = f"{base}_{index}"
            index += 1
        self._used_names.add(name)
        return name

    def nested(
        self, graph: Graph, bindings: Mapping[str, str], captures: Mapping[str, Value], scope: str = ""
    ) -> TorchWriter:
        """A writer for a loop body inlined in this forward pass: it shares this writer's
        submodules, parameters, helpers and variable names. `bindings`: body input value
        name -> the variable it reads for state, slices and the step index; `captures`: body input
        value name -> the outer value it reads (parameters, encoder outputs), read lazily."""
        child = TorchWriter(graph, self.registry)
        child._leaves, child._claimed = self._leaves, self._claimed
        child._used_names, child._helpers, child._helper_names = (
            self._used_names,
            self._helpers,
            self._helper_names,
        )
        child._parent, child._captures, child._scope = self, dict(captures), scope
        child._returned = {}
        for value_name, expression in bindings.items():
            child._vars[value_name] = expression
            child._var_values.setdefault(expression, []).append(value_name)
        return child

    def body_lines(self) -> list[str]:
        """The statements of one step of a loop body (see `nested`). The body's inputs stay
        readable for the whole step: they are state, slices or outer values."""
        order = [n for n in self.graph.toposort() if n.op != "input"]
        self._compute_last_use(order)
        for node in self.graph.inputs():
            self._last_use[node.output.name] = len(order) + 1
        self._write(order)
        return self._lines

    def shape_args(self, source: Value, dims: Sequence[Dim], donors: Sequence[Value] = ()) -> str:
        """Comma-separated ints and ``x.size(i)`` calls for a target shape; symbolic dims are
        read from `source` or a `donor`, and at most one unknown dim becomes -1."""
        parts: list[str] = []
        unresolved = 0
        for dim in dims:
            donor = next((v for v in (source, *donors) if dim in v.type.shape), None)
            if isinstance(dim, int):
                parts.append(str(dim))
            elif donor is not None:
                parts.append(f"{self.var(donor)}.size({list(donor.type.shape).index(dim)})")
            else:
                parts.append("-1")
                unresolved += 1
        if unresolved > 1:
            raise EmitError(
                f"cannot express shape {format_shape(dims)} from {format_shape(source.type.shape)}"
            )
        return ", ".join(parts)

    def helper(self, name: str, source: str) -> str:
        """A module-level helper (function or class) emitted once before the model class;
        returns the name to call it by. The name is reserved so no variable shadows it; if
        a variable took it already, the helper is renamed (every whole word `name` in
        `source`)."""
        if name not in self._helper_names:
            unique = name
            while unique in self._used_names:
                unique += "_"
            self._helper_names[name] = unique
            self._used_names.add(unique)
            self._helpers[unique] = re.sub(rf"\b{re.escape(name)}\b", unique, source.strip("\n"))
        return self._helper_names[name]

    # -- generation ----------------------------------------------------------------------

    def generate(self, *, title: str, doc_lines: Sequence[str] = ()) -> str:
        order = [n for n in self.graph.toposort() if n.op not in ("input", "parameter", "constant")]
        self._compute_last_use(order)
        inputs = self.graph.inputs()
        for node in inputs:
            name = _identifier(node.attrs.name)
            self._bind(node.output, name)
        self._write(order)
        return self._render(title, doc_lines, inputs)

    def _write(self, order: list[Node]) -> None:
        for position, node in enumerate(order):
            self._position = position
            self.current = node
            start = len(self._lines)
            try:
                expression = self.registry.op(node.op).to_torch(self, node)
            except DlcError:
                raise
            except Exception as error:
                raise EmitError(
                    f"torch lowering of '{node.name}' ({node.op}) failed: {type(error).__name__}: {error}",
                    location=node.location,
                ) from error
            self._assign(node, expression)
            self._spans.append((node, start, len(self._lines)))
        self.current = None

    def state_values(self) -> dict[str, str]:
        """state_dict key -> IR value name, for every tensor the module holds."""
        keys: dict[str, str] = {}
        for path, leaf in self._leaves.items():
            if leaf.kind == "module":
                keys.update(leaf.values)
            elif leaf.kind != "constant":  # constants live in model.py, not in the weights
                keys[path] = leaf.values[path]
        return keys

    # -- internals -----------------------------------------------------------------------

    def _check_names(self, path: str, node: Node) -> None:
        for position, segment in enumerate(path.split(".")):
            if segment in NN_MODULE_ATTRIBUTES or segment.startswith("_") or keyword.iskeyword(segment):
                reason = "it would shadow torch.nn.Module's own"
            elif segment.isdigit() and position == 0:
                reason = "a number names an item of a list, and the model itself is not one"
            elif not segment.isdigit() and not segment.isidentifier():
                reason = "it is not a Python name (it starts with a digit)"
            else:
                continue
            raise EmitError(
                f"the name '{segment}' (in '{path}') cannot be a torch module attribute: {reason}",
                location=node.location,
                hint="rename that layer's `id` (ONNX output is unaffected)",
            )

    def _path_free(self, path: str) -> bool:
        for existing in self._leaves:
            if existing == path or existing.startswith(path + ".") or path.startswith(existing + "."):
                return False
        return True

    def _tensor_leaf(self, producer: Node, path: str) -> str:
        if path not in self._leaves:
            self._check_names(path, producer)
            if not self._path_free(path):
                raise EmitError(f"torch emission: '{path}' clashes with a submodule of the same name")
            value = producer.output
            dtype = value.type.dtype.torch_name
            shape = tuple(int(d) for d in value.type.shape)
            if producer.op == "parameter" and producer.attrs.trainable:
                code = f"nn.Parameter({_init_code(producer.attrs.init, shape, dtype)})"
                kind = "parameter"
            elif producer.op == "parameter":
                code, kind = _init_code(producer.attrs.init, shape, dtype), "buffer"
            else:
                code, kind = _constant_code(producer.attrs.value, dtype), "constant"
            self._leaves[path] = _Leaf(kind, code, {path: value.name})
        return attribute_access(path)

    def _compute_last_use(self, order: list[Node]) -> None:
        for position, node in enumerate(order):
            for value in node.input_values:
                self._last_use[value.name] = position
        for value in self.graph.outputs.values():
            self._last_use[value.name] = len(order)

    def _bind(self, value: Value, name: str) -> None:
        self._vars[value.name] = name
        self._var_values.setdefault(name, []).append(value.name)
        self._used_names.add(name)

    def _reusable(self, name: str, node: Node) -> bool:
        """A variable may be overwritten when nothing reads its values later and it stays
        within one scope (a repeat iteration, a template instance, or the top level)."""
        values = self._var_values.get(name, [])
        if any(self._last_use.get(v, -1) > self._position for v in values):
            return False
        producer = self.graph.producer(self.graph.value(values[-1])) if values else None
        return (
            producer is None
            or producer.op == "input"
            or _group(producer, self._scope) == _group(node, self._scope)
        )

    def _new_name(self, node: Node, suffix: str = "") -> str:
        base = _identifier((_group(node, self._scope) or re.split(r"[./]", node.name)[-1]) + suffix)
        name, index = base, 1
        while name in self._used_names:
            name = f"{base}_{index}"
            index += 1
        return name

    def _assign(self, node: Node, expression: str | TorchExpr) -> None:
        code = expression.code if isinstance(expression, TorchExpr) else expression
        unpack = expression.unpack if isinstance(expression, TorchExpr) else None
        shapes = ", ".join(format_shape(v.type.shape) for v in node.outputs)
        if len(node.outputs) == 1 and code in self._var_values:  # an alias, e.g. identity
            self._bind(node.output, code)
            return
        first = next((v for v in node.input_values if v.name in self._vars), None)
        returned = self._returned.get(node.outputs[0].name) if len(node.outputs) == 1 else None
        if returned is not None and returned.isidentifier() and returned not in self._used_names:
            names = [_identifier(returned)]
        elif len(node.outputs) == 1 and first is not None and self._reusable(self._vars[first.name], node):
            names = [self._vars[first.name]]
        elif len(node.outputs) == 1:
            names = [self._new_name(node)]
        else:
            names = [self._new_name(node, f"_{port.name.rsplit(':', 1)[-1]}") for port in node.outputs]
        for value, name in zip(node.outputs, names, strict=True):
            self._bind(value, name)
        target = unpack.format(*names) if unpack else ", ".join(names)
        self._lines.append(f"{target} = {code}  # {shapes}")

    def _render(self, title: str, doc_lines: Sequence[str], inputs: list[Node]) -> str:
        name = class_name(self.graph.name)
        args = ", ".join(f"{self._vars[n.output.name]}: torch.Tensor" for n in inputs)
        outputs = list(self.graph.outputs.values())
        returned = ", ".join(self.var(v) for v in outputs)
        return_type = (
            "torch.Tensor" if len(outputs) == 1 else f"tuple[{', '.join(['torch.Tensor'] * len(outputs))}]"
        )
        lines = [f'"""{docstring_text(title)}', ""]
        lines += [
            *(docstring_text(line) for line in doc_lines),
            '"""',
            "",
            "from __future__ import annotations",
            "",
            "from pathlib import Path",
            "",
        ]
        lines += [
            "import torch",
            "import torch.nn.functional as F  # noqa: N812",
            "from torch import nn",
            "",
            "",
        ]
        code = "\n".join([*self._lines, *init_lines(dict(self._leaves), {}), *self._helpers.values()])
        nonfinite = nonfinite_definitions(code)
        lines += [*nonfinite, "", ""] if nonfinite else []
        for helper in self._helpers.values():
            lines += [helper, "", ""]
        folded = fold_templates(self, {name, *self._helpers})
        leaves: Mapping[str, _Leaf] = self._leaves
        constructors: dict[str, str] = {}
        forward = self._lines
        if folded is not None:
            for source in folded.sources:
                lines += [source, "", ""]
            leaves = {p: leaf for p, leaf in self._leaves.items() if p not in folded.folded}
            constructors, forward = folded.constructors, folded.lines
        lines += [
            f"class {name}(nn.Module):",
            "    def __init__(self) -> None:",
            "        super().__init__()",
        ]
        lines += [f"        {line}" for line in init_lines(dict(leaves), constructors)]
        lines += ["", f"    def forward(self, {args}) -> {return_type}:"]
        lines += [
            f"        # {self._vars[n.output.name]}: {format_shape(n.output.type.shape)}" for n in inputs
        ]
        lines += [f"        {line}" for line in forward]
        lines += [f"        return {returned}", "", ""]
        lines += [
            f"def load_model(weights: str | Path | None = None) -> {name}:",
            '    """The model with its weights (default: weights.safetensors beside this file),',
            '    in eval mode."""',
            "    from safetensors.torch import load_file",
            "",
            '    default = Path(__file__).with_name("weights.safetensors")',
            "    path = Path(weights) if weights is not None else default",
            '    with torch.device("meta"):  # skip random init: every tensor comes from the file',
            f"        model = {name}()",
            "    model.load_state_dict(load_file(str(path)), assign=True)",
            "    return model.eval()",
            "",
        ]
        return "\n".join(lines)


def state_arrays(writer: TorchWriter, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors of the module's state_dict, by key, from IR value data."""
    return {key: arrays[value] for key, value in writer.state_values().items()}
