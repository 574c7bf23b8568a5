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
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from alphaops.core.errors import DataFormatError
from alphaops.core.names import normalize_symbol
from alphaops.core.timeframes import Timeframe
from alphaops.data._report import Gap, GapReport, Problem, ValidationReport
from alphaops.data._scan import (
    Hits,
    epoch_ms,
    exact_ms,
    scan_calendar,
    scan_prices,
    scan_times,
)
from alphaops.data.calendars import Calendar

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
# Weekly candles open on Monday 00:00 UTC (Binance, ccxt); the Unix epoch was a Thursday.
_WEEK_ORIGIN = pd.Timestamp("1970-01-05", tz="UTC")


_MIN_STEPS_TO_JUDGE = 8
"""Consecutive steps needed before the median step can say the data is coarser than declared."""


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
    values = epoch_ms(ts_utc)
    step_ms = tf.milliseconds
    origin = _WEEK_ORIGIN.value // 1_000_000 if tf.value.endswith("w") else 0
    latest = (pd.Timestamp.now(tz="UTC").value // 1_000_000) if now_ms is None else now_ms
    scan = scan_times(values, step_ms=step_ms, origin=origin, latest=latest)

    def add(check: str, message: str, hits: Hits, fix: str) -> None:
        if hits.count:
            text = message.format(count=hits.count)
            problems.append(Problem(check, text, hits.count, tuple(hits.rows), fix))

    add(
        "timestamp_missing",
        "{count} timestamp(s) are missing (NaT)",
        scan.missing,
        "drop those rows",
    )
    add(
        "unsorted",
        "{count} timestamp(s) are earlier than the one before",
        scan.unsorted,
        "sort the frame by timestamp",
    )
    # Sorted, without NaT and exact in milliseconds, a repeat can only follow its twin.
    simple = not scan.missing.count and not scan.unsorted.count and exact_ms(ts_utc)
    add(
        "duplicate_timestamp",
        "{count} timestamp(s) repeat an earlier one",
        scan.repeats if simple else Hits.of(ts_utc.duplicated().to_numpy()),
        "keep one candle per timestamp",
    )
    add(
        "timeframe_mismatch",
        f"{{count}} timestamp(s) are not on the {tf} grid",
        scan.off_grid,
        f"check that the data really is {tf} candles (open times), or declare the right timeframe",
    )
    add(
        "timeframe_mismatch",
        f"{{count}} consecutive candle(s) are closer than {tf} apart",
        scan.closer,
        f"the data looks finer than {tf}: declare its real timeframe or resample it",
    )
    # Coarser than declared: most candles are several bars apart (1h data declared 5m would
    # otherwise be stored as 5m candles full of gaps). Weekends and holidays of a trading
    # calendar leave most steps at one bar, so they do not trip this.
    # A median of a handful of steps says nothing (Friday to Monday is 3 days): judge it
    # only from enough steps.
    coarser = scan.positive >= _MIN_STEPS_TO_JUDGE and scan.median_beyond_step(step_ms) is not False
    if coarser:  # rare: the median itself, from every positive step
        diffs = np.diff(values)
        median = float(np.median(diffs[diffs > 0]))
        del diffs
        if median > step_ms:
            typical = Timeframe.parse(f"{max(1, int(median) // 1000)}s")
            add(
                "timeframe_mismatch",
                f"{{count}} of {scan.positive} consecutive candles are more than {tf} apart "
                f"(typically {typical})",
                scan.coarser,
                f"the data looks like {typical} candles: declare --timeframe {typical}",
            )
    add(
        "timestamp_future",
        f"{{count}} candle(s) open after now ({_iso_ms(latest)}), so they cannot be closed",
        scan.future,
        "check the timestamp unit (seconds vs milliseconds) and the clock of the source",
    )
    numeric: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    for column in (*PRICE_COLUMNS, "volume"):
        try:  # a view for float64 columns: no copy
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
        not_finite, non_positive, negative, inconsistent = scan_prices(
            *(numeric[k] for k in (*PRICE_COLUMNS, "volume"))
        )
        add(
            "not_finite",
            "{count} row(s) hold NaN or infinite values",
            not_finite,
            "drop or re-download those candles; alphaops does not fill them",
        )
        add(
            "non_positive_price",
            "{count} row(s) have a price <= 0",
            non_positive,
            "drop those candles or fix the price scale",
        )
        add(
            "negative_volume",
            "{count} row(s) have a negative volume",
            negative,
            "drop those candles",
        )
        add(
            "high_low_inconsistent",
            "{count} row(s) have high < max(open, close) or low > min(open, close)",
            inconsistent,
            "check the column order (open, high, low, close) or drop those candles",
        )
    del numeric
    gaps = GapReport()
    if not problems:
        off, holes = scan_calendar(cal, values, tf)
        add(
            "off_calendar",
            f"{{count}} candle(s) open outside the sessions of the {cal} calendar",
            off,
            "declare the market's real calendar (--calendar 24/7, fx or an exchange code "
            "such as XNYS), or drop those candles",
        )
        if not problems:
            gaps = GapReport(
                tuple(Gap(ts_utc.iloc[i], ts_utc.iloc[i + 1], bars) for i, bars in holes)
            )
    return ValidationReport(
        sym, tf, len(frame), tuple(problems), gaps, ts_utc.iloc[0], ts_utc.iloc[-1], cal
    )


def _iso_ms(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def _float_column(column: pd.Series[Any]) -> pd.Series[Any]:
    if column.dtype == np.dtype(np.float64):
        return column
    values = column.to_numpy(dtype=np.float64, copy=True)
    return pd.Series(values, index=column.index, name=column.name, copy=False)


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
        # Columns already canonical are shared, not copied: copy-on-write keeps ``frame``
        # and the candles independent, and a reader's arrays become the candles' own.
        canonical = pd.DataFrame(
            {
                "timestamp": frame["timestamp"].dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE),
                **{c: _float_column(frame[c]) for c in (*PRICE_COLUMNS, "volume")},
            },
            copy=False,
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
