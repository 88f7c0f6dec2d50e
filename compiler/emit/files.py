"""Atomic file output: a failed write leaves no half-written file behind.

Files are written under a temporary name in the destination directory, checked, then
renamed into place with `os.replace` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dlc.errors import EmitError


@contextlib.contextmanager
def staging_directory(destination: Path) -> Iterator[Path]:
    """A temporary directory beside `destination`, removed afterwards whatever happens."""
    parent = destination.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=parent))
    except OSError as error:
        raise EmitError(f"cannot write to {parent}: {error.strerror or error}") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staged: Path, destination: Path) -> Path:
    """Move a finished staged file into place atomically."""
    try:
        os.replace(staged, destination)
    except OSError as error:
        raise EmitError(f"cannot write {destination}: {error.strerror or error}") from None
    return destination


def write_bytes_atomically(data: bytes, destination: Path) -> Path:
    with staging_directory(destination) as staging:
        staged = staging / destination.name
        staged.write_bytes(data)
        return publish(staged, destination)
