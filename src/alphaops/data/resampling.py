"""Resample candles to a coarser timeframe with exchange semantics.

Buckets are aligned to the epoch grid (weekly buckets open on Monday 00:00 UTC, as on
Binance) and labelled by their open time: open = first open, high = max, low = min,
close = last close, volume = sum. A bucket that lacks some of its sub-candles (an exchange
outage, or the still-incomplete last bucket) is dropped by default and counted in the
:class:`ResampleReport`; ``partial="keep"`` keeps it.

>>> import pandas as pd
>>> from alphaops.data.candles import Candles
>>> frame = pd.DataFrame({
...     "timestamp": pd.date_range("2025-01-01", periods=5, freq="30min", tz="UTC"),
...     "open": [1.0, 2.0, 3.0, 4.0, 5.0], "high": [2.0, 3.0, 4.0, 5.0, 6.0],
...     "low": [0.5, 1.5, 2.5, 3.5, 4.5], "close": [2.0, 3.0, 4.0, 5.0, 5.5],
...     "volume": [1.0, 2.0, 3.0, 4.0, 5.0]})
>>> half_hours = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="30m")
>>> hourly, report = resample_with_report(half_hours, "1h")
>>> hourly.frame[["open", "high", "low", "close", "volume"]].to_numpy().tolist()
[[1.0, 3.0, 0.5, 3.0, 3.0], [3.0, 5.0, 2.5, 5.0, 7.0]]
>>> report.dropped
1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphaops.core.errors import InsufficientDataError, SpecError, UsageError
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles

__all__ = ["Partial", "ResampleReport", "resample", "resample_with_report"]

Partial = Literal["drop", "keep"]
# Weekly candles open on Monday 00:00 UTC; the Unix epoch (1970-01-01) was a Thursday.
_WEEK_ORIGIN_MS = 4 * 86_400_000
_COMMON = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
_EXAMPLES_SHOWN = 5


@dataclass(frozen=True)
class ResampleReport:
    """How a resample went: buckets kept, and buckets that lacked sub-candles."""

    source: Timeframe
    target: Timeframe
    buckets: int
    partial: int
    dropped: int
    partial_examples: tuple[pd.Timestamp, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "source": str(self.source),
            "target": str(self.target),
            "buckets": self.buckets,
            "partial": self.partial,
            "dropped": self.dropped,
            "partial_examples": [t.isoformat() for t in self.partial_examples],
        }


def resample(candles: Candles, timeframe: str | Timeframe, *, partial: Partial = "drop") -> Candles:
    """Return ``candles`` resampled to the coarser ``timeframe`` (see the module docstring).

    >>> import pandas as pd
    >>> frame = pd.DataFrame({
    ...     "timestamp": pd.date_range("2025-01-01", periods=4, freq="1h", tz="UTC"),
    ...     "open": [1.0] * 4, "high": [2.0] * 4, "low": [0.5] * 4, "close": [1.5] * 4,
    ...     "volume": [1.0] * 4})
    >>> len(resample(Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h"), "2h"))
    2
    """
    return resample_with_report(candles, timeframe, partial=partial)[0]


def resample_with_report(
    candles: Candles, timeframe: str | Timeframe, *, partial: Partial = "drop"
) -> tuple[Candles, ResampleReport]:
    """Return the resampled candles and a report counting incomplete buckets."""
    source, target = candles.timeframe, Timeframe.parse(timeframe)
    if partial not in ("drop", "keep"):
        raise UsageError(f"partial={partial!r} is not understood", fix="use 'drop' or 'keep'")
    origin = _origin(source, target)
    step = target.milliseconds
    stamps = candles.timestamps_ms
    bucket = (stamps - origin) // step * step + origin
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    ends = np.concatenate([starts[1:], [len(stamps)]]) - 1
    complete = (ends - starts + 1) == step // source.milliseconds
    frame = candles.frame
    resampled = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(bucket[starts], unit="ms", utc=True),
            "open": frame["open"].to_numpy()[starts],
            "high": np.maximum.reduceat(frame["high"].to_numpy(), starts),
            "low": np.minimum.reduceat(frame["low"].to_numpy(), starts),
            "close": frame["close"].to_numpy()[ends],
            "volume": np.add.reduceat(frame["volume"].to_numpy(), starts),
        }
    )
    incomplete = np.flatnonzero(~complete)
    examples = tuple(resampled["timestamp"].iloc[incomplete[:_EXAMPLES_SHOWN]])
    if partial == "drop":
        resampled = resampled[complete]
    if len(resampled) == 0:
        raise InsufficientDataError(
            f"{candles.symbol}: {len(candles)} {source} candle(s) from "
            f"{frame['timestamp'].iloc[0]} fill no complete {target} bucket",
            fix=f"provide at least one whole {target} of {source} candles, or pass partial='keep'",
        )
    report = ResampleReport(
        source=source,
        target=target,
        buckets=len(resampled),
        partial=int(incomplete.size),
        dropped=int(incomplete.size) if partial == "drop" else 0,
        partial_examples=examples,
    )
    return Candles.from_frame(resampled, symbol=candles.symbol, timeframe=target), report


def _origin(source: Timeframe, target: Timeframe) -> int:
    if not source.divides(target):
        options = [t for t in _COMMON if source.divides(Timeframe.parse(t))][:6]
        raise SpecError(
            f"cannot resample {source} candles to {target}: {target} is not a coarser whole "
            f"multiple of {source}",
            fix=f"choose a multiple of {source}, e.g. {', '.join(options) or 'a longer one'}",
        )
    weekly = target.value.endswith("w")
    if weekly and not source.value.endswith("w") and _WEEK_ORIGIN_MS % source.milliseconds:
        raise SpecError(
            f"cannot resample {source} candles to {target}: weekly buckets open on Monday "
            f"00:00 UTC, which is not on the {source} grid",
            fix="resample to 1w from 1d, 1h or another timeframe that divides a day",
        )
    return _WEEK_ORIGIN_MS if weekly else 0
