"""`dlc schema`: the JSON Schema of the spec language, plugin blocks included.

Editors (yaml-language-server) use it to complete and check specs, so it is as strict as
the language allows without evaluating anything: every block and plugin template has its
own alternative whose options are closed (a misspelled option, or an `in:` written inside
a block's options, is an error), numeric options carry their bounds, and structural
layers (`repeat`, `residual`) take only their own keys. Every option may also be written as
a ``${...}`` expression, so each option's schema admits such strings.

A spec's own templates (`blocks:`) are the one thing a schema cannot know by name. A layer
naming something that is neither a block nor a plugin template is therefore accepted as a
call of a spec template, but only in a spec that has a `blocks:` section; in a spec without
one, every layer must name a known block (`KnownLayer`).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from dlc.registry import Registry
from dlc.spec.model import (
    COMMON_LAYER_KEYS,
    IDENTIFIER,
    LAYER_NAME,
    REPEAT_KEYS,
    RESIDUAL_KEYS,
    SCAN_KEYS,
    ResidualLayer,
    ResidualOptions,
    ScanOptions,
    SpecModel,
    TemplateDef,
    TemplateParam,
)

EXPRESSION = {"type": "string", "pattern": r"\$\{.*\}", "description": "A ${...} expression."}
# A layer list whose items may call the spec's own templates, and one whose items may not.
ANY_LAYERS = "Layer"
KNOWN_LAYERS = "KnownLayer"
# JSON types of template parameters (`params: {planes: int}`).
TEMPLATE_PARAM_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "list": {"type": "array"},
    "any": {},
}


def _layer_list(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"#/$defs/{kind}"}, **extra}


def _or_expression(schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:  # anything goes already
        return schema
    return {
        "anyOf": [schema, EXPRESSION],
        **({"description": schema["description"]} if "description" in schema else {}),
    }


def _allow_expressions(schema: dict[str, Any]) -> dict[str, Any]:
    """Options, the items of list options (``sizes: ["${dim}", "${dim}"]``) and numbers
    nested in options may be expressions."""
    schema = copy.deepcopy(schema)
    for name, prop in list(schema.get("properties", {}).items()):
        schema["properties"][name] = _or_expression(_expression_items(prop))
    return schema


def _expression_items(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_expression_items(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    walked = {key: _expression_items(value) for key, value in schema.items()}
    if isinstance(walked.get("items"), dict) and walked["items"].get("type") != "string":
        walked["items"] = _or_expression(walked["items"])
    # Nested values too (`init: {constant: "${scale}"}`).
    if walked.get("type") in ("number", "integer", "boolean"):
        return _or_expression(walked)
    return walked


def _hoist_defs(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Move a model schema's own `$defs` into the shared ones."""
    defs.update(schema.pop("$defs", {}))
    return schema


def _common_properties() -> dict[str, Any]:
    return {
        "id": {
            "anyOf": [
                {"type": "string", "pattern": LAYER_NAME},
                {"type": "integer", "minimum": 0},
                EXPRESSION,
            ],
            "description": "The layer's name, for `in` references and parameter names; "
            "letters, digits and _ (all digits as torchvision's `features.0`).",
        },
        "in": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
            "description": "Input layer name(s), `name.port` for a named output; "
            "by default the previous layer.",
        },
        "share": {
            "type": ["string", "null"],
            "description": "Reuse every parameter of this earlier layer (same options and shapes).",
        },
        "if": {
            "anyOf": [{"type": "boolean"}, EXPRESSION],
            "description": "Lower the layer only when true; a skipped layer's name stands for its "
            "(first) input.",
        },
    }


def _layer_with_head(name: str, value: dict[str, Any], description: str) -> dict[str, Any]:
    """A mapping layer: `name: value` plus the common `id` and `in` keys, nothing else."""
    return {
        "type": "object",
        "description": description,
        "properties": {name: value, **_common_properties()},
        "required": [name],
        "additionalProperties": False,
    }


def _block_layer(block: Any, defs: dict[str, Any]) -> dict[str, Any]:
    config = _hoist_defs(
        _allow_expressions(block.config.model_json_schema(ref_template="#/$defs/{model}")), defs
    )
    value: dict[str, Any] = {"anyOf": [config, {"type": "null"}]}
    if block.shorthand:
        value["anyOf"].append(config["properties"][block.shorthand])
    return _layer_with_head(block.name, value, block.doc)


