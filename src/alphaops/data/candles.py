"""The canonical candle frame and its validation.

Every reader, the store, the feature pipeline and the dataset builder speak one format: a
:class:`Candles` object holding a symbol, a timeframe and a frame with exactly the columns
``timestamp`` (``datetime64[ms, UTC]``, candle **open** time, sorted, unique, on the
timeframe's grid), ``open``, ``high``, ``low``, ``close``, ``volume`` (``float64``).

Validation names each problem, the first offending rows and the fix. Gaps (missing candles,
e.g. exchange outages) are *reported*, never filled. A series has a session calendar
(:class:`~alphaops.data.calendars.Calendar`, ``24/7`` by default): gaps are candles the
calendar expects but the series lacks, so an FX weekend or an exchange holiday is no gap.

>>> import pandas as pd
>>> frame = pd.DataFrame({
...     "timestamp": pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC"),
...     "open": [1.0, 2.0, 3.0], "high": [2.0, 3.0, 4.0], "low": [0.5, 1.5, 2.5],
...     "close": [2.0, 3.0, 3.5], "volume": [10.0, 11.0, 12.0]})
>>> candles = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")
>>> len(candles), candles.gaps.count
(3, 0)
>>> bad = frame.assign(high=[0.1, 3.0, 4.0])
>>> Candles.from_frame(bad, symbol="BTCUSDT", timeframe="1h")
Traceback (most recent call last):
...
alphaops.core.errors.DataValidationError: BTCUSDT 1h: 1 problem(s): high_low_inconsistent: ...
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from alphaops.core.errors import DataFormatError, DataValidationError
from alphaops.core.names import normalize_symbol
from alphaops.core.timeframes import Timeframe
from alphaops.data.calendars import CONTINUOUS, Calendar

__all__ = [
    "OHLCV",
    "PRICE_COLUMNS",
    "Candles",
    "Gap",
    "GapReport",
    "Problem",
    "ValidationReport",
    "validate_frame",
]

PRICE_COLUMNS = ("open", "high", "low", "close")
OHLCV = ("timestamp", *PRICE_COLUMNS, "volume")
TIMESTAMP_DTYPE = "datetime64[ms, UTC]"
_MAX_ROWS_SHOWN = 5
# Weekly candles open on Monday 00:00 UTC (Binance, ccxt); the Unix epoch was a Thursday.
_WEEK_ORIGIN = pd.Timestamp("1970-01-05", tz="UTC")


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


def _rows(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> tuple[int, tuple[int, ...]]:
    idx = np.flatnonzero(mask)
    return int(idx.size), tuple(int(i) for i in idx[:_MAX_ROWS_SHOWN])


def validate_frame(
    frame: pd.DataFrame,
    *,
    symbol: str,
    timeframe: str | Timeframe,
    now_ms: int | None = None,
    calendar: str | Calendar | None = None,
) -> ValidationReport:
    """Check a candle frame against the canonical contract; never modify it.

    Rows in messages are 0-based positions in ``frame``. Candles opening after ``now_ms``
    (default: the clock) are refused: they cannot have closed. Gaps are counted in trading
    bars of ``calendar`` (default ``24/7``); candles outside its sessions are a problem.
    """
    tf = Timeframe.parse(timeframe)
    cal = Calendar.parse(calendar)
    sym = normalize_symbol(symbol)
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{sym} {tf}: missing column(s) {missing}; found {list(frame.columns)}",
            fix="rename columns to timestamp, open, high, low, close, volume",
        )
    problems: list[Problem] = []

    def add(check: str, message: str, mask: Any, fix: str) -> None:
        count, rows = _rows(np.asarray(mask, dtype=bool))
        if count:
            problems.append(Problem(check, message.format(count=count), count, rows, fix))

    if len(frame) == 0:
        problems.append(
            Problem("empty", "the frame holds no candles", 0, (), "check the file or date range")
        )
        return ValidationReport(sym, tf, 0, tuple(problems), calendar=cal)

    ts = frame["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(ts.dtype):
            problems.append(
                Problem(
                    "timezone_naive",
                    "timestamps have no timezone, so their meaning is ambiguous",
                    len(frame),
                    (0,),
                    "localize them to UTC (e.g. series.dt.tz_localize('UTC')) if they are UTC",
                )
            )
        else:
            problems.append(
                Problem(
                    "timestamp_type",
                    f"timestamp column has dtype {ts.dtype}, not a UTC datetime",
                    len(frame),
                    (0,),
                    "convert it with pandas.to_datetime(..., utc=True) and the right unit",
                )
            )
        return ValidationReport(sym, tf, len(frame), tuple(problems), calendar=cal)

    ts_utc = ts.dt.tz_convert("UTC")
    values = ts_utc.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    add("timestamp_missing", "{count} timestamp(s) are missing (NaT)", ts.isna(), "drop those rows")
    diffs = np.diff(values)
    add(
        "unsorted",
        "{count} timestamp(s) are earlier than the one before",
        np.concatenate([[False], diffs < 0]),
        "sort the frame by timestamp",
    )
    add(
        "duplicate_timestamp",
        "{count} timestamp(s) repeat an earlier one",
        ts_utc.duplicated().to_numpy(),
        "keep one candle per timestamp",
    )
    step_ms = tf.milliseconds
    origin = _WEEK_ORIGIN.value // 1_000_000 if tf.value.endswith("w") else 0
    add(
        "timeframe_mismatch",
        f"{{count}} timestamp(s) are not on the {tf} grid",
        (values - origin) % step_ms != 0,
        f"check that the data really is {tf} candles (open times), or declare the right timeframe",
    )
    add(
        "timeframe_mismatch",
        f"{{count}} consecutive candle(s) are closer than {tf} apart",
        np.concatenate([[False], (diffs > 0) & (diffs < step_ms)]),
        f"the data looks finer than {tf}: declare its real timeframe or resample it",
    )
    # Coarser than declared: most candles are several bars apart (1h data declared 5m would
    # otherwise be stored as 5m candles full of gaps). Weekends and holidays of a trading
    # calendar leave most steps at one bar, so they do not trip this.
    positive = diffs[diffs > 0]
    if positive.size >= 2 and float(np.median(positive)) > step_ms:
        typical = Timeframe.parse(f"{max(1, int(np.median(positive)) // 1000)}s")
        add(
            "timeframe_mismatch",
            f"{{count}} of {positive.size} consecutive candles are more than {tf} apart "
            f"(typically {typical})",
            np.concatenate([[False], diffs > step_ms]),
            f"the data looks like {typical} candles: declare --timeframe {typical}",
        )
    latest = (pd.Timestamp.now(tz="UTC").value // 1_000_000) if now_ms is None else now_ms
    add(
        "timestamp_future",
        f"{{count}} candle(s) open after now ({_iso_ms(latest)}), so they cannot be closed",
        values > latest,
        "check the timestamp unit (seconds vs milliseconds) and the clock of the source",
    )
    numeric: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    for column in (*PRICE_COLUMNS, "volume"):
        try:
            numeric[column] = frame[column].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(
                Problem(
                    "not_numeric",
                    f"column {column!r} holds non-numeric values (dtype {frame[column].dtype})",
                    len(frame),
                    (0,),
                    "convert the column to numbers",
                )
            )
    if len(numeric) == 5:
        o, h, lo, c, v = (numeric[k] for k in (*PRICE_COLUMNS, "volume"))
        stacked = np.column_stack([o, h, lo, c, v])
        add(
            "not_finite",
            "{count} row(s) hold NaN or infinite values",
            ~np.isfinite(stacked).all(axis=1),
            "drop or re-download those candles; alphaops does not fill them",
        )
        with np.errstate(invalid="ignore"):
            add(
                "non_positive_price",
                "{count} row(s) have a price <= 0",
                (np.column_stack([o, h, lo, c]) <= 0).any(axis=1),
                "drop those candles or fix the price scale",
            )
            add(
                "negative_volume",
                "{count} row(s) have a negative volume",
                v < 0,
                "drop those candles",
            )
            add(
                "high_low_inconsistent",
                "{count} row(s) have high < max(open, close) or low > min(open, close)",
                (h < np.maximum(o, c)) | (lo > np.minimum(o, c)),
                "check the column order (open, high, low, close) or drop those candles",
            )
    gaps = GapReport()
    if not problems:
        missing_bars, off = cal.missing_between(values, tf)
        off_mask = np.zeros(len(frame), dtype=bool)
        off_mask[off] = True
        add(
            "off_calendar",
            f"{{count}} candle(s) open outside the sessions of the {cal} calendar",
            off_mask,
            "declare the market's real calendar (--calendar 24/7, fx or an exchange code "
            "such as XNYS), or drop those candles",
        )
        if not problems:
            gaps = _gaps(ts_utc, missing_bars)
    return ValidationReport(
        sym, tf, len(frame), tuple(problems), gaps, ts_utc.iloc[0], ts_utc.iloc[-1], cal
    )


def _iso_ms(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def _gaps(ts: pd.Series[Any], missing: np.ndarray[Any, np.dtype[np.int64]]) -> GapReport:
    # missing[i]: bars the calendar expects between candle i and candle i + 1.
    where = np.flatnonzero(missing > 0)
    return GapReport(tuple(Gap(ts.iloc[i], ts.iloc[i + 1], int(missing[i])) for i in where))


@dataclass(frozen=True, eq=False)
class Candles:
    """Validated OHLCV candles of one symbol and timeframe (see the module docstring)."""

    symbol: str
    timeframe: Timeframe
    frame: pd.DataFrame
    report: ValidationReport

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        symbol: str,
        timeframe: str | Timeframe,
        calendar: str | Calendar | None = None,
    ) -> Candles:
        """Validate ``frame`` and return it in canonical form; raise on any problem.

        ``calendar`` is the market's session calendar (``24/7`` by default, ``fx``, ``XNYS`` …).
        """
        report = validate_frame(frame, symbol=symbol, timeframe=timeframe, calendar=calendar)
        report.raise_for_problems()
        canonical = pd.DataFrame(
            {
                "timestamp": frame["timestamp"].dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE),
                **{c: frame[c].to_numpy(dtype=np.float64) for c in (*PRICE_COLUMNS, "volume")},
            }
        ).reset_index(drop=True)
        return cls(report.symbol, report.timeframe, canonical, report)

    @property
    def gaps(self) -> GapReport:
        """Return the gaps (missing candles) of this series."""
        return self.report.gaps

    @property
    def calendar(self) -> Calendar:
        """Return the session calendar the series was validated with."""
        return self.report.calendar

    def with_calendar(self, calendar: str | Calendar | None) -> Candles:
        """Return these candles declared with ``calendar`` (validated again against it)."""
        cal = Calendar.parse(calendar)
        if cal == self.calendar:
            return self
        return Candles.from_frame(
            self.frame, symbol=self.symbol, timeframe=self.timeframe, calendar=cal
        )

    def __len__(self) -> int:
        return len(self.frame)

    @cached_property
    def timestamps_ms(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Return candle open times as int64 milliseconds since the epoch."""
        return self.frame["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)

    @cached_property
    def fingerprint(self) -> str:
        """Return the sha256 of the symbol, timeframe, timestamps and OHLCV values.

        Two series have the same fingerprint exactly when they hold the same candles; it
        goes into dataset metadata and model manifests to name the training data.
        """
        digest = hashlib.sha256(f"{self.symbol}|{self.timeframe}|".encode())
        digest.update(np.ascontiguousarray(self.timestamps_ms).tobytes())
        for column in (*PRICE_COLUMNS, "volume"):
            digest.update(np.ascontiguousarray(self.frame[column].to_numpy()).tobytes())
        return digest.hexdigest()

    def between(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> Candles:
        """Return the candles with ``start <= timestamp < end`` (either bound optional)."""
        mask = np.ones(len(self.frame), dtype=bool)
        if start is not None:
            mask &= (self.frame["timestamp"] >= start).to_numpy()
        if end is not None:
            mask &= (self.frame["timestamp"] < end).to_numpy()
        return Candles.from_frame(
            self.frame[mask], symbol=self.symbol, timeframe=self.timeframe, calendar=self.calendar
        )

    def tail(self, n: int) -> Candles:
        """Return the last ``n`` candles."""
        return Candles.from_frame(
            self.frame.tail(n), symbol=self.symbol, timeframe=self.timeframe, calendar=self.calendar
        )
