"""Read a spec file's text safely: a regular file, at most `MAX_SPEC_BYTES`, UTF-8, printable.

A spec path may name anything: a FIFO that blocks forever, `/dev/zero` that never ends, a
directory, a UTF-16 file from a Windows editor. Each is refused here with a located error
before YAML sees a byte, and the read is capped so no file can eat the machine's memory.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from dlc.errors import Location, SpecError

# 150 times the largest spec shipped (7 KB); a hand-written architecture is far below it.
# Raise it with DLC_MAX_SPEC_BYTES for generated specs.
DEFAULT_MAX_SPEC_BYTES = 2**20

# What YAML 1.1 refuses (PyYAML's Reader.NON_PRINTABLE): C0 controls but tab, LF and CR,
# DEL and C1 controls but NEL, surrogates, and U+FFFE/U+FFFF.
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FOREIGN_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)
_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def max_spec_bytes() -> int:
    text = os.environ.get("DLC_MAX_SPEC_BYTES", "")
    return int(text) if text.isdigit() else DEFAULT_MAX_SPEC_BYTES


def read_spec_text(path: Path) -> str:
    """The text of the spec file at `path`, or a `SpecError` that says why not."""
    return decode_spec_bytes(_read_regular_file(path), str(path))


def _read_regular_file(path: Path) -> bytes:
    limit = max_spec_bytes()
    where = Location(str(path))
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}", location=where) from None
    except IsADirectoryError:
        raise SpecError(f"{path} is a directory, not a spec file", location=where) from None
    except OSError as error:
        raise SpecError(f"cannot read spec file {path}: {error.strerror or error}", location=where) from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        if stat.S_ISDIR(mode):
            raise SpecError(f"{path} is a directory, not a spec file", location=where)
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "a special file")
        raise SpecError(
            f"{path} is not a regular file ({kind}); dlc reads specs from regular files only",
            location=where,
        )
    with os.fdopen(descriptor, "rb") as file:
        try:
            data = file.read(limit + 1)
        except OSError as error:
            raise SpecError(
                f"cannot read spec file {path}: {error.strerror or error}", location=where
            ) from None
    if len(data) > limit:
        line = data.count(b"\n", 0, limit) + 1
        column = limit - (data.rfind(b"\n", 0, limit) + 1) + 1
        raise SpecError(
            f"spec file is larger than {limit:,} bytes (the limit is passed here)",
            location=Location(str(path), line, column),
            hint="a spec describes an architecture, not data; set DLC_MAX_SPEC_BYTES to raise the limit",
        )
    return data


def decode_spec_bytes(data: bytes, file: str) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped) or a located error."""
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise SpecError(
                f"spec files must be UTF-8; this one starts with a {encoding} byte-order mark",
                location=Location(file, 1, 1),
                hint="save the file as UTF-8",
            )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = data.count(b"\n", 0, error.start) + 1
        column = len(data[line_start : error.start].decode("utf-8", errors="replace")) + 1
        raise SpecError(
            f"spec files must be UTF-8; byte 0x{data[error.start]:02x} is not valid UTF-8 here",
            location=Location(file, line, column),
            hint="save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def check_printable(text: str, file: str) -> None:
    """Refuse NUL and control characters with their line and column (YAML forbids them)."""
    found = _NOT_PRINTABLE.search(text)
    if found is None:
        return
    line = text.count("\n", 0, found.start()) + 1
    column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    character = found.group()
    name = "a NUL character" if character == "\0" else f"the control character U+{ord(character):04X}"
    raise SpecError(
        f"{name} is not allowed in a spec",
        location=Location(file, line, column),
        hint='write it as an escape inside a double-quoted string ("\\x07"), or remove it',
    )
