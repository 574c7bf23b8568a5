"""What both importers share: the report, and applying checked fills through the journal."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alphaops.core.errors import (
    AlphaOpsError,
)
from alphaops.journal._journal import Journal
from alphaops.journal._records import Fill, Side, decision_of_order

__all__ = ["DECISION_ID", "Applier", "ImportReport", "PlannedFill", "Skipped"]

DECISION_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{12}-[0-9a-f]{1,16})(?![0-9a-f])")


@dataclass(frozen=True)
class Skipped:
    """Something an importer left out (a trade that no journaled decision opened), and why."""

    what: str
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """What an import did: rows read, fills journaled, repeats ignored, trips closed, skips."""

    source: str
    rows: int
    imported: int
    """Fills written (in a dry run: fills that would be written)."""
    duplicates: int
    """Fills already in the journal, ignored."""
    round_trips: int
    """Round trips the new fills closed (in a dry run: would close)."""
    skipped: tuple[Skipped, ...] = ()
    dry_run: bool = False

    def summary(self) -> str:
        """Return one line for people: ``fills.csv: 4 rows, 4 imported, … 0 skipped``."""
        counts = (
            f"{self.rows} rows, {self.imported} imported, {self.duplicates} duplicates, "
            f"{self.round_trips} round trips, {len(self.skipped)} skipped"
        )
        dry = " (dry run: nothing written)" if self.dry_run else ""
        return f"{Path(self.source).name}: {counts}{dry}"

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class PlannedFill:
    """The arguments of one :meth:`Journal.record_fill` call."""

    side: Side
    qty: float
    price: float
    at: datetime
    book: str
    symbol: str | None = None
    decision_id: str | None = None
    client_order_id: str | None = None
    fee: float = 0.0
    funding: float = 0.0
    exchange_order_id: str | None = None
    exchange_trade_id: str | None = None
    reason: str = ""


@dataclass
class Applier:
    """Feed fills to the journal (in a dry run: count what it would do) and keep the tally."""

    journal: Journal
    source: str
    dry_run: bool
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    round_trips: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seen: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)
    positions: dict[tuple[str, str], float] = field(default_factory=dict)

    def report(self) -> ImportReport:
        counts = (self.rows, self.imported, self.duplicates, self.round_trips)
        return ImportReport(self.source, *counts, tuple(self.skipped), self.dry_run)

    def apply(self, fill: PlannedFill, where: str) -> None:
        try:
            if self.dry_run:
                self._simulate(fill)
                return
            result = self.journal.record_fill(**asdict(fill))
        except AlphaOpsError as exc:
            kept = "were counted" if self.dry_run else "are journaled"
            done = f"{self.imported} new and {self.duplicates} repeated fills before it {kept}"
            raise type(exc)(
                f"{self.source}, {where}: {exc.message}; the import stopped there ({done})",
                fix=f"{exc.fix or 'repair it'}; then import again (kept fills count as repeats)",
                **{**exc.details, "report": self.report()},
            ) from exc
        self.duplicates += result.duplicate
        self.imported += not result.duplicate
        self.round_trips += result.round_trip is not None

    def _simulate(self, fill: PlannedFill) -> None:
        # Write nothing: check the decision, spot repeats as the journal's fill key does, and
        # follow the position to count the round trips the new fills would close.
        decision_id = fill.decision_id or decision_of_order(fill.client_order_id or "")
        symbol = self.journal.decision(decision_id).symbol if decision_id else fill.symbol
        assert symbol is not None  # parsing and matching guarantee a symbol or a decision
        if fill.book not in self.seen:
            old = self.journal.fills(book=fill.book)
            self.seen[fill.book] = {_identity(f, f.symbol, f.decision_id) for f in old}
        identity = _identity(fill, symbol, decision_id)
        if identity in self.seen[fill.book]:
            self.duplicates += 1
            return
        self.seen[fill.book].add(identity)
        self.imported += 1
        spot = (fill.book, symbol)
        if spot not in self.positions:
            self.positions[spot] = self.journal.open_position(symbol, book=fill.book)
        before = self.positions[spot]
        after = before + (fill.qty if fill.side == "buy" else -fill.qty)
        after = 0.0 if abs(after) <= 1e-9 * max(fill.qty, abs(before), 1.0) else after
        self.positions[spot] = after
        self.round_trips += before != 0.0 and after == 0.0


def _identity(fill: Fill | PlannedFill, symbol: str, decision_id: str | None) -> tuple[Any, ...]:
    if fill.exchange_trade_id is not None:
        return (symbol, fill.exchange_trade_id)
    figures = (fill.client_order_id, fill.at.astimezone(UTC), fill.side, fill.qty, fill.price)
    return (symbol, decision_id, *figures)


# -- CSV ------------------------------------------------------------------------------------
