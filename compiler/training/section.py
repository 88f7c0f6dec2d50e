"""Read a `training:` section (from the spec, or from `dlc train --config FILE`) into a
`TrainingConfig`, with every problem located in its file and reported at once.

`--set training.optimizer.lr=3e-4` overrides a value before validation; a problem with an
overridden value points at the key it replaced and notes the `--set`. Shorthands: a bare
name stands for `{name: ...}` (`optimizer: adam`, `objective: cross_entropy`). An unknown
`name` of an objective, optimizer, schedule or averaging gets a did-you-mean.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dlc.errors import Diagnostic, Location, SpecError
from dlc.spec.suggest import did_you_mean
from dlc.spec.validation import diagnostics_from_validation
from dlc.spec.yaml_source import SourceMap, YamlPath, load_yaml_file
from dlc.training.config import NAMED_SECTIONS, TrainingConfig

OVERRIDE_PREFIX = "training."


@dataclass
class TrainingSource:
    """Where a training section came from: its data, the file's source map, the YAML path of
    the section inside that file, and the folder relative paths start from."""

    data: dict[str, Any]
    source: SourceMap
    base: YamlPath
    folder: Path
    overridden: dict[YamlPath, str] = dataclasses.field(default_factory=dict)

    def diagnostic(self, message: str, path: Sequence[str | int], *, hint: str | None = None) -> Diagnostic:
        """A problem at `path` inside the section (e.g. ``("data", "path")``)."""
        full = (*self.base, *path)
        diagnostic = self.source.diagnostic(message, full, hint=hint)
        notes = [
            f"the value comes from --set {text}"
            for key, text in self.overridden.items()
            if key == tuple(path)
        ]
        return dataclasses.replace(diagnostic, notes=(*diagnostic.notes, *notes)) if notes else diagnostic

    def error(self, message: str, path: Sequence[str | int], *, hint: str | None = None) -> SpecError:
        return SpecError(diagnostics=[self.diagnostic(message, path, hint=hint)])

    def location(self, path: Sequence[str | int]) -> Location:
        return self.source.locate((*self.base, *path))

    def resolve(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.folder / path


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params overrides, training overrides): `training.x.y=v` keys go to the section."""
    params = {k: v for k, v in overrides.items() if not k.startswith(OVERRIDE_PREFIX)}
    training = {
        k.removeprefix(OVERRIDE_PREFIX): v for k, v in overrides.items() if k.startswith(OVERRIDE_PREFIX)
    }
    return params, training


def training_source(
    spec_raw: Mapping[str, Any], spec_source: SourceMap, spec_path: Path | None, config: Path | None
) -> TrainingSource:
    """The section to train with: `config` (a file holding the section, or a mapping with a
    `training:` key) when given, else the spec's own `training:`."""
    if config is not None:
        data, source = load_yaml_file(config)
        base: YamlPath = ()
        if isinstance(data, dict) and set(data) == {"training"}:
            data, base = data["training"], ("training",)
        if not isinstance(data, dict):
            raise SpecError(
                "a training config is a mapping with `data`, `objective`, `optimizer`, ...",
                location=source.locate(base),
            )
        return TrainingSource(data, source, base, config.parent)
    section = spec_raw.get("training")
    folder = spec_path.parent if spec_path is not None else Path.cwd()
    if section is None:
        raise SpecError(
            "the spec has no `training:` section",
            location=Location(spec_source.file),
            hint="add a `training:` section (data, objective, optimizer, epochs), "
            "or pass --config train.yaml",
        )
    if not isinstance(section, dict):
        raise SpecError("`training` must be a mapping", location=spec_source.locate(("training",)))
    return TrainingSource(section, spec_source, ("training",), folder)


def apply_overrides(section: TrainingSource, overrides: Mapping[str, Any]) -> TrainingSource:
    """A copy of the section with `key.path=value` overrides written into it."""
    data = copy.deepcopy(section.data)
    overridden: dict[YamlPath, str] = {}
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if isinstance(child, str) and key in NAMED_SECTIONS:  # `optimizer: adam` shorthand
                child = {"name": child}
            if not isinstance(child, dict):
                if child is not None:
                    where = ".".join(keys[: depth + 1])
                    raise SpecError(f"--set training.{dotted}: `{where}` is not a mapping")
                child = {}
            node[key] = child
            node = child
        node[keys[-1]] = value
        overridden[tuple(keys)] = f"training.{dotted}={value}"
    return dataclasses.replace(section, data=data, overridden=overridden)


def validate_section(section: TrainingSource) -> TrainingConfig:
    """The section as a `TrainingConfig`, or a `SpecError` listing every problem."""
    data = _expand_shorthands(section.data)
    diagnostics, unknown = _unknown_names(section, data)
    try:
        config = TrainingConfig.model_validate(data)
    except ValidationError as error:
        found = diagnostics_from_validation(error, data, section.source, section.base, TrainingConfig)
        for diagnostic in found:
            path = diagnostic.location.path[len(section.base) :] if diagnostic.location else ()
            if path and path[0] in unknown:
                continue  # the unknown name is reported already, with a did-you-mean
            diagnostics.append(_with_override_note(section, diagnostic))
        raise SpecError(diagnostics=diagnostics) from None
    if diagnostics:
        raise SpecError(diagnostics=diagnostics)
    return config


def _expand_shorthands(data: dict[str, Any]) -> dict[str, Any]:
    expanded = dict(data)
    for key in NAMED_SECTIONS:
        if isinstance(expanded.get(key), str):
            expanded[key] = {"name": expanded[key]}
    return expanded


def _unknown_names(section: TrainingSource, data: dict[str, Any]) -> tuple[list[Diagnostic], set[str]]:
    """An unknown `name` in a named section, with the closest known names; and the
    sections whose name is unknown (their other problems are moot)."""
    diagnostics = []
    unknown = set()
    for key in NAMED_SECTIONS:
        value = data.get(key)
        if not isinstance(value, dict) or "name" not in value:
            continue
        known = known_names(key)
        name = value["name"]
        if name in known:
            continue
        hint = (
            did_you_mean(str(name), known) if isinstance(name, str) else None
        ) or f"known: {', '.join(known)}"
        path = (key, "name") if not isinstance(section.data.get(key), str) else (key,)
        diagnostics.append(section.diagnostic(f"unknown {key} '{name}'", path, hint=hint))
        unknown.add(key)
    return diagnostics, unknown


def known_names(key: str) -> list[str]:
    """The `name` tags the union model of a section accepts."""
    annotation = TrainingConfig.model_fields[key].annotation
    names: list[str] = []
    stack = [annotation]
    while stack:
        item = stack.pop()
        origin = typing.get_origin(item)
        if origin is typing.Annotated or origin in (typing.Union, types.UnionType):
            stack.extend(typing.get_args(item))
        elif isinstance(item, type) and hasattr(item, "model_fields") and "name" in item.model_fields:
            names.extend(typing.get_args(item.model_fields["name"].annotation))
    return sorted(names)


def _with_override_note(section: TrainingSource, diagnostic: Diagnostic) -> Diagnostic:
    if diagnostic.location is None:
        return diagnostic
    relative = diagnostic.location.path[len(section.base) :]
    notes = [
        f"the value comes from --set {text}" for key, text in section.overridden.items() if key == relative
    ]
    return dataclasses.replace(diagnostic, notes=(*diagnostic.notes, *notes)) if notes else diagnostic
