"""Safe file output: a failed command changes nothing, and nothing but files is replaced.

Files are written under a temporary name in a staging directory beside the destination,
checked, then renamed into place atomically (`move_into_place`). Around that:

- only an absent path or a regular file is ever replaced; a character device such as
  `/dev/null` is written to (streamed), and anything else (a directory, a FIFO, a socket)
  is refused, so running as root never turns `/dev/null` into a file;
- a write that fails (no space left, a file-size limit) is a clean `EmitError` naming the
  destination, and leaves neither the staged files nor the directories it created;
- staging directories carry the writer's process id, so one left by a killed dlc
  (SIGKILL runs no cleanup) is removed by the next dlc writing beside it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dlc.errors import EmitError

STAGING_MARK = ".dlc-staging-"

_REFUSED_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFBLK: "a block device",
}


def is_stream(destination: Path) -> bool:
    """Whether `destination` is written to rather than replaced (a character device); raises
    for what dlc must neither replace nor write to."""
    try:
        mode = destination.stat().st_mode  # follows symlinks: a link to /dev/null streams
    except FileNotFoundError:
        return False
    except OSError as error:
        raise EmitError(f"cannot write {destination}: {error.strerror or error}") from None
    if stat.S_ISREG(mode):
        return False
    if stat.S_ISCHR(mode):
        return True
    kind = _REFUSED_KINDS.get(stat.S_IFMT(mode), "a special file")
    raise EmitError(
        f"cannot write {destination}: it is not a regular file ({kind})",
        hint="name a new or regular file, or a character device such as /dev/null",
    )


def describe_write_error(error: OSError, destination: Path) -> str:
    if error.errno == errno.ENOSPC:
        return f"no space left writing {destination}"
    if error.errno == errno.EDQUOT:
        return f"disk quota exceeded writing {destination}"
    if error.errno == errno.EFBIG:
        return f"file too large writing {destination} (a file-size limit, ulimit -f, was reached)"
    return f"cannot write {destination}: {error.strerror or error}"


@contextlib.contextmanager
def staging_directory(destination: Path) -> Iterator[Path]:
    """A temporary directory beside `destination` (in the system's temporary directory when
    `destination` is a device), removed afterwards whatever happens; on failure the parent
    directories it had to create are removed too. OSErrors become `EmitError`s."""
    destination = _resolved(destination)
    created: list[Path] = []
    if is_stream(destination):
        parent = Path(tempfile.gettempdir())
    else:
        parent = destination.parent
        created = _make_directories(parent, destination)
        _remove_stale_staging(parent)
    try:
        staging = Path(
            tempfile.mkdtemp(prefix=f".{destination.name}{STAGING_MARK}{os.getpid()}-", dir=parent)
        )
    except OSError as error:
        _remove_directories(created)
        raise EmitError(f"cannot write to {parent}: {error.strerror or error}") from None
    succeeded = False
    try:
        yield staging
        succeeded = True
    except OSError as error:
        raise EmitError(describe_write_error(error, destination)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not succeeded:
            _remove_directories(created)


def publish(staged: Path, destination: Path) -> Path:
    """Move a finished staged file into place atomically (or stream it into a device)."""
    target = _resolved(destination)
    try:
        if is_stream(target):
            with staged.open("rb") as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, 2**20)
        else:
            move_into_place(staged, target)
    except OSError as error:
        raise EmitError(describe_write_error(error, destination)) from None
    return destination


def move_into_place(staged: Path, target: Path) -> None:
    """Rename `staged` to `target`, atomically: a reader of `target` sees the old file or the
    new one, never neither. Like `os.replace`, but where `target` is a regular file on
    Linux, by swapping the two names (``renameat2(RENAME_EXCHANGE)``) and then deleting the
    old file under the staged name. On ext4 a rename over an existing file first pushes the
    new file's pages to the disk (`auto_da_alloc`), a swap does not: replacing a 438 MB
    model took 0.26 s with `os.replace` and 0.09 s this way here. Elsewhere, or where the
    swap is refused, `os.replace`. Neither syncs the file to the disk, as compilers do not."""
    if not _exchange(staged, target):
        os.replace(staged, target)
        return
    displaced = os.lstat(staged).st_mode
    if not stat.S_ISREG(displaced):  # something else appeared at `target` since it was checked
        if not _exchange(staged, target):  # swap back: dlc replaces nothing but files
            os.rename(staged, target.with_name(f"{target.name}.displaced-{os.getpid()}"))  # kept, not deleted
        kind = _REFUSED_KINDS.get(stat.S_IFMT(displaced), "a special file")
        raise OSError(errno.EISDIR if stat.S_ISDIR(displaced) else errno.EINVAL, f"it became {kind}")
    os.unlink(staged)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically; False where this system cannot (not Linux, an old
    C library or kernel, a file system without the flag) or `second` does not exist."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = _get_errno()
    if code in (errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(second))


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _get_errno() -> int:
    import ctypes

    return ctypes.get_errno()


@functools.cache
def _renameat2():
    """The C library's `renameat2` (glibc 2.28 and later), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here: most commands write no file

    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def write_bytes_atomically(data: bytes, destination: Path) -> Path:
    with staging_directory(destination) as staging:
        staged = staging / destination.name
        staged.write_bytes(data)
        return publish(staged, destination)


def _resolved(destination: Path) -> Path:
    """A symlink's target, so that publishing replaces the file, not the link."""
    return Path(os.path.realpath(destination)) if destination.is_symlink() else destination


def _make_directories(parent: Path, destination: Path) -> list[Path]:
    """Create `parent` and its missing ancestors; returns those created, outermost first."""
    missing = []
    probe = parent
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_directories(list(reversed(missing)))
        raise EmitError(f"cannot write {destination}: {error.strerror or error} ({parent})") from None
    return list(reversed(missing))


def _remove_directories(created: list[Path]) -> None:
    for directory in reversed(created):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only if still empty


def _remove_stale_staging(parent: Path) -> None:
    """Remove staging directories whose dlc process is gone (killed before cleaning up)."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if STAGING_MARK not in entry.name or not entry.name.startswith("."):
            continue
        owner = entry.name.rpartition(STAGING_MARK)[2].partition("-")[0]
        if not owner.isdigit() or _process_alive(int(owner)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
