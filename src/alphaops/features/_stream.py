"""Incremental feature updaters: one closed bar in, each feature's value for that bar out.

Each feature kind has an updater that keeps only what its next value needs (a ring of recent
closes, a running EMA, Wilder averages). The batch computation in
:mod:`alphaops.features._indicators` is defined so that running an updater over a series
gives **the same bits** as the batch function on that series:

* window-local kinds (returns, volatility, SMA cross, Bollinger %B, volume z-score) sum each
  window left to right in a fixed order, here with Python floats and there with NumPy arrays;
  both are IEEE-754 double operations in the same order, so the results are identical;
* recursive kinds (EMA cross, RSI, ATR, MACD) are computed in batch by running these very
  updaters over the series, so there is one implementation of each recurrence.

A recursive value depends on where the series started; each kind's ``warmup_bars`` is long
enough for that start to weigh less than :data:`~alphaops.features.spec.CONVERGENCE_TOLERANCE`.
Updaters return NaN until they can produce a value; :class:`FeatureStream` blanks every
feature before its ``warmup_bars``, exactly like the batch pipeline.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from itertools import islice
from typing import assert_never

import numpy as np

from alphaops.features.spec import (
    ATR,
    MACD,
    RSI,
    BollingerPctB,
    CustomFeature,
    Feature,
    FeatureSpec,
    MACross,
    Returns,
    Volatility,
    VolumeZScore,
)

__all__ = ["Ema", "FeatureStream", "Updater", "updater_for"]

_NAN = float("nan")
# TA-Lib's TA_IS_ZERO: an RSI window whose gains and losses sum below this gives 0.
_RSI_ZERO = 1e-14


class Updater(ABC):
    """One feature's incremental state; :meth:`update` takes the next closed bar."""

    @abstractmethod
    def update(self, high: float, low: float, close: float, volume: float) -> float:
        """Return the feature's value at this bar (NaN while it cannot be computed)."""


def _mean_std(values: deque[float], ddof: int) -> tuple[float, float]:
    # Two passes, summed left to right: the same operations as _indicators._rolling_mean_std.
    it = iter(values)
    total = next(it)
    for x in it:
        total += x
    mean = total / len(values)
    it = iter(values)
    d = next(it) - mean
    squares = d * d
    for x in it:
        d = x - mean
        squares += d * d
    return mean, math.sqrt(squares / (len(values) - ddof))


def _flat(values: deque[float]) -> bool:
    first = values[0]
    return all(x == first for x in values)


class _Returns(Updater):
    def __init__(self, bars: int) -> None:
        self.closes: deque[float] = deque(maxlen=bars + 1)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        closes = self.closes
        closes.append(close)
        if len(closes) < closes.maxlen:  # type: ignore[operator]
            return _NAN
        return close / closes[0] - 1.0


class _Volatility(Updater):
    def __init__(self, window: int) -> None:
        self.returns: deque[float] = deque(maxlen=window)
        self.previous: float | None = None

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        if self.previous is not None:
            # np.log, as the batch does: libm's log may differ from NumPy's in the last bit.
            self.returns.append(float(np.log(close / self.previous)))
        self.previous = close
        if len(self.returns) < self.returns.maxlen:  # type: ignore[operator]
            return _NAN
        return _mean_std(self.returns, ddof=1)[1]


class _SmaCross(Updater):
    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.closes: deque[float] = deque(maxlen=slow)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        closes = self.closes
        closes.append(close)
        if len(closes) < self.slow:
            return _NAN
        it = iter(closes)
        slow_sum = next(it)
        for x in it:
            slow_sum += x
        it = islice(closes, self.slow - self.fast, None)
        fast_sum = next(it)
        for x in it:
            fast_sum += x
        return (fast_sum / self.fast) / (slow_sum / self.slow) - 1.0


class Ema(Updater):
    """An EMA seeded with the mean of its first ``period`` values (TA-Lib's convention)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.k = 2.0 / (period + 1)
        self.count = 0
        self.value = _NAN
        self._sum = 0.0

    def push(self, x: float) -> float:
        """Feed one value; return the EMA (NaN before ``period`` values)."""
        if self.count >= self.period:
            self.value = (x - self.value) * self.k + self.value
            return self.value
        self._sum += x
        self.count += 1
        if self.count == self.period:
            self.value = self._sum / self.period
        return self.value

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        return self.push(close)


class _EmaCross(Updater):
    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = Ema(fast), Ema(slow)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        fast = self.fast.push(close)
        slow = self.slow.push(close)
        return fast / slow - 1.0


class _Wilder:
    """Wilder's smoothing: the mean of the first ``period`` values, then
    ``(average * (period - 1) + x) / period``; NaN before ``period`` values."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.count = 0
        self.average = 0.0

    def push(self, x: float) -> float:
        n = self.period
        if self.count >= n:
            self.average = (self.average * (n - 1) + x) / n
            return self.average
        self.average += x
        self.count += 1
        if self.count < n:
            return _NAN
        self.average /= n
        return self.average


