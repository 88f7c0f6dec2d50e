"""Loading plugins and the registry of what they provide.

Built-in families and third-party packages (entry-point group ``dlc.plugins``) go through
the same hooks. Each plugin is loaded in isolation: its records are collected, checked,
and committed only if all of them are valid. A plugin that fails to import or register is
rolled back, warned about once and listed as failed; everything else keeps working.
``DLC_DISABLE_PLUGINS=a,b`` skips plugins before they are imported; `strict` turns any
plugin failure into a `PluginError`.
"""

from __future__ import annotations

import importlib
import logging
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from pydantic import BaseModel

from dlc import hookspecs
from dlc.emit.targets import EmitTarget
from dlc.errors import DlcError, PluginError
from dlc.ir.ops import OpDef, OpGroup
from dlc.ir.source_ops import SOURCE_OPS
from dlc.passes.manager import PassInfo
from dlc.spec.blocks import BlockType, ShortcutProjection, TemplateLibrary
from dlc.tuning import Tuner

log = logging.getLogger("dlc.plugins")


def builtin_plugins() -> list[tuple[str, str]]:
    """dlc's own passes and targets, then every family package under `dlc.plugins` (core
    first): adding a family is adding a folder, no core file changes."""
    import pkgutil

    import dlc.plugins

    families = sorted(
        (m.name for m in pkgutil.iter_modules(dlc.plugins.__path__) if m.ispkg),
        key=lambda name: (name != "core", name),
    )
    return [("dlc", "dlc.builtin"), *((name, f"dlc.plugins.{name}") for name in families)]


_RECORD_TYPES: dict[str, type] = {
    "dlc_block_types": BlockType,
    "dlc_ops": OpDef,
    "dlc_passes": PassInfo,
    "dlc_emit_targets": EmitTarget,
    "dlc_shortcut_projections": ShortcutProjection,
    "dlc_templates": TemplateLibrary,
    "dlc_tuners": Tuner,
}


@dataclass
class PluginRecord:
    """What `dlc plugins` lists: where a plugin came from and what became of it."""

    name: str
    source: str
    version: str | None = None
    status: str = "loaded"  # loaded | failed | disabled
    error: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "provides": self.provides,
        }


