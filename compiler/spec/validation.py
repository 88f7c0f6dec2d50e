"""Turn Pydantic validation errors into located dlc diagnostics.

Pydantic reports a location tuple per error; we map it onto the YAML path (dropping the
union-member tags Pydantic inserts), look up file:line:col in the source map, phrase the
message for spec authors and add did-you-mean hints for unknown keys.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from dlc.errors import Diagnostic
from dlc.spec.suggest import did_you_mean
from dlc.spec.yaml_source import SourceMap, YamlPath


def diagnostics_from_validation(
    error: ValidationError,
    data: Any,
    source: SourceMap,
    base_path: YamlPath = (),
    model: type[BaseModel] | None = None,
    subject: str | None = None,
) -> list[Diagnostic]:
    """One diagnostic per distinct problem; `subject` names the thing being configured
    (``block 'linear'``) in messages about unknown and missing keys."""
    grouped: dict[tuple[YamlPath, str], list[dict[str, Any]]] = {}
    unreported = 0
    for item in error.errors(include_url=False):
        path = _data_path(data, item["loc"])
        group = (path, item["type"] if item["type"] in _KEYED else "value")
        if group not in grouped and len(grouped) >= MAX_PROBLEMS:
            unreported += 1  # a list of a million bad values: the first problems say enough
            continue
        grouped.setdefault(group, []).append(item)
    diagnostics = []
    suggested = _suggested_keys(grouped, model)
    for (path, kind), items in grouped.items():
        full = (*base_path, *path)
        if kind == "extra_forbidden":
            key = str(path[-1]) if path else "?"
            allowed = _fields_at(model, path[:-1]) if model else []
            what = f" for {subject}" if subject and len(path) == 1 else ""
            hint = did_you_mean(key, allowed) if allowed else None
            if hint is None and allowed:
                hint = "allowed keys: " + ", ".join(allowed)
            message = f"unknown key '{key}'{what}"
            if key in _LAYER_KEYS and len(path) == 1 and subject and subject.startswith("block"):
                # `tie` and `share` are not misspellings of an option (`stride`): say what they are
                message, hint = _sharing_key_message(key, subject)
            diagnostics.append(source.diagnostic(message, full, key=True, hint=hint))
        elif kind == "missing":
            if path in suggested:  # "unknown key 'outt', did you mean 'out'" says it already
                continue
            key = str(path[-1]) if path else "?"
            what = f" of {subject}" if subject and len(path) == 1 else ""
            diagnostics.append(source.diagnostic(f"missing required key '{key}'{what}", full[:-1]))
        else:
            diagnostics.append(source.diagnostic(_value_message(items, path, subject), full))
    if unreported:
        what = f" in {subject}" if subject else ""
        diagnostics.append(source.diagnostic(f"{unreported:,} more problems{what} not shown", base_path))
    return diagnostics


# Distinct problems reported from one validation; the rest are counted. Like a C compiler's
# error limit: each diagnostic reads the source line, so a million of them would take minutes.
MAX_PROBLEMS = 20


_KEYED = {"extra_forbidden", "missing"}
_LAYER_KEYS = {"tie", "share"}


def _sharing_key_message(key: str, subject: str) -> tuple[str, str]:
    if key == "tie":
        return (
            f"{subject} cannot tie a weight: only linear and embedding (and plugin blocks that "
            "offer it) take `tie`",
            "to reuse every parameter of an earlier layer, write `share: LAYER` beside the block, "
            "not inside its options",
        )
    return (
        f"`share` is not an option of {subject}: it belongs to the layer",
        "write `share: LAYER` beside the block (next to `id` and `in`), not inside its options",
    )


def _suggested_keys(grouped: dict[tuple[YamlPath, str], Any], model: type[BaseModel] | None) -> set[YamlPath]:
    """Missing keys that a did-you-mean for a misspelled key already points to."""
    from dlc.spec.suggest import closest

    suggested: set[YamlPath] = set()
    for path, kind in grouped:
        if kind == "extra_forbidden" and path and model is not None:
            for match in closest(str(path[-1]), _fields_at(model, path[:-1]), limit=1):
                suggested.add((*path[:-1], match))
    return suggested


def _data_path(data: Any, loc: Sequence[str | int]) -> YamlPath:
    """Follow `loc` through the data, skipping the union-member tags Pydantic adds."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str):
            if part in node:
                path.append(part)
                node = node[part]
            elif last:  # a missing key
                path.append(part)
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def _value_message(items: list[dict[str, Any]], path: YamlPath, subject: str | None) -> str:
    if path and isinstance(path[-1], str):
        name = f"'{path[-1]}'"
    elif len(path) >= 2 and isinstance(path[-2], str):
        name = f"'{path[-2]}[{path[-1]}]'"
    else:
        name = "value"
    given = items[0].get("input")
    shown = repr(given) if not isinstance(given, (dict, list)) else type(given).__name__
    messages = []
    for item in items:
        text = item["msg"]
        text = text.removeprefix("Value error, ")
        text = re.sub(
            r"List should have at least (\d+) items? after validation, not (\d+)",
            r"expected at least \1 item(s), got \2",
            text,
        )
        text = text.replace("Input should be", "expected").replace("Input", "value")
        if text not in messages:
            messages.append(text)
    where = f" of {subject}" if subject and len(path) == 1 else ""
    text = "; or ".join(messages)
    shown_already = f"got {shown}" in text or ("got " in text and isinstance(given, (dict, list)))
    return f"invalid {name}{where}: {text}" + ("" if shown_already else f" (got {shown})")


def _fields_at(model: type[BaseModel] | None, path: YamlPath) -> list[str]:
    """The field names of the model found by walking `path` from `model`."""
    annotation: Any = model
    for part in path:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    models = [a for a in _members(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return sorted({name for m in models for name in m.model_fields})


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    return [annotation]


def _step(annotation: Any, part: str | int) -> Any:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            field = member.model_fields.get(part)
            if field is not None:
                return field.annotation
        origin = typing.get_origin(member)
        if origin in (list, tuple) and isinstance(part, int):
            return typing.get_args(member)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(member)[1]
    return None