def _template_layer(template: Any) -> dict[str, Any]:
    """A plugin template call: its parameters, typed, and no others."""
    params: dict[str, TemplateParam] = template.params
    properties = {
        name: _or_expression({**TEMPLATE_PARAM_TYPES[p.type], **({"description": p.doc} if p.doc else {})})
        for name, p in params.items()
    }
    required = [
        name
        for name, p in params.items()
        if (p.required if p.required is not None else "default" not in p.model_fields_set)
    ]
    arguments: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        arguments["required"] = required
    value: dict[str, Any] = {"anyOf": [arguments]}
    if not required:
        value["anyOf"].append({"type": "null"})
    if template.shorthand:
        value["anyOf"].append(properties[template.shorthand])
    doc = (template.definition.doc or "").strip().splitlines()
    return _layer_with_head(template.name, value, doc[0] if doc else f"template {template.name}")


def _structural_layers(kind: str, residual: dict[str, Any], scan: dict[str, Any]) -> list[dict[str, Any]]:
    """`repeat`, `residual` and `scan` layers whose bodies hold `kind` layers."""
    repeat = {
        "type": "object",
        "description": "Repeat a body of layers; iterations are named <id>.0, <id>.1, ...",
        "properties": {
            "repeat": {"anyOf": [{"type": "integer", "minimum": 0}, EXPRESSION]},
            "as": {"type": "string", "pattern": IDENTIFIER},
            "start": {
                "anyOf": [{"type": "integer"}, EXPRESSION],
                "description": "The loop variable's first value and first iteration name (default 0).",
            },
            "name": {
                "type": "string",
                "description": "Each iteration's name, e.g. `denselayer${i}`; without `id`, "
                "iterations are named in the enclosing scope (torchvision's flat nn.Sequential).",
            },
            "flat": {
                "type": "boolean",
                "description": "Name the body's layers in the enclosing scope, by their own "
                "(computed) ids, as a loop appending modules to one nn.Sequential does.",
            },
            "input": {
                "type": "string",
                "pattern": IDENTIFIER,
                "description": "The name of each iteration's input inside the body.",
            },
            "body": _layer_list(kind, minItems=1),
            **_common_properties(),
        },
        "required": ["repeat", "body"],
        "additionalProperties": False,
    }
    long_form = copy.deepcopy(residual)
    long_form["properties"]["body"] = _layer_list(kind, minItems=1)
    long_form["properties"]["post"] = _layer_list(kind)
    _layer_lists_in_shortcut(long_form, kind)
    residual_layer = _layer_with_head(
        "residual", {"anyOf": [_layer_list(kind, minItems=1), long_form]}, "body(x) + shortcut(x)"
    )
    scan_options = copy.deepcopy(scan)
    scan_options["properties"]["body"] = _layer_list(kind, minItems=1)
    # A scan reads its inputs from `over` and `carry`, not `in`.
    scan_layer = _layer_with_head(
        "scan", scan_options, "A loop: the body runs once per step, carrying states."
    )
    scan_layer["properties"] = {k: v for k, v in scan_layer["properties"].items() if k in SCAN_KEYS}
    return [repeat, residual_layer, scan_layer]


def _layer_lists_in_shortcut(options: dict[str, Any], kind: str) -> None:
    """`shortcut` (a keyword or layers) and `projection` (layers) of residual options."""
    options["properties"]["shortcut"] = {
        "anyOf": [{"enum": ["auto", "identity"]}, _layer_list(kind, minItems=1)],
        "default": "auto",
    }
    options["properties"]["projection"] = {"anyOf": [_layer_list(kind, minItems=1), {"type": "null"}]}


