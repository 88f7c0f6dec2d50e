"""Where dlc keeps what it learns about this machine and installation between runs (the
conv cost calibration of `dlc tune`, the plugin manifest of `dlc.plugin_manifest`)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_directory() -> Path:
    """$DLC_CACHE_DIR, else the platform's user cache directory."""
    if os.environ.get("DLC_CACHE_DIR"):
        return Path(os.environ["DLC_CACHE_DIR"])
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "dlc" / "Cache"
    if os.uname().sysname == "Darwin":
        return Path.home() / "Library" / "Caches" / "dlc"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlc"
