"""Live input: closed bars in one at a time, the newest bar's model input out.

:class:`LiveInput` keeps a bundle's :class:`~alphaops.features.FeatureStream` and, for
sequence models, a ring of the last ``lookback`` feature rows. Each new bar is validated once
(newer than the last, on the timeframe's grid, sane OHLC) and updates every feature in
microseconds. Inputs equal, bit for bit, what :meth:`InputContract.history` builds in batch
from the same first bar: the gates judged exactly what trades.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaops.core.errors import (
    DataGapError,
    DataValidationError,
    InsufficientDataError,
    StaleBarError,
    UsageError,
    WrongMarketError,
)
from alphaops.core.names import normalize_symbol
from alphaops.data.candles import Candles
from alphaops.features import FeatureStream

if TYPE_CHECKING:
    from alphaops.scoring._contract import InputContract

__all__ = ["Bar", "BarLike", "LiveInput", "bars_of"]

_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed candle: open time (ms since the epoch, UTC) and OHLCV; ``symbol`` optional."""

    timestamp_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    symbol: str | None = None

    @classmethod
    def of(cls, bar: BarLike) -> Bar:
        """Return ``bar`` as a :class:`Bar`.

        Accepts a :class:`Bar`, a mapping with ``timestamp`` (ms, datetime or pandas
        Timestamp) or ``timestamp_ms`` and the OHLCV fields (plus ``symbol``), or a ccxt
        OHLCV row ``[timestamp_ms, open, high, low, close, volume]``.

        >>> Bar.of([1_700_000_000_000, 1, 2, 0.5, 1.5, 10]).close
        1.5
        """
        if isinstance(bar, Bar):
            return bar
        try:
            if isinstance(bar, Mapping):
                stamp = bar["timestamp_ms"] if "timestamp_ms" in bar else bar["timestamp"]
                values = [float(bar[f]) for f in _FIELDS]
                symbol = bar.get("symbol")
            else:
                stamp, *rest = bar
                values = [float(v) for v in rest]
                symbol = None
                if len(values) != 5:
                    raise ValueError(f"{len(values) + 1} values")
            o, h, lo, c, v = values
            return cls(_ms(stamp), o, h, lo, c, v, None if symbol is None else str(symbol))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"cannot read a bar from {bar!r} ({exc})",
                fix="pass a Bar, a mapping with timestamp/open/high/low/close/volume, or a "
                "ccxt row [timestamp_ms, open, high, low, close, volume]",
            ) from exc


def bars_of(candles: Candles, *, start: int = 0) -> list[Bar]:
    """Return the candles of ``candles`` from position ``start`` as :class:`Bar` values."""
    frame = candles.frame.iloc[start:]
    columns = [frame[f].to_numpy(np.float64).tolist() for f in _FIELDS]
    stamps = candles.timestamps_ms[start:].tolist()
    return [Bar(t, o, h, lo, c, v) for t, o, h, lo, c, v in zip(stamps, *columns, strict=True)]


BarLike = Bar | Mapping[str, Any] | Sequence[Any]
"""What :meth:`LiveInput.push` and ``LivePredictor.on_bar`` accept (see :meth:`Bar.of`)."""


