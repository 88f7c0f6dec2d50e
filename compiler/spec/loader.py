"""Load a spec file: YAML with positions, top-level validation, params and templates.

`load_spec` reports every top-level problem at once; layer-level problems (unknown blocks,
bad configs, shapes) are found while lowering, also all at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dlc.errors import Diagnostic, ErrorCollector, Location, SpecError
from dlc.spec.expressions import ExpressionError, substitute
from dlc.spec.model import SpecModel
from dlc.spec.suggest import did_you_mean
from dlc.spec.templates import Template, parse_templates
from dlc.spec.validation import diagnostics_from_validation
from dlc.spec.yaml_source import SourceMap, YamlSyntaxError, load_yaml, load_yaml_file


@dataclass
class Spec:
    """A validated spec: the top-level model, the raw data (layers are validated when
    lowered), evaluated params, the spec's own templates, and the source map."""

    model: SpecModel
    raw: dict[str, Any]
    source: SourceMap
    params: dict[str, Any]
    templates: dict[str, Template] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def stem(self) -> str:
        return self.path.stem if self.path else self.model.name


def load_spec(
    source: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    text: str | None = None,
    check_training: bool = True,
) -> Spec:
    """Load and validate a spec from a path (or from `text`, with `source` as its name).

    `overrides` replace values under `params` (the CLI's ``--set key=value``). `dlc train`
    passes `check_training=False`: it checks the `training:` section itself, after its own
    overrides (or instead of it, with `--config`)."""
    if text is not None:
        data, source_map = load_yaml(text, str(source))
        path = None
    else:
        path = Path(source)
        data, source_map = load_yaml_file(path)
    errors = ErrorCollector()
    if not isinstance(data, dict):
        raise SpecError(
            "a spec must be a mapping with `dlc: 1`, `name`, `inputs`, `layers` (and optionally "
            "`params`, `blocks`, `outputs`)",
            location=source_map.locate(()),
        )
    try:
        model = SpecModel.model_validate(data)
    except ValidationError as error:
        diagnostics = diagnostics_from_validation(error, data, source_map, (), SpecModel)
        raise SpecError(diagnostics=[_explain_version(d, data) for d in diagnostics]) from None
    params = _evaluate_params(data.get("params") or {}, overrides or {}, source_map, errors)
    templates, diagnostics = parse_templates(data.get("blocks") or {}, source_map, ("blocks",), None)
    for diagnostic in diagnostics:
        errors.add(SpecError(diagnostics=[diagnostic]))
    if check_training and isinstance(data.get("training"), dict):
        _check_training(data, source_map, path, errors)
    errors.raise_if_any()
    return Spec(model=model, raw=data, source=source_map, params=params, templates=templates, path=path)


def _check_training(
    data: dict[str, Any], source: SourceMap, path: Path | None, errors: ErrorCollector
) -> None:
    """The `training:` section is part of the language: its problems are the spec's."""
    from dlc.training.section import training_source, validate_section

    try:
        validate_section(training_source(data, source, path, None))
    except SpecError as error:
        errors.add(error)


def _explain_version(diagnostic: Diagnostic, data: dict[str, Any]) -> Diagnostic:
    """Phrase problems with the `dlc:` format-version key for people."""
    if diagnostic.message.startswith("missing required key 'dlc'"):
        return Diagnostic(
            "missing `dlc: 1` (the spec format version)",
            diagnostic.location,
            source_line=diagnostic.source_line,
        )
    location = diagnostic.location
    if location is None or location.path != ("dlc",):
        return diagnostic
    return Diagnostic(
        f"unsupported spec format version {data['dlc']!r}; this dlc reads version 1",
        location,
        "write `dlc: 1`",
        source_line=diagnostic.source_line,
    )


def _evaluate_params(
    raw: dict[str, Any], overrides: Mapping[str, Any], source: SourceMap, errors: ErrorCollector
) -> dict[str, Any]:
    """Evaluate params in order; each may use the ones before it. Overrides win."""
    unknown = [key for key in overrides if key not in raw]
    for key in unknown:
        hint = did_you_mean(key, raw) or (
            f"params defined by this spec: {', '.join(raw)}" if raw else "this spec defines no params"
        )
        errors.add(
            SpecError(
                f"--set {key}: the spec has no param '{key}'",
                location=Location(source.file),
                hint=hint,
            )
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in overrides:
            value = overrides[key]
        try:
            values[key] = substitute(value, values)
        except ExpressionError as error:
            errors.add(
                SpecError(diagnostics=[source.diagnostic(error.message, ("params", key), hint=error.hint)])
            )
    return values


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as a YAML scalar or list (with
    the spec's own limits and tags), or kept as text when it is not YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(f"--set expects key=value, got '{text}'")
    if not value.strip():
        return key, ""
    try:
        parsed, _ = load_yaml(value, f"--set {key}")
    except YamlSyntaxError:
        parsed = value
    return key, parsed
