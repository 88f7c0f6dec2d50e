"""The CLI's tables: every name and number in full, whatever the terminal's width.

On a terminal a table is drawn with rich; a column too narrow for its text wraps it onto
more lines (never an ellipsis), and numeric columns keep the width of their longest
entry. Piped or redirected, the same table is printed as plain aligned rows, as wide as
they need to be, so `dlc summary ... | grep` sees whole names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

# rich is imported where a table is drawn: `dlc validate` never draws one.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

Cell: TypeAlias = "str | Text"


@dataclass(frozen=True)
class Column:
    header: str
    numeric: bool = False  # right-aligned, never wrapped
    footer: str = ""


def _plain(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell.plain


# A text column keeps at least this many characters (or its longest entry, if shorter)
# before it wraps: dtypes, shapes and block names stay on one line; long names wrap. On a
# narrow terminal the widest text columns give way, down to SHORTEST_TEXT characters.
WRAP_AFTER = 24
SHORTEST_TEXT = 10


def print_table(
    console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]
) -> None:
    """Print `rows` under `columns`: a rich table on a terminal, plain rows otherwise."""
    if console.is_terminal:
        table, needed = rich_table_and_width(title, columns, rows, console.width)
        # Wider than the terminal even with text wrapped: draw it wider (the terminal wraps
        # the lines) rather than cut anything.
        console.print(table, width=max(console.width, needed))
    else:
        for line in plain_lines(title, columns, rows):
            console.out(line, highlight=False)


def rich_table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> Table:
    return rich_table_and_width(title, columns, rows)[0]


def rich_table_and_width(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int | None = None
) -> tuple[Table, int]:
    """The table for a terminal `width` columns wide, and the width it needs at least."""
    from rich.table import Table
    from rich.text import Text

    longest = [
        max([len(_plain(row[i])) for row in rows] + [len(c.footer), len(c.header)])
        for i, c in enumerate(columns)
    ]
    minimum = [n if c.numeric else min(n, WRAP_AFTER) for n, c in zip(longest, columns, strict=True)]
    border = 1 + 3 * len(columns)  # a space each side of a cell and a rule between cells
    while width is not None and sum(minimum) + border > width:
        shrinkable = [
            i for i, c in enumerate(columns) if not c.numeric and minimum[i] > min(longest[i], SHORTEST_TEXT)
        ]
        if not shrinkable:
            break
        minimum[max(shrinkable, key=lambda i: minimum[i])] -= 1
    with_footer = any(c.footer for c in columns)
    table = Table(title=title or None, title_justify="left", show_footer=with_footer)
    for column, least in zip(columns, minimum, strict=True):
        if column.numeric:
            table.add_column(
                column.header, footer=column.footer, justify="right", no_wrap=True, min_width=least
            )
        else:
            table.add_column(column.header, footer=column.footer, overflow="fold", min_width=least)
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in row))
    return table, sum(minimum) + border


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