class Registry:
    """Everything the loaded plugins provide, looked up by name."""

    def __init__(self) -> None:
        self.plugins: list[PluginRecord] = []
        self._blocks: dict[str, list[BlockType]] = {}
        self._ops: dict[str, list[OpDef]] = {}
        self.passes: list[PassInfo] = []
        self._targets: dict[str, list[EmitTarget]] = {}
        self.projections: list[ShortcutProjection] = []
        self.template_libraries: list[TemplateLibrary] = []
        self.tuners: list[Tuner] = []
        self._templates: dict[str, Any] | None = None
        for op in SOURCE_OPS:
            self._ops[op.name] = [op]

    # -- lookups -------------------------------------------------------------------------

    @property
    def block_names(self) -> list[str]:
        return sorted(self._blocks)

    def block_providers(self, name: str) -> list[BlockType]:
        return self._blocks.get(name, [])

    def block(self, name: str) -> BlockType:
        providers = self._blocks.get(name)
        if not providers:
            raise KeyError(name)
        if len(providers) > 1:
            raise PluginError(_clash_message("block", name, [p.plugin for p in providers]))
        return providers[0]

    def blocks(self) -> list[BlockType]:
        return [providers[0] for _, providers in sorted(self._blocks.items())]

    def op(self, name: str) -> OpDef:
        providers = self._ops.get(name)
        if not providers:
            raise PluginError(f"unknown IR op '{name}'", hint=self._failed_note())
        if len(providers) > 1:
            raise PluginError(_clash_message("op", name, [p.plugin for p in providers]))
        return providers[0]

    def ops(self) -> list[OpDef]:
        return [providers[0] for _, providers in sorted(self._ops.items()) if len(providers) == 1]

    def target(self, name: str) -> EmitTarget:
        providers = self._targets.get(name)
        if not providers:
            raise KeyError(name)
        if len(providers) > 1:
            raise PluginError(_clash_message("target", name, [p.plugin for p in providers]))
        return providers[0]

    @property
    def target_names(self) -> list[str]:
        return sorted(self._targets)

    def templates(self) -> dict[str, Any]:
        """Templates from plugins' YAML libraries, by name (parsed once, on first use)."""
        if self._templates is None:
            from dlc.spec.templates import load_template_library

            self._templates = {}
            for library in self.template_libraries:
                for name, template in load_template_library(library).items():
                    self._templates.setdefault(name, []).append(template)
        return self._templates

    @property
    def failed(self) -> list[PluginRecord]:
        return [p for p in self.plugins if p.status == "failed"]

    def plugin_for_failed_block(self, name: str) -> PluginRecord | None:
        for record in self.failed:
            if name in record.provides.get("blocks", []) or name in record.provides.get("templates", []):
                return record
        return None

    def _failed_note(self) -> str | None:
        if not self.failed:
            return None
        return "failed plugins: " + ", ".join(f"{p.name} ({p.error})" for p in self.failed)

    # -- registration --------------------------------------------------------------------

    def commit(self, plugin: str, records: dict[str, list[Any]]) -> None:
        for block in records.get("dlc_block_types", []):
            self._blocks.setdefault(block.name, []).append(block)
        for op in records.get("dlc_ops", []):
            self._ops.setdefault(op.name, []).append(op)
        self.passes.extend(records.get("dlc_passes", []))
        for target in records.get("dlc_emit_targets", []):
            self._targets.setdefault(target.name, []).append(target)
        self.projections.extend(records.get("dlc_shortcut_projections", []))
        self.template_libraries.extend(records.get("dlc_templates", []))
        self.tuners.extend(records.get("dlc_tuners", []))
        self._templates = None


def _clash_message(kind: str, name: str, plugins: list[str]) -> str:
    return f"{kind} '{name}' is provided by several plugins: " + ", ".join(f"'{p}'" for p in plugins)


