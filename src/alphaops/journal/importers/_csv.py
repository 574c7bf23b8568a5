"""Import a CSV of fills (see :func:`import_fills_csv`)."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from alphaops.core.errors import (
    DataFormatError,
    DataValidationError,
    NotFoundError,
)
from alphaops.journal._journal import Journal
from alphaops.journal._records import decision_of_order
from alphaops.journal.importers._common import Applier, ImportReport, PlannedFill

__all__ = ["CSV_OPTIONAL", "CSV_REQUIRED", "import_fills_csv"]

CSV_REQUIRED = ("time", "side", "qty", "price")
"""The columns a CSV of fills must have (see :func:`import_fills_csv`)."""
CSV_OPTIONAL: tuple[str, ...] = ("fee", "funding", "symbol", "decision_id", "client_order_id")
CSV_OPTIONAL += ("exchange_order_id", "exchange_trade_id", "reason", "book")
"""The columns a CSV of fills may have."""


def import_fills_csv(
    journal: Journal,
    path: str | Path,
    *,
    book: str = "default",
    symbol: str | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import a CSV of fills (a header, then one fill a row) into ``journal`` in file order.

    ``time`` (ISO-8601 with a zone, or epoch milliseconds), ``side`` (buy/sell, any case),
    ``qty`` and ``price`` are required; the other :data:`CSV_OPTIONAL` columns may be there (empty
    ``book``/``symbol`` cells take the arguments). Unknown columns refuse the file.

    The whole file is checked first: bad cells refuse it, nothing written, with a
    :class:`~alphaops.core.errors.DataValidationError` naming each line (the header is line
    1), column and value. What only the journal finds (an unknown decision, a flip, a fill
    out of order) stops the import at that line with the journal's error; the fills before
    it stay journaled (``error.details["report"]``) and count as repeats when the repaired
    file is imported again. ``dry_run=True`` checks the file and the decisions it names and
    counts what would happen, writing nothing.
    """
    source = Path(path)
    problems: list[str] = []
    rows = 0
    for line, cells in _csv_records(source):
        rows += 1
        try:
            _csv_fill(cells, book, symbol)
        except DataValidationError as exc:
            problems.append(f"line {line}, {exc.message}")
    if problems:
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise DataValidationError(
            f"{source}: {len(problems)} bad rows, nothing imported: {'; '.join(problems[:5])}{more}",
            fix="repair the listed cells and import the file again",
            problems=problems[:100],
        )
    applier = Applier(journal, str(source), dry_run, rows=rows)
    for line, cells in _csv_records(source):  # a second pass: the file is never held in memory
        applier.apply(_csv_fill(cells, book, symbol), f"line {line}")
    return applier.report()


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise NotFoundError(f"no CSV file at {path}", fix="pass the path of a CSV of fills")
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream)
        header = [name.strip().lower() for name in next(reader, [])]
        unknown = [n for n in header if n not in CSV_REQUIRED + CSV_OPTIONAL or header.count(n) > 1]
        missing = [n for n in CSV_REQUIRED if n not in header]
        if unknown or missing:
            names = f"{', '.join(CSV_REQUIRED)}, and optionally {', '.join(CSV_OPTIONAL)}"
            raise DataFormatError(
                f"{path}: the header has unknown or repeated columns {unknown} and lacks "
                f"the required columns {missing}",
                fix=f"name the columns among: {names}",
            )
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):  # a short row only leaves trailing cells empty
                yield reader.line_num, {"": f"{len(cells)} cells for {len(header)} columns"}
                continue
            cells += [""] * (len(header) - len(cells))
            yield reader.line_num, {n: c.strip() for n, c in zip(header, cells, strict=True)}


def _csv_fill(cells: dict[str, str], book: str, symbol: str | None) -> PlannedFill:
    if "" in cells:
        raise DataValidationError(f"the row has {cells['']}", fix="quote cells holding commas")
    side = cells["side"].lower()
    if side not in ("buy", "sell"):
        raise DataValidationError(f"column side: {cells['side']!r}", fix="write buy or sell")
    ids = ("decision_id", "client_order_id", "exchange_order_id", "exchange_trade_id")
    fill = PlannedFill(
        side="buy" if side == "buy" else "sell",
        qty=_cell_number(cells, "qty", positive=True),
        price=_cell_number(cells, "price", positive=True),
        at=_cell_time(cells["time"]),
        book=cells.get("book") or book,
        symbol=cells.get("symbol") or symbol,
        fee=_cell_number(cells, "fee", positive=False),
        funding=_cell_number(cells, "funding", positive=False),
        reason=cells.get("reason", ""),
        **{name: cells.get(name) or None for name in ids},
    )
    named = fill.decision_id or decision_of_order(fill.client_order_id or "")
    if fill.symbol is None and named is None:
        raise DataValidationError(
            "column symbol: empty, and the row names no decision",
            fix="fill the symbol column, pass symbol=…, or name the fill's decision",
        )
    return fill


def _cell_number(cells: dict[str, str], name: str, *, positive: bool) -> float:
    text = cells.get(name, "")
    try:
        number = 0.0 if not text and not positive else float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or (positive and number <= 0):
        need = "a positive number" if positive else "a finite number"
        raise DataValidationError(f"column {name}: {text!r} is not {need}", fix=f"write {need}")
    return number


def _cell_time(text: str) -> datetime:
    fix = "write e.g. 2025-01-01T12:00:00Z, 2025-01-01T12:00:00+00:00 or epoch milliseconds"
    if re.fullmatch(r"\d+(\.\d+)?", text):
        if float(text) < 1e11:  # before 1973 in milliseconds: surely epoch seconds
            raise DataValidationError(f"column time: {text!r} looks like epoch seconds", fix=fix)
        try:
            return datetime.fromtimestamp(float(text) / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise DataValidationError(
                f"column time: {text!r} is out of range as epoch milliseconds", fix=fix
            ) from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise DataValidationError(f"column time: {text!r} is not a time", fix=fix) from None
    if when.tzinfo is None:
        raise DataValidationError(f"column time: {text!r} has no time zone", fix=fix)
    return when.astimezone(UTC)


# -- freqtrade ------------------------------------------------------------------------------
