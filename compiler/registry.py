"""Loading plugins and the registry of what they provide.

Built-in families and third-party packages (entry-point group ``dlc.plugins``) go through
the same hooks. Each plugin is loaded in isolation: its records are collected, checked,
and committed only if all of them are valid. A plugin that fails to import or register is
rolled back, warned about once and listed as failed; everything else keeps working.
``DLC_DISABLE_PLUGINS=a,b`` skips plugins before they are imported; `strict` turns any
plugin failure into a `PluginError`.

Plugins are imported lazily where that is safe: a plugin whose code is unchanged since
it last loaded (`dlc.plugin_manifest`) is *deferred*, and imported the first time a
lookup needs something it provides (a block, op, template or target by name, the passes
of an optimization level, or any listing of everything). Validating an MLP then imports
the core family only. Plugins without a valid manifest entry, and every plugin under
`strict`, are imported at once, as before.
"""

from __future__ import annotations

import importlib
import logging
import os
import traceback
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from dlc import hookspecs
from dlc.emit.targets import EmitTarget
from dlc.errors import DlcError, PluginError
from dlc.ir.ops import OpDef, OpGroup
from dlc.ir.source_ops import SOURCE_OPS
from dlc.passes.manager import PassInfo, may_change
from dlc.spec.blocks import BlockType, ShortcutProjection, TemplateLibrary
from dlc.training.datasets import DatasetInfo
from dlc.tuning import Tuner

