"""Block templates: user-defined parameterized blocks, from a spec's `blocks:` or from a
plugin's YAML library. A template keeps its own source map, so errors inside it point
at the file that defines it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from dlc.errors import Diagnostic, PluginError, SpecError
from dlc.spec.blocks import TemplateLibrary
from dlc.spec.model import TemplateDef, TemplateParam
from dlc.spec.validation import diagnostics_from_validation
from dlc.spec.yaml_source import SourceMap, YamlPath, load_yaml_file

_PYTHON_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "list": list,
    "any": Any,
}


@dataclass(frozen=True)
class Template:
    """A parsed template, with where it is defined and the model that checks its arguments."""

    name: str
    definition: TemplateDef
    raw: dict[str, Any]
    source: SourceMap
    path: YamlPath
    plugin: str | None

    @cached_property
    def args_model(self) -> type[BaseModel]:
        """The model that checks a call's arguments, built on first use: a library defines
        dozens of templates and a spec calls a few (building them all cost ~50 ms)."""
        return _args_model(self.name, self.definition)

    @property
    def params(self) -> dict[str, TemplateParam]:
        return {
            name: spec if isinstance(spec, TemplateParam) else TemplateParam(type=spec)
            for name, spec in self.definition.params.items()
        }

    def defaults(self) -> dict[str, Any]:
        """Parameters that have a default (it may be an expression)."""
        result = {}
        for name, spec in self.params.items():
            if "default" in spec.model_fields_set:
                result[name] = spec.default
        return result

    @property
    def shorthand(self) -> str | None:
        """The parameter a bare value sets (``widen: 3``): the only required parameter, or
        the first parameter when none is required."""
        params = self.params
        required = [n for n, p in params.items() if "default" not in p.model_fields_set]
        if len(required) == 1:
            return required[0]
        return next(iter(params)) if params and not required else None


def _args_model(name: str, definition: TemplateDef) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for param, spec in definition.params.items():
        type_name = spec.type if isinstance(spec, TemplateParam) else spec
        fields[param] = (_PYTHON_TYPES[type_name], ...)
    return create_model(  # type: ignore[call-overload]
        f"template_{name}_params", __config__=ConfigDict(extra="forbid"), **fields
    )


def parse_templates(
    raw_blocks: Any, source: SourceMap, base_path: YamlPath, plugin: str | None
) -> tuple[dict[str, Template], list[Diagnostic]]:
    """Parse a `blocks:` mapping; returns the valid templates and diagnostics for the rest."""
    templates: dict[str, Template] = {}
    diagnostics: list[Diagnostic] = []
    if not isinstance(raw_blocks, dict):
        return templates, [source.diagnostic("`blocks` must be a mapping of template names", base_path)]
    for name, raw in raw_blocks.items():
        path = (*base_path, name)
        if not name.isidentifier():
            diagnostics.append(
                source.diagnostic(f"template name '{name}' is not a valid name", path, key=True)
            )
            continue
        try:
            definition = TemplateDef.model_validate(raw)
        except ValidationError as error:
            diagnostics.extend(
                diagnostics_from_validation(error, raw, source, path, TemplateDef, f"template '{name}'")
            )
            continue
        templates[name] = Template(name, definition, raw, source, path, plugin)
    return templates, diagnostics


# Parsed libraries, by file and its state: registering a plugin lists its template names,
# and the first spec that calls one needs the templates, so each file is parsed once.
_PARSED: dict[tuple[Path, str, int, int], dict[str, Template]] = {}


def load_template_library(library: TemplateLibrary) -> dict[str, Template]:
    """Parse a plugin's template file; its errors are the plugin's, so they raise PluginError."""
    try:
        status = Path(library.path).stat()
    except OSError:
        status = None
    key = (library.path, library.plugin, status.st_mtime_ns, status.st_size) if status else None
    if key is not None and key in _PARSED:
        return dict(_PARSED[key])
    templates = _parse_template_library(library)
    if key is not None:
        _PARSED[key] = templates
    return dict(templates)


def _parse_template_library(library: TemplateLibrary) -> dict[str, Template]:
    try:
        data, source = load_yaml_file(library.path)
    except SpecError as error:
        raise PluginError(diagnostics=error.diagnostics) from None
    if not isinstance(data, dict) or set(data) - {"blocks", "doc"}:
        raise PluginError(f"template library {library.path} must be a mapping with a `blocks:` key")
    templates, diagnostics = parse_templates(data.get("blocks"), source, ("blocks",), library.plugin)
    if diagnostics:
        raise PluginError(diagnostics=diagnostics)
    return templates


def template_names(library: TemplateLibrary) -> list[str]:
    return sorted(load_template_library(library))
