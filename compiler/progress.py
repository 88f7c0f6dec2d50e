"""Progress on long work: a bar or spinner on stderr while dlc draws and writes weights,
loads a model into ONNX Runtime, or measures in `dlc tune`.

Off unless the CLI turns it on, and the CLI turns it on only when stderr is a terminal:
piped or redirected output, and library use, never see an escape code. Tasks may nest (a
compile inside `dlc run`); they share one live display, since rich allows only one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

_console: Any = None  # a rich Console on stderr, when enabled
_live: Any = None  # the rich Progress shown while at least one task runs
_open_tasks = 0


def enable_on_terminal() -> bool:
    """Show progress from now on if stderr is a terminal; returns whether it will."""
    global _console
    # Not a terminal, and no variable making rich treat pipes as one: rich is not needed.
    forced = ("FORCE_COLOR", "TTY_INTERACTIVE", "TTY_COMPATIBLE")
    terminal = sys.stderr is not None and sys.stderr.isatty()
    if not terminal and not any(os.environ.get(name) for name in forced):
        _console = None
        return False
    from rich.console import Console

    console = Console(stderr=True)
    _console = console if console.is_terminal else None
    return _console is not None


def disable() -> None:
    global _console
    _console = None


@contextlib.contextmanager
def task(description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
    """A progress line for the duration of the block: a bar when `total` is known (advance
    it with the callable this yields), else a spinner. A no-op when progress is off."""
    global _live, _open_tasks
    if _console is None:
        yield ignore
        return
    if _live is None:
        _live = _new_progress(_console)
        _live.start()
    _open_tasks += 1
    task_id = _live.add_task(description, total=total)
    progress = _live
    try:
        yield lambda amount: progress.advance(task_id, amount)
    finally:
        progress.remove_task(task_id)
        _open_tasks -= 1
        if _open_tasks == 0:
            progress.stop()
            _live = None


@contextlib.contextmanager
def status_task(description: str, total: float | None = None) -> Iterator[Callable[[float, str], None]]:
    """Like `task`, with a status after the description that each advance may change
    (`dlc train`: the loss and the throughput). A no-op when progress is off."""
    if _console is None:
        yield ignore_status
        return
    with task(description, total):
        progress, task_id = _live, _live.task_ids[-1]

        def advance(amount: float, status: str) -> None:
            progress.update(task_id, advance=amount, description=f"{description} {status}")

        yield advance


def ignore_status(amount: float, status: str) -> None:
    """The advance callback of `status_task` when progress is off."""


def ignore(amount: float) -> None:
    """The advance callback when progress is off."""


def _new_progress(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # gone when done: the command's own output stays clean
    )
