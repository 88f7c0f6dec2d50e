"""The CLI's tables: every name and number in full, whatever the terminal's width.

On a terminal a table is drawn with rich; a column too narrow for its text wraps it onto
more lines (never an ellipsis), and numeric columns keep the width of their longest
entry. Piped or redirected, the same table is printed as plain aligned rows, as wide as
they need to be, so `dlc summary ... | grep` sees whole names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

Cell = str | Text


@dataclass(frozen=True)
class Column:
    header: str
    numeric: bool = False  # right-aligned, never wrapped
    footer: str = ""


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


# A text column keeps at least this many characters (or its longest entry, if shorter)
# before it wraps: dtypes, shapes and block names stay on one line; long names wrap.
WRAP_AFTER = 24


def print_table(
    console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]
) -> None:
    """Print `rows` under `columns`: a rich table on a terminal, plain rows otherwise."""
    if console.is_terminal:
        table, needed = rich_table_and_width(title, columns, rows)
        # Wider than the terminal even with long names wrapped: draw it wider (the terminal
        # wraps the lines) rather than cut anything.
        console.print(table, width=max(console.width, needed))
    else:
        for line in plain_lines(title, columns, rows):
            console.out(line, highlight=False)


def rich_table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> Table:
    return rich_table_and_width(title, columns, rows)[0]


def rich_table_and_width(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]
) -> tuple[Table, int]:
    """The table, and the narrowest width that draws it without wrapping a short entry."""
    with_footer = any(c.footer for c in columns)
    table = Table(title=title or None, title_justify="left", show_footer=with_footer)
    needed = 1
    for index, column in enumerate(columns):
        longest = max((len(_plain(row[index])) for row in rows), default=0)
        longest = max(longest, len(column.footer), len(column.header))
        if column.numeric:
            minimum = longest
            table.add_column(
                column.header, footer=column.footer, justify="right", no_wrap=True, min_width=minimum
            )
        else:
            minimum = min(longest, WRAP_AFTER)
            table.add_column(column.header, footer=column.footer, overflow="fold", min_width=minimum)
        needed += minimum + 3  # a space each side and a border
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in row))
    return table, needed


def plain_lines(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> list[str]:
    """Aligned rows separated by two spaces; the last column is not padded."""
    with_footer = any(c.footer for c in columns)
    table = [[c.header for c in columns], *([_plain(cell) for cell in row] for row in rows)]
    if with_footer:
        table.append([c.footer for c in columns])
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = [title] if title else []
    for line in table:
        cells = []
        for i, (text, column) in enumerate(zip(line, columns, strict=True)):
            last = i == len(columns) - 1
            cells.append(text.rjust(widths[i]) if column.numeric else text if last else text.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines
