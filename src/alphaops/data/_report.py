"""The reports of candle validation: problems (with rows and a fix) and gaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alphaops.core.errors import DataValidationError
from alphaops.core.timeframes import Timeframe
from alphaops.data.calendars import CONTINUOUS, Calendar

__all__ = ["Gap", "GapReport", "Problem", "ValidationReport"]


@dataclass(frozen=True)
class Problem:
    """One validation failure: which check, how many rows, the first few rows, and the fix."""

    check: str
    message: str
    count: int
    rows: tuple[int, ...]
    fix: str

    def describe(self) -> str:
        """Return one line: check, message, example rows and fix."""
        shown = ", ".join(str(r) for r in self.rows)
        more = "" if self.count <= len(self.rows) else f" (+{self.count - len(self.rows)} more)"
        where = f" at rows {shown}{more}" if self.rows else ""
        return f"{self.check}: {self.message}{where}; fix: {self.fix}"


@dataclass(frozen=True)
class Gap:
    """Missing candles between ``after`` (last candle before) and ``before`` (first after)."""

    after: pd.Timestamp
    before: pd.Timestamp
    missing_bars: int


@dataclass(frozen=True)
class GapReport:
    """All gaps of a series: count, total missing bars and the largest gap."""

    gaps: tuple[Gap, ...] = ()

    @property
    def count(self) -> int:
        """Return the number of gaps."""
        return len(self.gaps)

    @property
    def missing_bars(self) -> int:
        """Return the total number of missing candles."""
        return sum(g.missing_bars for g in self.gaps)

    @property
    def largest(self) -> Gap | None:
        """Return the gap with the most missing candles, or None without gaps."""
        return max(self.gaps, key=lambda g: g.missing_bars, default=None)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        largest = self.largest
        return {
            "count": self.count,
            "missing_bars": self.missing_bars,
            "largest": None
            if largest is None
            else {
                "after": largest.after.isoformat(),
                "before": largest.before.isoformat(),
                "missing_bars": largest.missing_bars,
            },
        }


@dataclass(frozen=True)
class ValidationReport:
    """The result of validating one frame: problems (errors) and gaps (information)."""

    symbol: str
    timeframe: Timeframe
    rows: int
    problems: tuple[Problem, ...] = ()
    gaps: GapReport = field(default_factory=GapReport)
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    calendar: Calendar = CONTINUOUS

    @property
    def ok(self) -> bool:
        """Return whether the frame passed every check (gaps are allowed)."""
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise :class:`DataValidationError` listing every problem, if there is any."""
        if self.problems:
            lines = "; ".join(p.describe() for p in self.problems)
            raise DataValidationError(
                f"{self.symbol} {self.timeframe}: {len(self.problems)} problem(s): {lines}",
                fix="repair the listed rows at the source (alphaops never edits candles silently)",
                problems=[p.__dict__ for p in self.problems],
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "symbol": self.symbol,
            "timeframe": str(self.timeframe),
            "calendar": str(self.calendar),
            "rows": self.rows,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "ok": self.ok,
            "problems": [p.__dict__ | {"rows": list(p.rows)} for p in self.problems],
            "gaps": self.gaps.to_dict(),
        }
