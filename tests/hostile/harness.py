"""Run one hostile input through the `dlc` command under a time and a memory cap.

A `Case` is one line of the table in `tests/hostile/cases.py`: the spec text (or other
files) to plant in an empty directory, the command-line arguments, the exit code and a
fragment of the message expected. `run_case` runs `dlc` there as a subprocess with
`RLIMIT_AS` (memory) and `RLIMIT_CPU` (time) set, plus a wall-clock timeout for inputs
that block, and `check_case` asserts what every hostile input owes the user: the expected
exit code, never a traceback or an internal error, a located message (`file:line:col`
where a spec is involved), and, when the command fails, a directory byte-identical to the
one it started in (a failed command changes nothing).
"""

from __future__ import annotations

import os
import re
import resource
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Limits for one command. Generous against a loaded machine, tight against the failures
# the suite guards (gigabytes of memory, minutes of CPU, blocking forever).
MEMORY_LIMIT_BYTES = int(os.environ.get("DLC_HOSTILE_MEMORY_MB", "1536")) * 2**20
CPU_LIMIT_SECONDS = int(os.environ.get("DLC_HOSTILE_CPU_S", "20"))
WALL_LIMIT_SECONDS = float(os.environ.get("DLC_HOSTILE_WALL_S", "60"))

SPEC = "spec.yaml"  # the name a case's `spec` text is planted under (see `Case.spec_name`)
Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One hostile input and what dlc must answer to it.

    `args` are the command-line arguments; ``{spec}`` stands for the planted spec file and
    ``{dir}`` for the case's directory (in `env` too). `files` plants more files: bytes, or a function
    that makes the file at the path it is given (a FIFO, a device node, an archive).
    `located` demands ``spec:line:col:`` in the message (default: whenever a spec is
    planted and the case expects exit 1). `changes` lists paths a successful command may
    create or change; a failed one may change none. `absent` lists paths that must be gone
    afterwards (planted leftovers the command should clean up)."""

    name: str
    args: tuple[str, ...]
    exit: int
    message: str = ""
    spec: str | bytes | None = None
    files: Mapping[str, bytes | Setup] = field(default_factory=dict)
    spec_name: str = SPEC
    located: bool | None = None
    changes: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    max_file_bytes: int | None = None  # RLIMIT_FSIZE: writes past it fail with EFBIG
    absent: tuple[str, ...] = ()  # paths that must not exist afterwards (stale leftovers)
    check: Setup | None = None  # run on the directory after a successful command
    todo: str = ""  # a known failure not fixed yet: the case is an expected failure

    @property
    def wants_location(self) -> bool:
        if self.located is not None:
            return self.located
        return self.spec is not None and self.exit == 1


@dataclass
class Outcome:
    code: int | None  # None: killed by the wall-clock limit
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float


def plant(case: Case, directory: Path) -> None:
    if case.spec is not None:
        data = case.spec.encode() if isinstance(case.spec, str) else case.spec
        (directory / case.spec_name).write_bytes(data)
    for name, content in case.files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)


def _resource_limits(case: Case) -> Callable[[], None]:
    """Runs in the child before `exec`: cap its address space, CPU time and file sizes."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_SECONDS, CPU_LIMIT_SECONDS + 1))
        if case.max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.max_file_bytes, case.max_file_bytes))

    return limit


def run_case(case: Case, directory: Path) -> Outcome:
    args = [a.replace("{spec}", case.spec_name).replace("{dir}", str(directory)) for a in case.args]
    env = {**os.environ, **{k: v.replace("{dir}", str(directory)) for k, v in case.env.items()}}
    env.pop("DLC_DEBUG", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "dlc.cli", *args],
        cwd=directory,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_resource_limits(case),
    )
    try:
        stdout, stderr = process.communicate(timeout=WALL_LIMIT_SECONDS)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        code = None
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Outcome(code, stdout.decode(errors="replace"), stderr.decode(errors="replace"), seconds, cpu)


def snapshot(directory: Path) -> dict[str, object]:
    """Every path under `directory` with its kind and, for regular files, its bytes."""
    found: dict[str, object] = {}
    for path in sorted(directory.rglob("*")):
        mode = path.lstat().st_mode
        key = str(path.relative_to(directory))
        if stat.S_ISREG(mode):
            found[key] = path.read_bytes()
        elif stat.S_ISDIR(mode):
            found[key] = "directory"
        else:
            found[key] = ("special", stat.S_IFMT(mode), path.lstat().st_rdev)
    return found


def check_case(case: Case, outcome: Outcome, before: dict[str, object], after: dict[str, object]) -> None:
    """Assert everything a hostile input owes the user; the message says what broke."""
    report = f"exit {outcome.code} in {outcome.seconds:.1f} s\n--- stderr\n{outcome.stderr[-3000:]}"
    assert outcome.code is not None, f"hung past {WALL_LIMIT_SECONDS} s\n{report}"
    assert outcome.code >= 0, f"killed by signal {-outcome.code} (CPU or memory limit?)\n{report}"
    assert "Traceback" not in outcome.stderr, report
    assert "internal error" not in outcome.stderr, report
    assert "\x1b" not in outcome.stderr, f"a raw terminal escape reached the output\n{report}"
    assert outcome.code == case.exit, f"expected exit {case.exit}\n{report}"
    assert case.message in outcome.stdout + outcome.stderr, f"expected {case.message!r}\n{report}"
    if case.wants_location:
        pattern = rf"^{re.escape(case.spec_name)}:\d+:\d+: error: "
        assert re.search(pattern, outcome.stderr, re.MULTILINE), f"no {case.spec_name}:line:col\n{report}"
    left = [path for path in case.absent if path in after]
    assert not left, f"left behind: {left}\n{report}"
    allowed = set(case.changes) | set(case.absent) if outcome.code == 0 else set()
    changed = sorted(
        key for key in set(before) | set(after) if before.get(key) != after.get(key) and key not in allowed
    )
    assert not changed, f"the command changed {changed}\n{report}"


def check_outputs(case: Case, outcome: Outcome, directory: Path) -> None:
    if case.check is not None and outcome.code == 0:
        case.check(directory)
