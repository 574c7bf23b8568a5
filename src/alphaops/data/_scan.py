"""Block-by-block scans behind :func:`~alphaops.data.candles.validate_frame`.

Each check looks at :data:`BLOCK_ROWS` rows at a time, so its temporaries stay a few MB
however long the series is: a 200 MB file is validated in about the memory of its candles.
A scan gathers, per check, how many rows failed and the first few of them (:class:`Hits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alphaops.core.timeframes import Timeframe
from alphaops.data.calendars import Calendar

__all__ = [
    "BLOCK_ROWS",
    "NAT",
    "Hits",
    "TimeScan",
    "epoch_ms",
    "exact_ms",
    "scan_calendar",
    "scan_prices",
    "scan_times",
]

# Rows checked at a time (8 MB per int64/float64 temporary).
BLOCK_ROWS = 1 << 20
# NaT as an int64 epoch value, in every unit.
NAT = np.iinfo(np.int64).min
SHOWN = 5

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass
class Hits:
    """Rows one check flagged: their count and the first :data:`SHOWN` positions."""

    count: int = 0
    rows: list[int] = field(default_factory=list)

    def take(self, mask: np.ndarray[Any, np.dtype[np.bool_]], start: int) -> None:
        """Add the rows of ``mask`` (a block whose first row is ``start``)."""
        idx = np.flatnonzero(mask)
        self.count += int(idx.size)
        if len(self.rows) < SHOWN:
            self.rows.extend(int(start + i) for i in idx[: SHOWN - len(self.rows)])

    @classmethod
    def of(cls, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> Hits:
        """Return the hits of a whole-series mask."""
        hits = cls()
        hits.take(mask, 0)
        return hits


@dataclass
class TimeScan:
    """What the timestamp checks found; diffs are to the previous row (row 0 has none)."""

    missing: Hits = field(default_factory=Hits)
    off_grid: Hits = field(default_factory=Hits)
    future: Hits = field(default_factory=Hits)
    unsorted: Hits = field(default_factory=Hits)
    repeats: Hits = field(default_factory=Hits)  # diff == 0
    closer: Hits = field(default_factory=Hits)  # 0 < diff < step
    coarser: Hits = field(default_factory=Hits)  # diff > step
    positive: int = 0
    max_within: int | None = None  # largest diff in (0, step]
    min_beyond: int | None = None  # smallest diff > step

    def median_beyond_step(self, step_ms: int) -> bool | None:
        """Return whether the median positive diff exceeds ``step_ms``, None when only the
        median itself can tell (the two middle diffs straddle the step)."""
        n, k = self.positive, self.coarser.count
        if 2 * k > n + 1 or (n % 2 == 1 and 2 * k == n + 1):
            return True
        if 2 * k < n:
            return False
        if self.max_within is None or self.min_beyond is None:
            return None
        middle = np.array([self.max_within, self.min_beyond], dtype=np.int64)
        return float(np.median(middle)) > step_ms


def scan_times(values: IntArray, *, step_ms: int, origin: int, latest: int) -> TimeScan:
    """Scan epoch-millisecond open times (NaT as :data:`NAT`) block by block."""
    scan = TimeScan()
    n = int(values.size)
    for lo in range(0, n, BLOCK_ROWS):
        hi = min(lo + BLOCK_ROWS, n)
        block = values[lo:hi]
        scan.missing.take(block == NAT, lo)
        scan.off_grid.take((block - origin) % step_ms != 0, lo)
        scan.future.take(block > latest, lo)
        start = max(lo, 1)
        if start >= hi:
            continue
        diffs = values[start:hi] - values[start - 1 : hi - 1]
        scan.unsorted.take(diffs < 0, start)
        scan.repeats.take(diffs == 0, start)
        positive = diffs > 0
        beyond = diffs > step_ms
        scan.closer.take(positive & (diffs < step_ms), start)
        scan.coarser.take(beyond, start)
        scan.positive += int(np.count_nonzero(positive))
        within = diffs[positive & ~beyond]
        if within.size:
            top = int(within.max())
            scan.max_within = top if scan.max_within is None else max(scan.max_within, top)
        over = diffs[beyond]
        if over.size:
            low = int(over.min())
            scan.min_beyond = low if scan.min_beyond is None else min(scan.min_beyond, low)
    return scan


def scan_prices(
    o: FloatArray, h: FloatArray, lo_: FloatArray, c: FloatArray, v: FloatArray
) -> tuple[Hits, Hits, Hits, Hits]:
    """Return the rows that are not finite, have a price <= 0, a negative volume, and a high or
    low inconsistent with open and close."""
    not_finite, non_positive, negative, inconsistent = Hits(), Hits(), Hits(), Hits()
    n = int(o.size)
    with np.errstate(invalid="ignore"):
        for lo in range(0, n, BLOCK_ROWS):
            sl = slice(lo, min(lo + BLOCK_ROWS, n))
            bo, bh, bl, bc, bv = o[sl], h[sl], lo_[sl], c[sl], v[sl]
            finite = np.isfinite(bo) & np.isfinite(bh) & np.isfinite(bl)
            finite &= np.isfinite(bc) & np.isfinite(bv)
            not_finite.take(~finite, lo)
            non_positive.take((bo <= 0) | (bh <= 0) | (bl <= 0) | (bc <= 0), lo)
            negative.take(bv < 0, lo)
            inconsistent.take((bh < np.maximum(bo, bc)) | (bl > np.minimum(bo, bc)), lo)
    return not_finite, non_positive, negative, inconsistent


def scan_calendar(
    calendar: Calendar, values: IntArray, timeframe: Timeframe
) -> tuple[Hits, Sequence[tuple[int, int]]]:
    """Return the candles off the calendar's sessions, and ``(row, missing bars)`` for each
    gap after ``row``; ``values`` must be sorted and unique."""
    off = Hits()
    gaps: list[tuple[int, int]] = []
    n = int(values.size)
    for lo in range(0, max(n - 1, 1), BLOCK_ROWS):
        # Blocks overlap by one candle so that every consecutive pair lies in one block.
        hi = min(lo + BLOCK_ROWS, n - 1)
        missing, outside = calendar.missing_between(values[lo : hi + 1], timeframe)
        last = hi == n - 1
        outside = outside if last else outside[outside < hi - lo]
        off.take(_positions_mask(outside, hi + 1 - lo), lo)
        where = np.flatnonzero(missing > 0)
        gaps.extend((int(lo + i), int(missing[i])) for i in where)
    return off, gaps


def epoch_ms(ts: pd.Series[Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return open times as int64 epoch ms (NaT as :data:`NAT`): a view when stored in ms."""
    return ts.to_numpy(dtype="datetime64[ms]").view(np.int64)


def exact_ms(ts: pd.Series[Any]) -> bool:
    """Return whether no timestamp has a part finer than a millisecond."""
    unit = getattr(ts.dtype, "unit", "ns")
    if unit in ("s", "ms"):
        return True
    per_ms = {"us": 1_000, "ns": 1_000_000}[unit]
    raw = ts.to_numpy(dtype=f"datetime64[{unit}]").view(np.int64)
    return all(
        not np.any(raw[lo : lo + BLOCK_ROWS] % per_ms) for lo in range(0, raw.size, BLOCK_ROWS)
    )


def _positions_mask(positions: IntArray, size: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    mask = np.zeros(size, dtype=bool)
    mask[positions] = True
    return mask