if TYPE_CHECKING:
    from dlc.plugin_manifest import PluginManifest

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
    "dlc_datasets": DatasetInfo,
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
    """Everything the loaded plugins provide, looked up by name.

    Deferred plugins are loaded by the lookups that need them; the listings (`blocks()`,
    `passes`, `plugins`, ...) load every deferred plugin first. Records from several
    plugins are kept in the plugins' discovery order, whatever order they loaded in."""

    def __init__(self) -> None:
        self._records: list[PluginRecord] = []
        self._blocks: dict[str, list[BlockType]] = {}
        self._ops: dict[str, list[OpDef]] = {}
        self._passes: list[PassInfo] = []
        self._targets: dict[str, list[EmitTarget]] = {}
        self._projections: list[ShortcutProjection] = []
        self._template_libraries: list[TemplateLibrary] = []
        self._tuners: list[Tuner] = []
        self._datasets: list[DatasetInfo] = []
        self._templates: dict[str, Any] | None = None
        self._order: dict[str, int] = {}  # plugin name -> discovery position
        self._deferred: dict[str, _Deferred] = {}
        self._loader: _PluginLoader | None = None
        for op in SOURCE_OPS:
            self._ops[op.name] = [op]

    # -- deferred plugins ----------------------------------------------------------------

    def _load_providers(self, kind: str, name: str) -> None:
        """Load the deferred plugins that provided `name` (a `kind` of record) last time."""
        if self._deferred:
            for plugin in [p for p, d in self._deferred.items() if name in d.names.get(kind, ())]:
                self._load_deferred(plugin)

    def _load_all(self) -> None:
        for plugin in list(self._deferred):
            self._load_deferred(plugin)

    def _load_deferred(self, plugin: str) -> None:
        deferred = self._deferred.pop(plugin, None)
        if deferred is not None and self._loader is not None:
            # The manifest's template names hold: the plugin's files are unchanged since they
            # were listed, so its template libraries need not be parsed to list them again.
            templates = deferred.record.provides.get("templates")
            self._loader.load(self, deferred.record, deferred.load, templates)

    def passes_up_to(self, level: int, ops: Collection[str] | None = None) -> list[PassInfo]:
        """The passes of optimization levels up to `level`, in registration order, loading
        only the deferred plugins that have such passes; with `ops` (a graph's), only the
        passes that may change a graph with those ops (`PassInfo.needs_ops`)."""
        wanted = [
            plugin
            for plugin, deferred in self._deferred.items()
            if any(pass_level <= level and may_change(needs, ops) for pass_level, needs in deferred.passes)
        ]
        for plugin in wanted:
            self._load_deferred(plugin)
        return [p for p in self._passes if p.level <= level and p.may_change(ops)]

    @property
    def plugins(self) -> list[PluginRecord]:
        self._load_all()  # report what each plugin really does now
        return self._records

    @property
    def passes(self) -> list[PassInfo]:
        self._load_all()
        return self._passes

    @property
    def projections(self) -> list[ShortcutProjection]:
        self._load_all()
        return self._projections

    @property
    def template_libraries(self) -> list[TemplateLibrary]:
        self._load_all()
        return self._template_libraries

    @property
    def tuners(self) -> list[Tuner]:
        self._load_all()
        return self._tuners

    @property
    def datasets(self) -> list[DatasetInfo]:
        """Datasets from plugins (`dlc_datasets`); `dlc train` adds its packaged ones."""
        self._load_all()
        return self._datasets

    # -- lookups -------------------------------------------------------------------------

    @property
    def block_names(self) -> list[str]:
        self._load_all()
        return sorted(self._blocks)

    def block_providers(self, name: str) -> list[BlockType]:
        self._load_providers("blocks", name)
        return self._blocks.get(name, [])

    def block(self, name: str) -> BlockType:
        self._load_providers("blocks", name)
        providers = self._blocks.get(name)
        if not providers:
            raise KeyError(name)
        if len(providers) > 1:
            raise PluginError(_clash_message("block", name, [p.plugin for p in providers]))
        return providers[0]

    def blocks(self) -> list[BlockType]:
        self._load_all()
        return [providers[0] for _, providers in sorted(self._blocks.items())]

    def op(self, name: str) -> OpDef:
        self._load_providers("ops", name)
        providers = self._ops.get(name)
        if not providers:
            raise PluginError(f"unknown IR op '{name}'", hint=self._failed_note())
        if len(providers) > 1:
            raise PluginError(_clash_message("op", name, [p.plugin for p in providers]))
        return providers[0]

    def ops(self) -> list[OpDef]:
        self._load_all()
        return [providers[0] for _, providers in sorted(self._ops.items()) if len(providers) == 1]

    def target(self, name: str) -> EmitTarget:
        self._load_providers("targets", name)
        providers = self._targets.get(name)
        if not providers:
            raise KeyError(name)
        if len(providers) > 1:
            raise PluginError(_clash_message("target", name, [p.plugin for p in providers]))
        return providers[0]

    @property
    def target_names(self) -> list[str]:
        self._load_all()
        return sorted(self._targets)

    def templates(self) -> dict[str, Any]:
        """Templates from plugins' YAML libraries, by name (parsed once, on first use)."""
        self._load_all()
        return self._loaded_templates()

    def template_lookup(self) -> Mapping[str, Any]:
        """`templates()` as a mapping that loads only the plugins a looked-up name needs
        (iterating it loads them all)."""
        return _TemplateLookup(self)

    def _loaded_templates(self) -> dict[str, Any]:
        if self._templates is None:
            from dlc.spec.templates import load_template_library

            self._templates = {}
            for library in self._template_libraries:
                for name, template in load_template_library(library).items():
                    self._templates.setdefault(name, []).append(template)
        return self._templates

    @property
    def failed(self) -> list[PluginRecord]:
        # Deferred plugins loaded fine last time; those that fail when loaded later are
        # recorded here then.
        return [p for p in self._records if p.status == "failed"]

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
        position = self._order.setdefault(plugin, len(self._order))

        def by_discovery(items: list[Any]) -> None:
            items.sort(key=lambda r: self._order.get(r.plugin, position))  # stable within a plugin

        for block in records.get("dlc_block_types", []):
            self._blocks.setdefault(block.name, []).append(block)
            by_discovery(self._blocks[block.name])
        for op in records.get("dlc_ops", []):
            self._ops.setdefault(op.name, []).append(op)
            by_discovery(self._ops[op.name])
        for target in records.get("dlc_emit_targets", []):
            self._targets.setdefault(target.name, []).append(target)
            by_discovery(self._targets[target.name])
        for hook, items in (
            ("dlc_passes", self._passes),
            ("dlc_shortcut_projections", self._projections),
            ("dlc_templates", self._template_libraries),
            ("dlc_tuners", self._tuners),
            ("dlc_datasets", self._datasets),
        ):
            if records.get(hook):
                items.extend(records[hook])
                by_discovery(items)
        self._templates = None


