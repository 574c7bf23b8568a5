"""Feature computations in batch: window-local statistics and the recursive indicators.

Every function maps full-length float64 arrays to a full-length float64 array whose value at
bar ``i`` depends only on bars ``<= i``; entries that cannot be computed yet are NaN. The
pipeline blanks further rows until each feature's ``warmup_bars`` are available.

Window-local values (returns, volatility, SMA cross, Bollinger %B, volume z-score) are
two-pass means and deviations summed in a fixed order over their own window, so any window
and the full history agree bit for bit, and so does the live updater that sums the same
window in the same order (TA-Lib's ``SMA``/``STDDEV``/``BBANDS`` keep running sums over the
whole series instead: measured on BTCUSDT 1h, up to 3e-9 relative between a live window and
the full history). Recursive indicators (EMA cross, RSI, ATR, MACD) run the live updater of
:mod:`alphaops.features._stream` over the series: one implementation, identical bits live and
in batch. They follow TA-Lib's definitions (seeds and Wilder smoothing); a test compares them
with TA-Lib on real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

import numpy as np
import numpy.typing as npt

from alphaops.data.candles import Candles
from alphaops.features._stream import updater_for
from alphaops.features.spec import (
    ATR,
    MACD,
    RSI,
    BollingerPctB,
    CustomFeature,
    Feature,
    MACross,
    Returns,
    Volatility,
    VolumeZScore,
)

__all__ = ["Bars", "compute"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Bars:
    """OHLCV columns as contiguous float64 arrays (what TA-Lib expects)."""

    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    @classmethod
    def from_candles(cls, candles: Candles) -> Bars:
        frame = candles.frame
        return cls(*(_column(frame[c].to_numpy()) for c in ("high", "low", "close", "volume")))

    def tail(self, n: int) -> Bars:
        return Bars(self.high[-n:], self.low[-n:], self.close[-n:], self.volume[-n:])


def _column(values: npt.ArrayLike) -> FloatArray:
    return np.ascontiguousarray(values, dtype=np.float64)


def compute(feature: Feature, bars: Bars) -> FloatArray:
    """Return the raw values of ``feature`` for every bar (NaN where not computable)."""
    close = bars.close
    match feature:
        case RSI() | ATR() | MACD() | MACross(ma="ema"):
            return _run_updater(feature, bars)
        case MACross(fast=fast, slow=slow):
            out = _nans(len(close))
            if len(close) >= slow:
                slow_ma = _rolling_sum(close, slow) / slow
                fast_ma = _rolling_sum(close, fast)[slow - fast :] / fast
                out[slow - 1 :] = fast_ma / slow_ma - 1.0
            return out
        case Volatility(window=window):
            out = _nans(len(close))
            if len(close) > window:
                log_returns = np.log(close[1:] / close[:-1])
                _, std = _rolling_mean_std(log_returns, window, ddof=1)
                out[window:] = std
            return out
        case Returns(bars=k):
            out = _nans(len(close))
            if len(close) > k:
                out[k:] = close[k:] / close[:-k] - 1.0
            return out
        case BollingerPctB(period=period, num_std=num_std):
            return _bollinger_pctb(close, period, num_std)
        case VolumeZScore(window=window):
            return _zscore(bars.volume, window)
        case CustomFeature():
            return feature.values(bars.high, bars.low, bars.close, bars.volume)
        case _:
            assert_never(feature)


def _run_updater(feature: Feature, bars: Bars) -> FloatArray:
    # A recursion has one implementation: the live updater, run over the whole series.
    update = updater_for(feature).update
    values = [
        update(h, lo, c, v)
        for h, lo, c, v in zip(
            bars.high.tolist(),
            bars.low.tolist(),
            bars.close.tolist(),
            bars.volume.tolist(),
            strict=True,
        )
    ]
    return np.array(values, dtype=np.float64)


def _nans(n: int) -> FloatArray:
    return np.full(n, np.nan, dtype=np.float64)


def _rolling_sum(x: FloatArray, window: int) -> FloatArray:
    # Summed left to right in a fixed order, so each value depends only on its own window.
    count = len(x) - window + 1
    total = x[:count].copy()
    for j in range(1, window):
        total += x[j : j + count]
    return total


def _rolling_mean_std(x: FloatArray, window: int, *, ddof: int) -> tuple[FloatArray, FloatArray]:
    """Return the mean and standard deviation of each full window (two-pass, fixed order)."""
    count = len(x) - window + 1
    mean = _rolling_sum(x, window) / window
    squares = np.square(x[:count] - mean)
    for j in range(1, window):
        squares += np.square(x[j : j + count] - mean)
    return mean, np.sqrt(squares / (window - ddof))


def _is_flat(x: FloatArray, window: int) -> npt.NDArray[np.bool_]:
    """Return, for each full window, whether all its values are identical.

    Counted with integer cumulative sums of "value changed" steps, which are exact, unlike a
    standard deviation of identical values (it may come out a few ulp above zero).
    """
    changes = np.concatenate([[0], np.cumsum(x[1:] != x[:-1], dtype=np.int64)])
    result: npt.NDArray[np.bool_] = changes[window - 1 :] == changes[: len(x) - window + 1]
    return result


def _bollinger_pctb(close: FloatArray, period: int, num_std: float) -> FloatArray:
    out = _nans(len(close))
    if len(close) < period:
        return out
    mean, std = _rolling_mean_std(close, period, ddof=0)
    upper = mean + num_std * std
    lower = mean - num_std * std
    flat = _is_flat(close, period)
    width = np.where(flat, 1.0, upper - lower)
    out[period - 1 :] = np.where(flat, 0.5, (close[period - 1 :] - lower) / width)
    return out


def _zscore(x: FloatArray, window: int) -> FloatArray:
    out = _nans(len(x))
    if len(x) < window:
        return out
    mean, std = _rolling_mean_std(x, window, ddof=1)
    flat = _is_flat(x, window)
    scale = np.where(flat, 1.0, std)
    out[window - 1 :] = np.where(flat, 0.0, (x[window - 1 :] - mean) / scale)
    return out
