"""Records (rows of named fields) printed so that no ref, path or verdict is ever cut.

Three layouts, chosen from the console the command prints to:

- a terminal wide enough: a table; only the free-text columns named ``wrap`` may wrap, at
  spaces, and never narrower than their longest word;
- a narrower terminal (80 columns, a split pane): one block per record, ``field: value``
  lines, every value whole;
- not a terminal (piped, redirected, CI): plain text without colours or box drawing, a
  header line and one tab-separated line per record, for ``grep``, ``cut`` and ``awk``.

A cell is plain text (a ``str`` is never read as markup, so a reason with brackets prints as
written) or a :class:`rich.text.Text` with colours, which the plain layout drops.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

__all__ = ["Cell", "Records", "print_records", "verdict"]

Cell = str | Text

_WRAP_MIN = 12  # a wrapping column gets at least this many cells (or its longest word)


@dataclass
class Records:
    """Rows of cells under named columns, built like a table and printed by the console."""

    columns: Sequence[str]
    title: str | None = None
    wrap: Collection[str] = ()
    """Free-text columns (reasons, explanations) that may wrap at spaces in a table."""
    rows: list[tuple[Cell, ...]] = field(default_factory=list)

    def add_row(self, *cells: Cell) -> None:
        """Append one record; give one cell per column."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(tuple(cells))


def print_records(console: Console, records: Records) -> None:
    """Print ``records`` as a table, as ``field: value`` blocks, or as plain lines (see above)."""
    if not console.is_terminal:
        _print_plain(console, records)
    elif _table_width(records) <= console.width:
        console.print(_table(records))
    else:
        _print_vertical(console, records)


def verdict(passed: bool | None, yes: str = "PASS", no: str = "FAIL") -> Text:
    """Return a green ``PASS`` or red ``FAIL`` cell (``—`` when ``passed`` is None)."""
    if passed is None:
        return Text("—")
    return Text(yes, style="green") if passed else Text(no, style="red")


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _natural_widths(records: Records) -> list[int]:
    return [
        max([cell_len(name), *(cell_len(_plain(row[i])) for row in records.rows)])
        for i, name in enumerate(records.columns)
    ]


def _min_wrap_width(records: Records, index: int, natural: int) -> int:
    words = [w for row in records.rows for w in _plain(row[index]).split()]
    longest = max((cell_len(w) for w in words), default=0)
    return max(longest, cell_len(records.columns[index]), min(natural, _WRAP_MIN))


def _table_width(records: Records) -> int:
    total = 1  # the left border; each column adds its padding (2) and a border (1)
    for i, (name, natural) in enumerate(
        zip(records.columns, _natural_widths(records), strict=True)
    ):
        width = _min_wrap_width(records, i, natural) if name in records.wrap else natural
        total += width + 3
    return total


def _table(records: Records) -> Table:
    columns = []
    for i, (name, natural) in enumerate(
        zip(records.columns, _natural_widths(records), strict=True)
    ):
        if name in records.wrap:
            columns.append(Column(name, min_width=_min_wrap_width(records, i, natural)))
        else:
            columns.append(Column(name, no_wrap=True, min_width=natural))
    table = Table(*columns, title=None if records.title is None else Text(records.title))
    for row in records.rows:
        table.add_row(*(_text(cell) for cell in row))
    return table


def _print_vertical(console: Console, records: Records) -> None:
    if records.title:
        console.print(Text(records.title, style="bold"), soft_wrap=True)
    key_width = max(cell_len(name) for name in records.columns)
    for n, row in enumerate(records.rows):
        if n or records.title:
            console.print()
        for name, cell in zip(records.columns, row, strict=True):
            line = Text(f"{name:<{key_width}}: ", style="bold")
            line.append_text(_text(cell))
            # soft_wrap: a long value runs on (the terminal wraps it); nothing is cut or
            # broken by an inserted newline, so a path or ref can be copied whole.
            console.print(line, soft_wrap=True, highlight=False)


def _print_plain(console: Console, records: Records) -> None:
    lines = [] if records.title is None else [records.title]
    lines.append("\t".join(records.columns))
    lines += ["\t".join(_plain(cell) for cell in row) for row in records.rows]
    # Written as is: Rich would expand the tabs into spaces.
    console.file.write("".join(line + "\n" for line in lines))