def _spec_template_call(reserved: list[str]) -> dict[str, Any]:
    """A call of a template from the spec's `blocks:`: one key that names no block, plugin
    template or structural keyword (those have their own, closed alternatives), with
    arguments, a single value or nothing; `id` and `in` as for any layer."""
    # One template name besides the optional common keys: for each set of common keys
    # present, the layer has exactly one more key.
    one_head = []
    for count in range(len(COMMON_LAYER_KEYS) + 1):
        for present in itertools.combinations(COMMON_LAYER_KEYS, count):
            absent = [key for key in COMMON_LAYER_KEYS if key not in present]
            condition: dict[str, Any] = {"required": list(present)} if present else {}
            if absent:
                condition["not"] = {"anyOf": [{"required": [key]} for key in absent]}
            one_head.append(
                {"if": condition, "then": {"minProperties": count + 1, "maxProperties": count + 1}}
            )
    return {
        "type": "object",
        "description": "A call of a template defined under the spec's `blocks:`.",
        "properties": _common_properties(),
        "propertyNames": {
            "anyOf": [
                {"enum": list(COMMON_LAYER_KEYS)},
                {"pattern": IDENTIFIER, "not": {"enum": reserved}},
            ]
        },
        "allOf": one_head,
    }


def _training_schema(defs: dict[str, Any]) -> dict[str, Any]:
    """The `training:` section (`dlc train`), closed like the rest of the language."""
    from dlc.training.config import NAMED_SECTIONS, TrainingConfig
    from dlc.training.section import known_names

    schema = _hoist_defs(TrainingConfig.model_json_schema(ref_template="#/$defs/{model}"), defs)
    for key in NAMED_SECTIONS:  # the shorthand `optimizer: adam` for `{name: adam}`
        schema["properties"][key] = {"anyOf": [schema["properties"][key], {"enum": known_names(key)}]}
    return {**schema, "description": "How `dlc train` trains the model."}


def spec_schema(registry: Registry) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    known = sorted({*registry.block_names, *registry.templates()})
    structural = sorted({*REPEAT_KEYS, *RESIDUAL_KEYS, *SCAN_KEYS} - set(COMMON_LAYER_KEYS))
    named: list[dict[str, Any]] = [
        {"type": "string", "enum": known, "description": "A block or template with default options."}
    ]
    for block in registry.blocks():
        defs[f"block.{block.name}"] = _block_layer(block, defs)
        named.append({"$ref": f"#/$defs/block.{block.name}"})
    for name, templates in sorted(registry.templates().items()):
        if name not in registry.block_names:
            defs[f"template.{name}"] = _template_layer(templates[0])
            named.append({"$ref": f"#/$defs/template.{name}"})
    residual = _hoist_defs(ResidualLayer.model_json_schema(ref_template="#/$defs/{model}"), defs)
    scan = _hoist_defs(
        _allow_expressions(ScanOptions.model_json_schema(ref_template="#/$defs/{model}")), defs
    )
    spec_template_name = {
        "type": "string",
        "pattern": IDENTIFIER,
        "not": {"enum": [*known, *structural]},
        "description": "A template from the spec's `blocks:`, with default arguments.",
    }
    defs[KNOWN_LAYERS] = {"anyOf": [*named, *_structural_layers(KNOWN_LAYERS, residual, scan)]}
    defs[ANY_LAYERS] = {
        "anyOf": [
            *named,
            *_structural_layers(ANY_LAYERS, residual, scan),
            spec_template_name,
            _spec_template_call([*known, *structural]),
        ]
    }
    # The top level's own definitions first: the overrides below must win over them.
    schema = _hoist_defs(SpecModel.model_json_schema(ref_template="#/$defs/{model}"), defs)
    template = _hoist_defs(TemplateDef.model_json_schema(ref_template="#/$defs/{model}"), defs)
    template["properties"]["body"] = _layer_list(ANY_LAYERS, minItems=1)
    template["properties"]["post"] = _layer_list(ANY_LAYERS)
    defs["TemplateDef"] = template
    options = _hoist_defs(ResidualOptions.model_json_schema(ref_template="#/$defs/{model}"), defs)
    _layer_lists_in_shortcut(options, ANY_LAYERS)
    defs["ResidualOptions"] = options
    schema["properties"]["layers"] = _layer_list(ANY_LAYERS, minItems=1)
    schema["properties"]["training"] = _training_schema(defs)
    schema["properties"]["blocks"] = {
        "type": "object",
        "propertyNames": {"pattern": IDENTIFIER},
        "additionalProperties": {"$ref": "#/$defs/TemplateDef"},
    }
    # Without `blocks:`, a layer can only name a block or a plugin template.
    schema["if"] = {"not": {"required": ["blocks"]}}
    schema["then"] = {"properties": {"layers": _layer_list(KNOWN_LAYERS)}}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dlc spec (format version 1)"
    schema["$defs"] = dict(sorted(defs.items()))
    return schema
