"""The block reference (`dlc blocks`, `dlc blocks NAME`, `--json`), generated from the registry.

Everything comes from what plugins register: a block's Pydantic config model gives each
option's type, default, bounds and `description=`; the `BlockType` gives its ports and
docstring; a template's YAML gives its params and `doc`. Plugin blocks are documented
exactly like built-in ones, and the text and JSON forms carry the same facts.
"""

from __future__ import annotations

import enum
import textwrap
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from dlc.errors import DlcError
from dlc.registry import Registry
from dlc.spec.blocks import BlockType
from dlc.spec.suggest import did_you_mean

# Sample values for required options in generated examples, by option name, then by type.
EXAMPLE_VALUES: dict[str, Any] = {
    "out": 16,
    "kernel": 3,
    "dim": 64,
    "vocab": 1000,
    "heads": 4,
    "hidden": 64,
    "size": 7,
    "shape": [-1, 16],
    "axis": 1,
    "axes": [1],
    "factor": 2.0,
    "exponent": 2.0,
    "dtype": "float32",
    "end": 4,
    "perm": [0, 2, 1],
    "sizes": [8, 8],
    "s": "s_net",
    "t": "t_net",
    "order": [1, 0],
    "steps": ["actnorm", "reverse"],
}
TYPE_EXAMPLES: dict[str, Any] = {"int": 8, "float": 0.5, "bool": True, "str": "x", "list": [1], "any": 1}
CONSTRAINT_SYMBOLS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
WIDTH = 96  # descriptions wrap here: whole words, nothing cut


@dataclass
class OptionDoc:
    name: str
    type: str
    required: bool
    default: Any  # JSON-ready; None also when required
    constraints: list[str] = field(default_factory=list)
    description: str = ""


@dataclass
class BlockDoc:
    name: str
    kind: str  # block | template
    plugin: str
    description: str
    inputs: str  # arity ("1", "2", "1+", "1-4") or a template's input names
    outputs: list[str]
    options: list[OptionDoc]
    shorthand: str | None
    example: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = {o["name"]: {k: v for k, v in o.items() if k != "name"} for o in data["options"]}
        return data


def block_docs(registry: Registry) -> list[BlockDoc]:
    """Every block, then every template, by name."""
    docs = [_block_doc(block) for block in registry.blocks()]
    docs += [_template_doc(name, templates[0]) for name, templates in sorted(registry.templates().items())]
    return docs


def block_doc(registry: Registry, name: str) -> BlockDoc:
    for doc in block_docs(registry):
        if doc.name == name:
            return doc
    names = [*registry.block_names, *registry.templates()]
    raise DlcError(f"unknown block '{name}'", hint=did_you_mean(name, names) or "`dlc blocks` lists them all")


# -- blocks ----------------------------------------------------------------------------------


def _block_doc(block: BlockType) -> BlockDoc:
    options = [_option_doc(name, info) for name, info in block.config.model_fields.items()]
    low, high = block.inputs
    arity = f"{low}+" if high is None else str(low) if low == high else f"{low}-{high}"
    return BlockDoc(
        name=block.name,
        kind="block",
        plugin=block.plugin,
        description=(block.doc or "").strip(),
        inputs=arity,
        outputs=list(block.outputs),
        options=options,
        shorthand=block.shorthand,
        example=_example(block, low),
    )


def _option_doc(name: str, info: FieldInfo) -> OptionDoc:
    required = info.is_required()
    if required:
        default = None
    elif info.default_factory is not None:
        default = to_jsonable_python(info.default_factory())  # type: ignore[call-arg]
    else:
        default = None if info.default is PydanticUndefined else to_jsonable_python(info.default)
    return OptionDoc(
        name=name,
        type=type_name(info.annotation),
        required=required,
        default=default,
        constraints=_constraints(info),
        description=(info.description or "").strip(),
    )