@dataclass
class _Deferred:
    """A plugin not imported yet, and what it provided when it last loaded."""

    record: PluginRecord
    load: Any
    passes: list[tuple[int, frozenset[str]]]  # each pass's level and `needs_ops`
    names: dict[str, frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.names = {kind: frozenset(names) for kind, names in self.record.provides.items()}


class _TemplateLookup(Mapping[str, Any]):
    """Plugin templates by name, loading deferred plugins only for the names asked for."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __getitem__(self, name: str) -> Any:
        self._registry._load_providers("templates", name)
        return self._registry._loaded_templates()[name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        self._registry._load_providers("templates", name)
        return name in self._registry._loaded_templates()

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.templates())

    def __len__(self) -> int:
        return len(self._registry.templates())


def _clash_message(kind: str, name: str, plugins: list[str]) -> str:
    return f"{kind} '{name}' is provided by several plugins: " + ", ".join(f"'{p}'" for p in plugins)


def _describe_failure(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def _validate_record(hook: str, record: Any, plugin: str, builtin: bool = False) -> Any:
    """Check one record's type and basic invariants; stamp the plugin name on it.

    A built-in op's samples are not drawn here: the test suite runs every one of them (it is
    parametrized over the registry), and drawing them cost every command a few hundredths
    of a second."""
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
        if record.group is not OpGroup.SOURCE and not builtin and not list(record.samples()):
            raise ValueError(f"op '{record.name}' has no sample inputs; every op needs them")
        if record.name in {op.name for op in SOURCE_OPS}:
            raise ValueError(f"op '{record.name}' would replace a built-in source op")
    return dataclasses.replace(record, plugin=plugin)


def _collect(pm: pluggy.PluginManager, plugin_name: str, builtin: bool = False) -> dict[str, list[Any]]:
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
                _validate_record(hook_name, r, plugin_name, builtin) for r in returned
            )
    for hook_name, items in records.items():
        names = [getattr(r, "name", None) for r in items if getattr(r, "name", None)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{hook_name} returned '{duplicates[0]}' more than once")
    return records


def _provides(records: dict[str, list[Any]], templates: list[str] | None = None) -> dict[str, list[str]]:
    labels = {
        "dlc_block_types": "blocks",
        "dlc_ops": "ops",
        "dlc_passes": "passes",
        "dlc_emit_targets": "targets",
        "dlc_shortcut_projections": "projections",
        "dlc_tuners": "tuners",
        "dlc_datasets": "datasets",
    }
    provides = {
        labels[hook]: sorted(r.name for r in items) for hook, items in records.items() if hook in labels
    }
    libraries = records.get("dlc_templates", [])
    if libraries and templates is not None:
        provides["templates"] = sorted(templates)
    elif libraries:
        from dlc.spec.templates import template_names

        provides["templates"] = sorted(n for lib in libraries for n in template_names(lib))
    return provides


def _candidates(disabled: set[str]) -> Iterable[tuple[str, str, str | None, Any, str]]:
    """(name, source, version, loader, module) for built-ins, then entry points."""
    builtins = builtin_plugins()
    for name, module in builtins:
        yield name, f"builtin {module}", None, lambda module=module: importlib.import_module(module), module
    seen = {name for name, _ in builtins}
    for entry_point in sorted(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        version = entry_point.dist.version if entry_point.dist is not None else None
        yield (
            entry_point.name,
            f"entry point {entry_point.value}",
            version,
            entry_point.load,
            entry_point.module,
        )


class _PluginLoader:
    """Imports and registers plugins (at once, or later for deferred ones) with one
    pluggy manager, and keeps the plugin manifest up to date."""

    def __init__(self, manifest: PluginManifest | None) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.manifest = manifest
        self.fingerprints: dict[str, str | None] = {}
        self._dlc_signature: str | None = None

    def fingerprint(self, name: str, source: str, version: str | None, module: str) -> str | None:
        """What must be unchanged for the manifest entry of this plugin to hold."""
        from dlc.plugin_manifest import module_roots, tree_signature

        if source.startswith("builtin "):
            if self._dlc_signature is None:
                import dlc
                import dlc.plugins
                import dlc.runtime

                roots = [*dlc.__path__, *dlc.plugins.__path__, *dlc.runtime.__path__]
                self._dlc_signature = tree_signature(roots) or ""
            code = self._dlc_signature or None
        else:
            roots = module_roots(module)
            code = tree_signature(roots) if roots else None
        if code is None:
            return None
        return f"{source}|{version}|{code}"

    def load(
        self, registry: Registry, record: PluginRecord, loader: Any, templates: list[str] | None = None
    ) -> None:
        """Import and register a plugin; `templates`, when known, are the names its template
        libraries define (else they are parsed to list them)."""
        plugin_object = None
        try:
            plugin_object = loader()
            self.manager.register(plugin_object, name=record.name)
            records = _collect(self.manager, record.name, record.source.startswith("builtin "))
            record.provides = _provides(records, templates)
            registry.commit(record.name, records)
        # A plugin's failure must not take dlc down with it; that includes `sys.exit()` at
        # import, which would otherwise end dlc with the plugin's exit code, spec unchecked.
        except (Exception, SystemExit) as error:
            if plugin_object is not None and self.manager.is_registered(plugin_object):
                self.manager.unregister(plugin_object)
            record.status = "failed"
            record.error = _describe_failure(error)
            if not record.provides:
                record.provides = _attempted_names(plugin_object)
            log.warning("plugin '%s' failed to load and was skipped: %s", record.name, record.error)
            if self.manifest is not None:
                self.manifest.forget(record.name)
                self.save(registry)
            return
        if self.manifest is not None:
            passes = [(p.level, sorted(p.needs_ops)) for p in records.get("dlc_passes", [])]
            self.manifest.store(record.name, self.fingerprints.get(record.name), record.provides, passes)

    def save(self, registry: Registry) -> None:
        if self.manifest is not None:
            self.manifest.save(r.name for r in registry._records)


def load_registry(strict: bool = False, disabled: Iterable[str] | None = None) -> Registry:
    """Load every plugin and return what they provide. Plugins whose code is unchanged
    since they last loaded are deferred until a lookup needs them (not under `strict`)."""
    from dlc.plugin_manifest import PluginManifest, manifest_enabled

    disabled_set = set(disabled or ())
    disabled_set |= {p.strip() for p in os.environ.get("DLC_DISABLE_PLUGINS", "").split(",") if p.strip()}
    registry = Registry()
    manifest = PluginManifest.load() if manifest_enabled() and not strict else None
    plugin_loader = _PluginLoader(manifest)
    registry._loader = plugin_loader
    for name, source, version, loader, module in _candidates(disabled_set):
        record = PluginRecord(name, source, version)
        registry._records.append(record)
        registry._order[name] = len(registry._order)
        if name in disabled_set:
            record.status = "disabled"
            continue
        if manifest is not None:
            fingerprint = plugin_loader.fingerprint(name, source, version, module)
            plugin_loader.fingerprints[name] = fingerprint
            known = manifest.lookup(name, fingerprint)
            if known is not None:
                record.provides = {kind: list(names) for kind, names in known["provides"].items()}
                passes = [(int(level), frozenset(needs)) for level, needs in known.get("passes", [])]
                registry._deferred[name] = _Deferred(record, loader, passes)
                continue
        plugin_loader.load(registry, record, loader)
    plugin_loader.save(registry)
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
