"""`dlc schema`: the JSON Schema of the spec language, plugin blocks included.

Editors (yaml-language-server) use it to complete and check specs. Every block option may
also be written as a ``${...}`` expression, so each option's schema admits such strings.
"""

from __future__ import annotations

import copy
from typing import Any

from dlc.registry import Registry
from dlc.spec.model import IDENTIFIER, ResidualLayer, ScanOptions, SpecModel, TemplateDef

EXPRESSION = {"type": "string", "pattern": r"\$\{.*\}", "description": "A ${...} expression."}
LAYER_REF = {"$ref": "#/$defs/Layer"}
LAYER_LIST = {"type": "array", "items": LAYER_REF}


def _allow_expressions(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    for name, prop in list(schema.get("properties", {}).items()):
        schema["properties"][name] = {
            "anyOf": [prop, EXPRESSION],
            **({"description": prop["description"]} if "description" in prop else {}),
        }
    return schema


def _hoist_defs(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Move a model schema's own `$defs` into the shared ones."""
    defs.update(schema.pop("$defs", {}))
    return schema


def _common_properties() -> dict[str, Any]:
    return {
        "id": {
            "type": "string",
            "pattern": IDENTIFIER,
            "description": "The layer's name, for `in` references.",
        },
        "in": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
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


def spec_schema(registry: Registry) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    alternatives: list[dict[str, Any]] = []
    names = sorted({*registry.block_names, *registry.templates()})
    alternatives.append({"type": "string", "enum": names, "description": "A block with default options."})
    for block in registry.blocks():
        config = _hoist_defs(
            _allow_expressions(block.config.model_json_schema(ref_template="#/$defs/{model}")), defs
        )
        value: dict[str, Any] = {"anyOf": [config, {"type": "null"}]}
        if block.shorthand:
            shorthand = config["properties"][block.shorthand]
            value["anyOf"].append(shorthand)
        alternatives.append(
            {
                "type": "object",
                "description": block.doc,
                "properties": {block.name: value, **_common_properties()},
                "required": [block.name],
                "additionalProperties": False,
            }
        )
    alternatives.append(
        {
            "type": "object",
            "description": "Repeat a body of layers; iterations are named <id>.0, <id>.1, ...",
            "properties": {
                "repeat": {"anyOf": [{"type": "integer", "minimum": 0}, EXPRESSION]},
                "as": {"type": "string", "pattern": IDENTIFIER},
                "input": {
                    "type": "string",
                    "pattern": IDENTIFIER,
                    "description": "The name of each iteration's input inside the body.",
                },
                "body": LAYER_LIST,
                **_common_properties(),
            },
            "required": ["repeat", "body"],
            "additionalProperties": False,
        }
    )
    residual = _hoist_defs(ResidualLayer.model_json_schema(ref_template="#/$defs/{model}"), defs)
    residual["properties"]["body"] = LAYER_LIST
    alternatives.append(
        {
            "type": "object",
            "description": "body(x) + shortcut(x)",
            "properties": {"residual": {"anyOf": [LAYER_LIST, residual]}, **_common_properties()},
            "required": ["residual"],
            "additionalProperties": False,
        }
    )
    scan = _hoist_defs(
        _allow_expressions(ScanOptions.model_json_schema(ref_template="#/$defs/{model}")), defs
    )
    scan["properties"]["body"] = {"anyOf": [LAYER_LIST, {"type": "object"}]}
    alternatives.append(
        {
            "type": "object",
            "description": "A loop: the body runs once per step, carrying named states.",
            "properties": {"scan": scan, **{k: v for k, v in _common_properties().items() if k != "in"}},
            "required": ["scan"],
            "additionalProperties": False,
        }
    )
    alternatives.append(
        {
            "type": "object",
            "description": "A template call (`blocks:` in the spec).",
            "properties": _common_properties(),
            "minProperties": 1,
        }
    )
    defs["Layer"] = {"anyOf": alternatives}
    template = _hoist_defs(TemplateDef.model_json_schema(ref_template="#/$defs/{model}"), defs)
    template["properties"]["body"] = LAYER_LIST
    template["properties"]["post"] = LAYER_LIST
    defs["TemplateDef"] = template
    schema = _hoist_defs(SpecModel.model_json_schema(ref_template="#/$defs/{model}"), defs)
    schema["properties"]["layers"] = {**LAYER_LIST, "minItems": 1}
    schema["properties"]["blocks"] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/TemplateDef"},
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dlc spec (format version 1)"
    schema["$defs"] = dict(sorted(defs.items()))
    return schema
