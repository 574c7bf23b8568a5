"""Session calendars: which candles a market is expected to have, and how many bars make a year.

A series is declared with one calendar (``24/7`` by default):

- ``24/7``: crypto; every bar of the timeframe's grid is expected, a year is 365 days.
- ``fx``: spot FX; sessions run from 17:00 New York on Sunday to 17:00 New York on Friday
  (22:00 UTC in winter, 21:00 UTC in summer), five sessions a week, 260 a year. Holidays
  (e.g. 25 December) are not modelled: a missing holiday is reported as a gap.
- an exchange code of the maintained ``exchange_calendars`` library (``XNYS``, ``XLON``,
  ``XTKS`` …; ``pip install 'alphaops[calendars]'``): its sessions, holidays, early closes
  and lunch breaks. Daily candles are one per session, stamped with the session's date at
  00:00 UTC; a year is the calendar's average number of sessions (252 for ``XNYS``).

Gaps, sequence windows and label horizons count *trading bars*: the weekend of an FX series or
a holiday of an exchange is not a gap. Timeframes coarser than one day use the plain grid.

>>> fx = Calendar.parse("fx")
>>> fx.periods_per_year(Timeframe.parse("1h")), Calendar.parse("24/7").periods_per_year("1h")
(6240.0, 8760.0)
>>> friday = pd.Timestamp("2017-01-06 21:00", tz="UTC").value // 1_000_000
>>> [str(pd.Timestamp(t, unit="ms", tz="UTC")) for t in fx.expected(friday, friday + 49 * 3_600_000, "1h")]
['2017-01-06 21:00:00+00:00', '2017-01-08 22:00:00+00:00']
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaops.core.errors import SpecError
from alphaops.core.timeframes import Timeframe

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

__all__ = ["CONTINUOUS", "Calendar", "Fill", "FillRule"]

IntArray = npt.NDArray[np.int64]
Fill = Literal["close", "next_open"]
FillRule = Literal["auto", "close", "next_open"]

_DAY_MS = 86_400_000
_MS_PER_NS = 1_000_000
_FX_ZONE = "America/New_York"
_FX_ROLL = pd.Timedelta(hours=17)  # FX days roll at 17:00 New York
# The window over which an exchange's sessions per year are averaged (a fixed decade, so the
# annualisation of a market never changes with the data or the date it is computed on).
_REFERENCE = ("2010-01-01", "2019-12-31")
# Weekly candles open on Monday 00:00 UTC (Binance, ccxt); the Unix epoch was a Thursday.
_WEEK_ORIGIN_MS = pd.Timestamp("1970-01-05", tz="UTC").value // _MS_PER_NS


@dataclass(frozen=True)
class Calendar:
    """A market's session calendar; ``name`` is ``"24/7"``, ``"fx"`` or an exchange code."""

    name: str

    @classmethod
    def parse(cls, text: str | Calendar | None) -> Calendar:
        """Return the calendar named ``text`` (None means ``24/7``); raise on unknown names."""
        if text is None:
            return CONTINUOUS
        if isinstance(text, Calendar):
            return text
        raw = str(text).strip()
        lowered = raw.lower()
        if lowered in ("24/7", "247", "24x7", "crypto", "always"):
            return CONTINUOUS
        if lowered in ("fx", "forex"):
            return cls("fx")
        code = raw.upper()
        names = _exchange_names()
        if code not in names:
            raise SpecError(
                f"calendar {text!r} is not understood: not 24/7, fx or an exchange code of "
                f"exchange_calendars ({len(names)} known, e.g. XNYS, XLON, XTKS)",
                fix="use --calendar 24/7 (crypto), fx (spot FX) or an exchange code such as XNYS",
                calendar=raw,
            )
        return cls(code)

    @property
    def continuous(self) -> bool:
        """Return whether the market never closes (every bar of the grid is expected)."""
        return self.name == "24/7"

    @property
    def default_fill(self) -> Fill:
        """Return how backtests fill by default: at the next open where sessions have gaps."""
        return "close" if self.continuous else "next_open"

    def resolve_fill(self, rule: FillRule) -> Fill:
        """Return the fill of ``rule`` (``auto`` follows :attr:`default_fill`)."""
        return self.default_fill if rule == "auto" else rule

    def expected(self, first_ms: int, last_ms: int, timeframe: str | Timeframe) -> IntArray:
        """Return the open times (ms, ascending) of every candle expected in ``[first, last]``."""
        tf = Timeframe.parse(timeframe)
        step = tf.milliseconds
        if self.continuous or tf.seconds > 86_400:
            origin = _WEEK_ORIGIN_MS if tf.value.endswith("w") else 0
            start = first_ms - (first_ms - origin) % step
            grid = np.arange(start, last_ms + 1, step, dtype=np.int64)
            return grid[grid >= first_ms]
        day0 = first_ms - first_ms % _DAY_MS
        if tf.seconds == 86_400:
            days = self._session_days(day0 - _DAY_MS, last_ms + _DAY_MS)
            return days[(days >= first_ms) & (days <= last_ms)]
        opens, closes = self._intervals(day0 - 2 * _DAY_MS, last_ms + 2 * _DAY_MS)
        start = first_ms - first_ms % step
        grid = np.arange(start, last_ms + 1, step, dtype=np.int64)
        grid = grid[grid >= first_ms]
        # A bar is expected when [t, t + step) overlaps a session [open, close).
        nxt = np.searchsorted(closes, grid, side="right")
        inside = nxt < closes.size
        inside[inside] &= opens[nxt[inside]] < grid[inside] + step
        return grid[inside]

    def missing_between(
        self, timestamps_ms: IntArray, timeframe: str | Timeframe
    ) -> tuple[IntArray, IntArray]:
        """Return, per consecutive pair, the expected bars missing between them, and the
        positions of timestamps the calendar does not expect (off-session candles).

        ``timestamps_ms`` must be sorted and unique.
        """
        tf = Timeframe.parse(timeframe)
        values = np.asarray(timestamps_ms, dtype=np.int64)
        if values.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if self.continuous:
            diffs = np.diff(values)
            return np.maximum(diffs // tf.milliseconds - 1, 0), np.zeros(0, np.int64)
        grid = self.expected(int(values[0]), int(values[-1]), tf)
        lo = np.searchsorted(grid, values, side="left")
        hi = np.searchsorted(grid, values, side="right")
        off = np.flatnonzero(hi == lo).astype(np.int64)
        missing = lo[1:] - hi[:-1]
        return np.maximum(missing, 0).astype(np.int64), off

    def bar_numbers(self, timestamps_ms: IntArray, timeframe: str | Timeframe) -> IntArray:
        """Return each timestamp's position on the calendar's bar grid (-1 when off-session).

        Consecutive trading bars have consecutive numbers, whatever lies between them.
        """
        values = np.asarray(timestamps_ms, dtype=np.int64)
        if values.size == 0:
            return np.zeros(0, np.int64)
        tf = Timeframe.parse(timeframe)
        if self.continuous:
            return np.asarray((values - values.min()) // tf.milliseconds, dtype=np.int64)
        grid = self.expected(int(values.min()), int(values.max()), tf)
        pos = np.minimum(np.searchsorted(grid, values), max(grid.size - 1, 0))
        found = grid.size > 0
        on = (grid[pos] == values) if found else np.zeros(values.size, bool)
        return np.where(on, pos, -1).astype(np.int64)

    def periods_per_year(self, timeframe: str | Timeframe) -> float:
        """Return the bars in a year of ``timeframe``: the annualisation of every Sharpe."""
        tf = Timeframe.parse(timeframe)
        if self.continuous or tf.seconds > 86_400:
            return 365 * 86_400 / tf.seconds
        if self.name == "fx":
            return 260 * 86_400 / tf.seconds
        return _exchange_periods(self.name, tf.value)

    def __str__(self) -> str:
        return self.name

    # -- sessions ------------------------------------------------------------------------------

    def _session_days(self, start_ms: int, end_ms: int) -> IntArray:
        if self.name == "fx":
            days = pd.bdate_range(_day(start_ms), _day(end_ms))
            return _ms(days.tz_localize("UTC"))
        sessions = _sessions(self.name, start_ms, end_ms)
        return _ms(sessions.tz_localize("UTC") if sessions.tz is None else sessions)

    def _intervals(self, start_ms: int, end_ms: int) -> tuple[IntArray, IntArray]:
        if self.name == "fx":
            days = pd.bdate_range(_day(start_ms), _day(end_ms))
            fx_close = (days + _FX_ROLL).tz_localize(_FX_ZONE)
            fx_open = (days - pd.Timedelta(days=1) + _FX_ROLL).tz_localize(_FX_ZONE)
            return _ms(fx_open), _ms(fx_close)
        schedule = _schedule(self.name, start_ms, end_ms)
        opens, closes = _ms(schedule["open"]), _ms(schedule["close"])
        if "break_start" in schedule and schedule["break_start"].notna().any():
            has = schedule["break_start"].notna().to_numpy()
            b0 = _ms(schedule["break_start"][has])
            b1 = _ms(schedule["break_end"][has])
            opens = np.sort(np.concatenate([opens, b1]))
            closes = np.sort(np.concatenate([closes, b0]))
        return opens, closes


CONTINUOUS = Calendar("24/7")
"""The default calendar: a market that trades around the clock (crypto)."""


@contextmanager
def _quiet() -> Iterator[None]:
    # exchange_calendars 4.x still uses pandas APIs that pandas 3 deprecates (Series.values
    # …); the deprecations are its own to fix and change no result, so they are not shown.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _day(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms - ms % _DAY_MS, unit="ms")


def _ms(values: Any) -> IntArray:
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.as_unit("ms").asi8, dtype=np.int64)


@functools.cache
def _exchange_names() -> frozenset[str]:
    try:
        import exchange_calendars
    except ImportError as exc:
        raise SpecError(
            "exchange calendars need the exchange_calendars package, which is not installed",
            fix="pip install 'alphaops[calendars]', or use --calendar 24/7 or fx",
        ) from exc
    return frozenset(exchange_calendars.get_calendar_names(include_aliases=True))


@functools.cache
def _exchange(name: str, start_year: int) -> ExchangeCalendar:
    import exchange_calendars

    try:
        with _quiet():
            return exchange_calendars.get_calendar(name, start=f"{start_year}-01-01")
    except (ValueError, exchange_calendars.errors.CalendarError) as exc:
        raise SpecError(
            f"calendar {name} does not reach back to {start_year}: {exc}",
            fix="import candles within the exchange calendar's bounds, or declare 24/7",
        ) from exc


def _calendar_for(name: str, start_ms: int) -> ExchangeCalendar:
    # One cached calendar per exchange for any start after 1990 (most data); earlier data gets
    # a calendar built from its own first year.
    year = min(1990, pd.Timestamp(start_ms, unit="ms").year)
    return _exchange(name, year)


def _sessions(name: str, start_ms: int, end_ms: int) -> pd.DatetimeIndex:
    cal = _calendar_for(name, start_ms)
    lo = max(_day(start_ms), cal.first_session.tz_localize(None))
    hi = min(_day(end_ms), cal.last_session.tz_localize(None))
    if lo > hi:
        return pd.DatetimeIndex([])
    with _quiet():
        sessions: pd.DatetimeIndex = cal.sessions_in_range(lo, hi)
    return sessions


def _schedule(name: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    cal = _calendar_for(name, start_ms)
    sessions = _sessions(name, start_ms, end_ms)
    with _quiet():
        schedule: pd.DataFrame = cal.schedule.loc[sessions]
    return schedule


@functools.cache
def _exchange_periods(name: str, timeframe: str) -> float:
    lo, hi = (pd.Timestamp(t, tz="UTC").value // _MS_PER_NS for t in _REFERENCE)
    bars = Calendar(name).expected(lo, hi + _DAY_MS - 1, timeframe).size
    sessions = _sessions(name, lo, hi).size
    # Whole sessions per year (XNYS: 2,516 sessions in 2010-2019, 252 a year), times the
    # average bars per session for intraday timeframes.
    return float(round(sessions / 10) * bars / sessions)