def _ms(stamp: Any) -> int:
    if isinstance(stamp, pd.Timestamp | datetime):
        value = pd.Timestamp(stamp)
        if value.tzinfo is None:
            raise ValueError(f"timestamp {stamp} has no time zone")
        return int(value.value // 1_000_000)
    if isinstance(stamp, bool) or not isinstance(stamp, int | np.integer | float):
        raise ValueError(f"timestamp {stamp!r} is not milliseconds or a datetime")
    if isinstance(stamp, float) and not stamp.is_integer():
        raise ValueError(f"timestamp {stamp!r} is not whole milliseconds")
    return int(stamp)


class LiveInput:
    """The rolling input of one bundle's model, fed one closed bar at a time (one thread)."""

    def __init__(self, contract: InputContract) -> None:
        if contract.spec is None:
            raise UsageError(
                f"{contract.where} carries no feature spec, so it cannot compute its "
                "features from bars",
                fix="pass ready feature rows (predict(rows)) or re-publish with a feature spec",
            )
        self.contract = contract
        self._step = contract.timeframe.milliseconds
        self._stream = FeatureStream(contract.spec)
        self._rows: deque[npt.NDArray[np.float64]] = deque(maxlen=contract.lookback)
        self.last_ms: int | None = None
        self._since_gap = 0  # bars pushed since the last gap (or since the first bar)

    @property
    def bars(self) -> int:
        """Return how many bars were pushed."""
        return self._stream.bars

    def push(self, bar: BarLike) -> None:
        """Validate one new closed bar and update the features; raise on a bad bar.

        Refused: another symbol (:class:`WrongMarketError`), a bar not newer than the last
        (:class:`StaleBarError`), one off the timeframe's grid, or non-finite / negative /
        inconsistent OHLCV (:class:`DataValidationError`). Nothing changes on a refusal.
        """
        bar = Bar.of(bar)
        contract = self.contract
        if bar.symbol is not None and normalize_symbol(bar.symbol) != contract.symbol:
            raise WrongMarketError(
                f"{contract.where} serves {contract.symbol}, got a {bar.symbol} bar",
                fix=f"feed {contract.symbol} bars to this predictor",
            )
        _check_ohlcv(bar)
        last = self.last_ms
        if last is not None:
            step = bar.timestamp_ms - last
            if step <= 0:
                raise StaleBarError(
                    f"bar at {_iso(bar.timestamp_ms)} is not newer than the last bar at "
                    f"{_iso(last)} ({'a duplicate' if step == 0 else 'out of order'})",
                    fix="send each closed bar once, oldest first",
                    timestamp_ms=bar.timestamp_ms,
                    last_ms=last,
                )
            if step % self._step:
                raise WrongMarketError(
                    f"bar at {_iso(bar.timestamp_ms)} is {step / 1000:g} s after the last one, "
                    f"not a multiple of {contract.where}'s timeframe {contract.timeframe}",
                    fix=f"feed closed {contract.timeframe} bars of {contract.symbol}",
                )
            self._since_gap = self._since_gap + 1 if self._adjacent(last, bar) else 1
        else:
            self._since_gap = 1
        self.last_ms = bar.timestamp_ms
        row = self._stream.update(bar.high, bar.low, bar.close, bar.volume)
        self._rows.append(row)

    def _adjacent(self, last: int, bar: Bar) -> bool:
        # Consecutive trading bars of the market's calendar: a weekend or a holiday between
        # two daily index bars, or the FX weekend, is no gap.
        if bar.timestamp_ms - last == self._step:
            return True
        calendar = self.contract.calendar
        if calendar.continuous:
            return False
        pair = np.array([last, bar.timestamp_ms], dtype=np.int64)
        missing, off_session = calendar.missing_between(pair, self.contract.timeframe)
        return bool(missing[0] == 0) and off_session.size == 0

    def extend(self, candles: Candles) -> None:
        """Push every candle of ``candles`` (checked for symbol and timeframe first)."""
        self.contract.check_market(candles)
        for bar in bars_of(candles):
            self.push(bar)

    def batch(self) -> npt.NDArray[Any]:
        """Return the ``(1, …)`` model input of the newest bar.

        Raise :class:`InsufficientDataError` during warm-up and :class:`DataGapError` while a
        sequence model's window still crosses a gap.
        """
        contract = self.contract
        need = contract.warmup_bars
        if self.bars < need:
            raise InsufficientDataError(
                f"{contract.where} needs {need} bars ({contract.feature_warmup} of feature "
                f"warm-up + lookback {contract.lookback} - 1), has {self.bars}",
                fix=f"feed {need - self.bars} more closed bars (or warm up with a window of "
                f"at least {need} candles)",
                needed=need,
                given=self.bars,
            )
        if self._since_gap < contract.lookback:
            raise DataGapError(
                f"{contract.where}'s {contract.lookback}-bar window ending "
                f"{_iso(self.last_ms or 0)} crosses a gap in the bars",
                fix=f"wait {contract.lookback - self._since_gap} more gap-free bars, or "
                "repair the missing candles",
            )
        if contract.kind == "tabular":
            rows = self._rows[-1][np.newaxis]
        else:
            rows = np.stack(self._rows)[np.newaxis]
        return contract.finish(rows)


def _check_ohlcv(bar: Bar) -> None:
    values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    if not all(math.isfinite(v) for v in values):
        problem = "non-finite values"
    elif min(bar.open, bar.high, bar.low, bar.close) <= 0 or bar.volume < 0:
        problem = "a non-positive price or a negative volume"
    elif bar.low > min(bar.open, bar.close) or bar.high < max(bar.open, bar.close):
        problem = "low above open/close or high below open/close"
    else:
        return
    raise DataValidationError(
        f"bar at {_iso(bar.timestamp_ms)} has {problem}: open {bar.open}, high {bar.high}, "
        f"low {bar.low}, close {bar.close}, volume {bar.volume}",
        fix="send the exchange's closed candle as it is; drop or repair this one",
    )


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