def _describe_failure(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def _validate_record(hook: str, record: Any, plugin: str) -> Any:
    """Check one record's type and basic invariants; stamp the plugin name on it."""
    import dataclasses

    expected = _RECORD_TYPES[hook]
    if not isinstance(record, expected):
        raise TypeError(f"{hook} returned {type(record).__name__}, expected {expected.__name__}")
    if hasattr(record, "name") and (not isinstance(record.name, str) or not record.name):
        raise ValueError(f"{hook} returned a {expected.__name__} without a name")
    if isinstance(record, BlockType):
        if not (isinstance(record.config, type) and issubclass(record.config, BaseModel)):
            raise TypeError(f"block '{record.name}': config must be a pydantic model class")
        if record.config.model_config.get("extra") != "forbid":
            raise ValueError(f"block '{record.name}': config model must set extra='forbid'")
        if record.shorthand is not None and record.shorthand not in record.config.model_fields:
            raise ValueError(f"block '{record.name}': shorthand '{record.shorthand}' is not a field")
    if isinstance(record, OpDef):
        if record.group is not OpGroup.SOURCE and not list(record.samples()):
            raise ValueError(f"op '{record.name}' has no sample inputs; every op needs them")
        if record.name in {op.name for op in SOURCE_OPS}:
            raise ValueError(f"op '{record.name}' would replace a built-in source op")
    return dataclasses.replace(record, plugin=plugin)


def _collect(pm: pluggy.PluginManager, plugin_name: str) -> dict[str, list[Any]]:
    records: dict[str, list[Any]] = {}
    for hook_name in hookspecs.HOOK_NAMES:
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.plugin_name != plugin_name:
                continue
            returned = impl.function()
            if returned is None:
                continue
            if not isinstance(returned, (list, tuple)):
                raise TypeError(f"{hook_name} must return a list, got {type(returned).__name__}")
            records.setdefault(hook_name, []).extend(
                _validate_record(hook_name, r, plugin_name) for r in returned
            )
    for hook_name, items in records.items():
        names = [getattr(r, "name", None) for r in items if getattr(r, "name", None)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{hook_name} returned '{duplicates[0]}' more than once")
    return records


def _provides(records: dict[str, list[Any]]) -> dict[str, list[str]]:
    labels = {
        "dlc_block_types": "blocks",
        "dlc_ops": "ops",
        "dlc_passes": "passes",
        "dlc_emit_targets": "targets",
        "dlc_shortcut_projections": "projections",
        "dlc_tuners": "tuners",
    }
    provides = {
        labels[hook]: sorted(r.name for r in items) for hook, items in records.items() if hook in labels
    }
    libraries = records.get("dlc_templates", [])
    if libraries:
        from dlc.spec.templates import template_names

        provides["templates"] = sorted(n for lib in libraries for n in template_names(lib))
    return provides


def _candidates(disabled: set[str]) -> Iterable[tuple[str, str, str | None, Any]]:
    """(name, source, version, loader) for built-ins, then entry points."""
    builtins = builtin_plugins()
    for name, module in builtins:
        yield name, f"builtin {module}", None, lambda module=module: importlib.import_module(module)
    seen = {name for name, _ in builtins}
    for entry_point in sorted(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        version = entry_point.dist.version if entry_point.dist is not None else None
        yield entry_point.name, f"entry point {entry_point.value}", version, entry_point.load


def load_registry(strict: bool = False, disabled: Iterable[str] | None = None) -> Registry:
    """Load every plugin (fresh, uncached) and return what they provide."""
    disabled_set = set(disabled or ())
    disabled_set |= {p.strip() for p in os.environ.get("DLC_DISABLE_PLUGINS", "").split(",") if p.strip()}
    registry = Registry()
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name, source, version, loader in _candidates(disabled_set):
        record = PluginRecord(name, source, version)
        registry.plugins.append(record)
        if name in disabled_set:
            record.status = "disabled"
            continue
        plugin_object = None
        try:
            plugin_object = loader()
            manager.register(plugin_object, name=name)
            records = _collect(manager, name)
            record.provides = _provides(records)
            registry.commit(name, records)
        # A plugin's failure must not take dlc down with it; that includes `sys.exit()` at
        # import, which would otherwise end dlc with the plugin's exit code, spec unchecked.
        except (Exception, SystemExit) as error:
            if plugin_object is not None and manager.is_registered(plugin_object):
                manager.unregister(plugin_object)
            record.status = "failed"
            record.error = _describe_failure(error)
            if not record.provides:
                record.provides = _attempted_names(plugin_object)
            log.warning("plugin '%s' failed to load and was skipped: %s", name, record.error)
    if strict and registry.failed:
        raise PluginError(
            diagnostics=[
                PluginError(f"plugin '{p.name}' failed to load: {p.error}").diagnostics[0]
                for p in registry.failed
            ]
        )
    return registry


def _attempted_names(plugin_object: Any) -> dict[str, list[str]]:
    """Best effort: the block names a failed plugin tried to provide, for error messages."""
    if plugin_object is None:
        return {}
    function = getattr(plugin_object, "dlc_block_types", None)
    if function is None:
        return {}
    try:
        return {"blocks": sorted(b.name for b in function() if isinstance(b, BlockType))}
    except Exception:
        return {}


_cached: dict[tuple[bool, str], Registry] = {}


def default_registry(strict: bool = False) -> Registry:
    """The process-wide registry (loaded once per strictness and DLC_DISABLE_PLUGINS value)."""
    key = (strict, os.environ.get("DLC_DISABLE_PLUGINS", ""))
    if key not in _cached:
        _cached[key] = load_registry(strict=strict)
    return _cached[key]


def reset_default_registry() -> None:
    _cached.clear()


__all__ = ["DlcError", "PluginRecord", "Registry", "default_registry", "load_registry"]