def type_name(annotation: Any) -> str:
    """``int | list[int]``, ``'zeros' | 'reflect'``, ``str | null``: as a spec author reads it."""
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(arguments[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in arguments)
    if origin is typing.Literal:
        return " | ".join(repr(a) if isinstance(a, str) else str(a) for a in arguments)
    if origin in (list, tuple, dict):
        inner = ", ".join(type_name(a) for a in arguments if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]" if inner else origin.__name__
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(info: FieldInfo) -> list[str]:
    found = []
    for item in info.metadata:
        for attribute, symbol in CONSTRAINT_SYMBOLS:
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{symbol} {value}")
        # pydantic's metadata records (annotated_types.MinLen, MaxLen) are duck-typed here
        if getattr(item, "min_length", None) is not None:
            found.append(f"at least {_items(item.min_length)}")
        if getattr(item, "max_length", None) is not None:
            found.append(f"at most {_items(item.max_length)}")
    # A bound checked by a validator and declared for the JSON Schema only (cnn's per-dim
    # `kernel`, `stride`, `dilation`: json_schema_extra={"minimum": 1, ...}).
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "minimum" in extra and not any(text.startswith(">=") for text in found):
        found.append(f">= {extra['minimum']}")
    return found


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _example(block: BlockType, inputs: int) -> str:
    """A layer using the block: required options with sample values, `in:` where it takes
    several inputs."""
    values = {
        name: EXAMPLE_VALUES.get(name, _sample_of_type(info.annotation))
        for name, info in block.config.model_fields.items()
        if info.is_required()
    }
    fields = block.config.model_fields
    for name in list(values):  # a shared sample (`shape: [-1, 16]`) may not suit this block
        if not _valid_options(block, values):
            candidate = {**values, name: _sample_of_type(fields[name].annotation)}
            values = candidate if _valid_options(block, candidate) else values
    # A block may need one of several optional options (`clip` takes min, max or both):
    # add optional ones in order until the example is valid.
    for name, info in fields.items():
        if _valid_options(block, values):
            break
        values.setdefault(name, EXAMPLE_VALUES.get(name, _sample_of_type(info.annotation)))
    return _layer_yaml(block.name, values, [f"input_{i}" for i in range(inputs)] if inputs > 1 else None)


def _valid_options(block: BlockType, values: dict[str, Any]) -> bool:
    try:
        block.config.model_validate(values)
    except ValueError:  # pydantic's ValidationError
        return False
    return True


def _sample_of_type(annotation: Any) -> Any:
    """A plausible value of a type: the first alternative of a union, one item of a list."""
    origin = typing.get_origin(annotation)
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _sample_of_type(arguments[0])
    if origin in (typing.Union, types.UnionType):
        return _sample_of_type(arguments[0])
    if origin is typing.Literal:
        return arguments[0]
    if origin is list:
        return [_sample_of_type(arguments[0])] if arguments else [1]
    if origin is tuple:
        items = arguments[:1] if len(arguments) == 2 and arguments[1] is Ellipsis else arguments
        return [_sample_of_type(a) for a in items]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation)).value
    return TYPE_EXAMPLES.get(getattr(annotation, "__name__", ""), 1)


def _layer_yaml(name: str, values: dict[str, Any], inputs: list[str] | None) -> str:
    """`- relu`, `- conv2d: {out: 16, kernel: 3}`, and `in: [...]` on the next line."""
    line = f"- {name}"
    if values:
        line += ": " + _flow(values)
    elif inputs:
        line += ":"  # an empty mapping, so that `in:` belongs to this layer
    return line + (f"\n  in: {_flow(inputs)}" if inputs else "")


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000).strip()


# -- templates ------------------------------------------------------------------------------


def _template_doc(name: str, template: Any) -> BlockDoc:
    options = []
    for param_name, param in template.params.items():
        has_default = "default" in param.model_fields_set
        options.append(
            OptionDoc(
                name=param_name,
                type=param.type,
                required=not has_default,
                default=to_jsonable_python(param.default) if has_default else None,
                description=(param.doc or "").strip(),
            )
        )
    definition = template.definition
    outputs = definition.outputs
    ports = list(outputs) if isinstance(outputs, (list, dict)) else ["out"]
    values = {o.name: EXAMPLE_VALUES.get(o.name, TYPE_EXAMPLES.get(o.type, 1)) for o in options if o.required}
    inputs = list(definition.inputs) if len(definition.inputs) > 1 else None
    return BlockDoc(
        name=name,
        kind="template",
        plugin=template.plugin or "",
        description=(definition.doc or "").strip(),
        inputs=", ".join(definition.inputs),
        outputs=ports,
        options=options,
        shorthand=None,
        example=_layer_yaml(name, values, inputs),
    )


# -- text ------------------------------------------------------------------------------------


def render_text(doc: BlockDoc) -> list[str]:
    """The reference page of one block, as plain lines."""
    kind = "template" if doc.kind == "template" else "block"
    lines = [f"{doc.name} ({kind}, plugin {doc.plugin or 'spec'})"]
    if doc.description:
        lines += ["", *textwrap.wrap(doc.description, WIDTH, initial_indent="  ", subsequent_indent="  ")]
    lines += ["", "inputs:  " + doc.inputs, "outputs: " + ", ".join(doc.outputs)]
    if len(doc.outputs) > 1:
        lines.append(f"  (the first is the default; the others as `{doc.name}_0.{doc.outputs[1]}`)")
    if doc.shorthand:
        lines.append(f"shorthand: `- {doc.name}: VALUE` sets `{doc.shorthand}`")
    lines += ["", "options:" if doc.options else "options: none"]
    for option in doc.options:
        default = "required" if option.required else f"default {yaml_value(option.default)}"
        bounds = f", {', '.join(option.constraints)}" if option.constraints else ""
        lines.append(f"  {option.name}: {option.type} ({default}{bounds})")
        if option.description:
            indent = " " * 6
            lines += textwrap.wrap(option.description, WIDTH, initial_indent=indent, subsequent_indent=indent)
    lines += ["", "example:", *(f"  {line}" for line in doc.example.splitlines())]
    return lines


def yaml_value(value: Any) -> str:
    """A default as a spec author writes it (`true`, `null`, `[1, 1]`)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