class _Rsi(Updater):
    def __init__(self, period: int) -> None:
        self.previous: float | None = None
        self.gain, self.loss = _Wilder(period), _Wilder(period)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        previous, self.previous = self.previous, close
        if previous is None:
            return _NAN
        change = close - previous
        gain = self.gain.push(change if change > 0.0 else 0.0)
        loss = self.loss.push(-change if change < 0.0 else 0.0)
        total = gain + loss
        if math.isnan(total):
            return _NAN
        return 100.0 * (gain / total) if abs(total) >= _RSI_ZERO else 0.0


class _Atr(Updater):
    def __init__(self, period: int) -> None:
        self.previous: float | None = None
        self.atr = _Wilder(period)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        previous, self.previous = self.previous, close
        if previous is None:
            return _NAN
        true_range = max(high - low, abs(high - previous), abs(low - previous))
        return self.atr.push(true_range) / close


class _Macd(Updater):
    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self.fast, self.slow, self.signal = Ema(fast), Ema(slow), Ema(signal)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        fast = self.fast.push(close)
        slow = self.slow.push(close)
        if math.isnan(slow):
            return _NAN
        line = fast - slow
        signal = self.signal.push(line)
        return (line - signal) / close


class _Bollinger(Updater):
    def __init__(self, period: int, num_std: float) -> None:
        self.num_std = num_std
        self.closes: deque[float] = deque(maxlen=period)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        closes = self.closes
        closes.append(close)
        if len(closes) < closes.maxlen:  # type: ignore[operator]
            return _NAN
        if _flat(closes):
            return 0.5
        mean, std = _mean_std(closes, ddof=0)
        upper = mean + self.num_std * std
        lower = mean - self.num_std * std
        return (close - lower) / (upper - lower)


class _ZScore(Updater):
    def __init__(self, window: int) -> None:
        self.values: deque[float] = deque(maxlen=window)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        values = self.values
        values.append(volume)
        if len(values) < values.maxlen:  # type: ignore[operator]
            return _NAN
        if _flat(values):
            return 0.0
        mean, std = _mean_std(values, ddof=1)
        return (volume - mean) / std


class _Custom(Updater):
    """Recompute a custom feature on its last ``warmup`` bars for every new bar.

    Cost per bar: one call of the user's function on ``warmup`` bars (plus copying them).
    """

    def __init__(self, feature: CustomFeature) -> None:
        self.feature = feature
        size = feature.warmup
        self.columns: tuple[deque[float], ...] = tuple(deque(maxlen=size) for _ in range(4))

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        for column, value in zip(self.columns, (high, low, close, volume), strict=True):
            column.append(value)
        if len(self.columns[0]) < self.feature.warmup:
            return _NAN
        arrays = [np.array(c, dtype=np.float64) for c in self.columns]
        return float(self.feature.values(*arrays)[-1])


def updater_for(feature: Feature) -> Updater:
    """Return a fresh incremental updater of ``feature``."""
    match feature:
        case Returns(bars=k):
            return _Returns(k)
        case Volatility(window=window):
            return _Volatility(window)
        case MACross(fast=fast, slow=slow, ma=ma):
            return _SmaCross(fast, slow) if ma == "sma" else _EmaCross(fast, slow)
        case RSI(period=period):
            return _Rsi(period)
        case ATR(period=period):
            return _Atr(period)
        case MACD(fast=fast, slow=slow, signal=signal):
            return _Macd(fast, slow, signal)
        case BollingerPctB(period=period, num_std=num_std):
            return _Bollinger(period, num_std)
        case VolumeZScore(window=window):
            return _ZScore(window)
        case CustomFeature():
            return _Custom(feature)
        case _:
            assert_never(feature)


class FeatureStream:
    """Compute a :class:`FeatureSpec` one closed bar at a time, equal bit for bit to batch.

    :meth:`update` returns the spec's features at the new bar in spec order, NaN for every
    feature still inside its ``warmup_bars`` (counted from the first bar this stream saw), so
    that feeding bars ``0..t`` gives row ``t`` of
    :meth:`~alphaops.features.FeaturePipeline.transform` on those bars, bit for bit.

    >>> from alphaops.features.spec import FeatureSpec, Returns
    >>> stream = FeatureStream(FeatureSpec(features=(Returns(bars=1),)))
    >>> stream.update(1.0, 1.0, 100.0, 5.0).tolist(), stream.update(1.0, 1.0, 110.0, 5.0).round(6).tolist()
    ([nan], [0.1])
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.bars = 0
        self._updaters = [updater_for(f) for f in spec.features]
        self._warmups = [f.warmup_bars for f in spec.features]
        self._ready_at = max(self._warmups)

    def update(self, high: float, low: float, close: float, volume: float) -> np.ndarray:
        """Feed one closed bar; return its ``(F,)`` float64 feature row."""
        self.bars += 1
        values = [u.update(high, low, close, volume) for u in self._updaters]
        if self.bars < self._ready_at:
            values = [
                v if self.bars >= w else _NAN for v, w in zip(values, self._warmups, strict=True)
            ]
        return np.array(values, dtype=np.float64)

    @property
    def ready(self) -> bool:
        """Return whether every feature is past its warm-up."""
        return self.bars >= self._ready_at
