"""What each plugin provided the last time it was loaded, so that the registry can defer
importing a plugin until a spec names one of its blocks, ops, templates or targets.

The manifest is a JSON file in the user cache directory. An entry is used only while the
plugin's *fingerprint* is unchanged: its name, where it comes from (built-in module or
entry point), its distribution version, and the size and modification time of every file
of its code (for built-ins, every file of dlc itself). A plugin that is installed,
upgraded, edited or removed therefore gets a new fingerprint or no entry, and is imported
and inspected afresh; entry points are always enumerated anew, so a newly installed
plugin is never missed. Plugins that failed to load are never recorded, so they are
retried (and warned about) on every run. ``DLC_PLUGIN_CACHE=0`` turns the manifest off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterable
from importlib import util
from pathlib import Path
from typing import Any

from dlc.user_cache import cache_directory

log = logging.getLogger("dlc.plugins")

MANIFEST_FILE = "plugin-manifest.json"
FORMAT = 2  # 2: each pass's level and needed ops, not the levels alone


def manifest_enabled() -> bool:
    return os.environ.get("DLC_PLUGIN_CACHE", "1") not in ("0", "false", "no", "off")


def tree_signature(roots: Iterable[str | Path]) -> str | None:
    """A digest of the relative path, size and modification time of every file under
    `roots` (files or folders; bytecode caches skipped); None when a root is missing."""
    entries: list[str] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            stat = root.stat()
            entries.append(f"{root}|{stat.st_size}|{stat.st_mtime_ns}")
            continue
        if not root.is_dir():
            return None
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                entries.append(f"{path}|{stat.st_size}|{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def module_roots(module: str) -> list[str] | None:
    """The files of the top-level package (or module) that `module` belongs to, found
    without importing it; None when they cannot be told (then nothing is cached)."""
    top = module.split(".", 1)[0]
    try:
        spec = util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)
    return [spec.origin] if spec.origin and os.path.isfile(spec.origin) else None


class PluginManifest:
    """The manifest file, read once per registry load and written back when it changed."""

    def __init__(self, path: Path, entries: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.entries = entries
        self.changed = False

    @classmethod
    def load(cls) -> PluginManifest:
        from dlc import __version__

        path = cache_directory() / MANIFEST_FILE
        entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if (
                data.get("format") == FORMAT
                and data.get("python") == sys.version
                and data.get("dlc") == __version__
            ):
                entries = dict(data.get("plugins", {}))
        except (OSError, ValueError, AttributeError):
            pass  # no manifest yet, or an unreadable one: every plugin is imported
        return cls(path, entries)

    def lookup(self, name: str, fingerprint: str | None) -> dict[str, Any] | None:
        """What `name` provided when it had this fingerprint, or None."""
        entry = self.entries.get(name)
        if fingerprint is None or entry is None or entry.get("fingerprint") != fingerprint:
            return None
        return entry

    def store(
        self,
        name: str,
        fingerprint: str | None,
        provides: dict[str, list[str]],
        passes: list[tuple[int, list[str]]],
    ) -> None:
        """Record a loaded plugin: what it provides, and its passes' levels and needed ops."""
        if fingerprint is None:
            return
        entry = {"fingerprint": fingerprint, "provides": provides, "passes": [list(p) for p in passes]}
        if self.entries.get(name) != entry:
            self.entries[name] = entry
            self.changed = True

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.changed = True

    def save(self, names: Iterable[str]) -> None:
        """Write the entries of `names` (the plugins that exist now) if anything changed."""
        import tempfile

        from dlc import __version__

        keep = set(names)
        stale = set(self.entries) - keep
        if not self.changed and not stale:
            return
        data = {
            "format": FORMAT,
            "dlc": __version__,
            "python": sys.version,
            "plugins": {n: e for n, e in sorted(self.entries.items()) if n in keep},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, prefix=".manifest-", suffix=".tmp", delete=False, encoding="utf-8"
            ) as stream:
                json.dump(data, stream, indent=1, sort_keys=True)
            os.replace(stream.name, self.path)  # atomic: a concurrent reader sees old or new
            self.changed = False
        except OSError as error:
            log.debug("could not write the plugin manifest %s: %s", self.path, error)
