"""Compute a :class:`FeatureSpec` on candles: the whole history (training) or one bar (live).

``transform`` and ``latest`` run the same code, so a live bot sees the values the model was
trained on:

* window-local features (returns, volatility, SMA cross, Bollinger %B, volume z-score) are
  computed from their window only and agree **bit for bit**;
* recursive ones (EMA cross, RSI, ATR, MACD) agree to about 1e-12 relative, because each
  feature's ``warmup_bars`` includes enough bars for a truncated seed to fade below
  :data:`~alphaops.features.spec.CONVERGENCE_TOLERANCE`.

A live runtime uses neither for each new bar: :class:`~alphaops.features.FeatureStream`
updates every feature from the one new bar, and equals ``transform`` over the same bars bit for
bit (its first bar being the first row).

Rows are treated as consecutive bars: features are computed straight across exchange gaps,
and nothing is filled in.

>>> import numpy as np, pandas as pd
>>> from alphaops.data.candles import Candles
>>> from alphaops.features.spec import FeatureSpec, Returns, Volatility
>>> close = 100 * np.exp(np.cumsum(np.full(40, 0.01)))
>>> frame = pd.DataFrame({
...     "timestamp": pd.date_range("2025-01-01", periods=40, freq="1h", tz="UTC"),
...     "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
...     "volume": np.arange(40.0)})
>>> candles = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")
>>> pipeline = FeaturePipeline(FeatureSpec(features=(Returns(bars=1), Volatility(window=5))))
>>> features = pipeline.transform(candles)
>>> list(features.columns), len(features), len(features.dropna())
(['timestamp', 'returns_1', 'volatility_5'], 40, 35)
>>> pipeline.latest(candles.tail(6)).round(4).to_dict()
{'returns_1': 0.0101, 'volatility_5': 0.0}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphaops.core.errors import InsufficientDataError, UsageError
from alphaops.core.names import normalize_symbol
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles
from alphaops.features._indicators import Bars, compute
from alphaops.features.spec import FeatureSpec

__all__ = ["FeaturePipeline"]


class FeaturePipeline:
    """Compute a feature spec on candles, in batch (:meth:`transform`) or live (:meth:`latest`).

    Pass ``symbol`` and/or ``timeframe`` to bind the pipeline to one market: candles of any
    other market are then refused, which catches a live bot fed the wrong stream.

    >>> from alphaops.features.spec import FeatureSpec
    >>> pipeline = FeaturePipeline(FeatureSpec.default(), symbol="BTCUSDT", timeframe="1h")
    >>> pipeline.names[:3], pipeline.warmup_bars
    (('returns_1', 'returns_4', 'returns_24'), 518)
    """

    def __init__(
        self,
        spec: FeatureSpec,
        *,
        symbol: str | None = None,
        timeframe: str | Timeframe | None = None,
    ) -> None:
        self.spec = spec
        self.symbol = None if symbol is None else normalize_symbol(symbol)
        self.timeframe = None if timeframe is None else Timeframe.parse(timeframe)
        # Built once: making a string index is a large share of one latest() call.
        self._index = pd.Index(spec.names)

    @property
    def names(self) -> tuple[str, ...]:
        """Return the feature column names in spec order."""
        return self.spec.names

    @property
    def warmup_bars(self) -> int:
        """Return the bars :meth:`latest` needs; :meth:`transform` rows before it hold NaN."""
        return self.spec.warmup_bars

    def transform(self, candles: Candles) -> pd.DataFrame:
        """Return ``timestamp`` plus one float64 column per feature, one row per candle.

        Each feature is NaN on its first ``warmup_bars - 1`` rows and finite after, so a row
        is complete (valid for training) exactly when its position is at least
        ``spec.warmup_bars - 1``; ``transform(candles).dropna()`` keeps exactly those rows.
        """
        self._check_market(candles)
        bars = Bars.from_candles(candles)
        columns: dict[str, object] = {"timestamp": candles.frame["timestamp"]}
        for feature in self.spec.features:
            values = compute(feature, bars)
            values[: feature.warmup_bars - 1] = np.nan
            columns[feature.name] = values
        return pd.DataFrame(columns)

    def latest(self, window: Candles) -> pd.Series[float]:
        """Return the features of the last candle of ``window``, named by its timestamp.

        Each feature is computed from its own last ``warmup_bars`` candles of the window, so
        the result depends only on the last ``spec.warmup_bars`` candles and equals row ``t``
        of :meth:`transform` on the full history (see the module docstring for how exactly).
        Raise :class:`InsufficientDataError` if the window holds fewer candles than that.
        """
        self._check_market(window)
        needed = self.spec.warmup_bars
        if len(window) < needed:
            raise InsufficientDataError(
                f"latest() needs the last {needed} bars of {window.symbol} {window.timeframe} "
                f"to warm up {len(self.names)} features, but the window holds {len(window)}",
                fix=f"pass a longer window, e.g. candles.tail({needed})",
                needed=needed,
                given=len(window),
            )
        bars = Bars.from_candles(window)
        values = [compute(f, bars.tail(f.warmup_bars))[-1] for f in self.spec.features]
        stamp = window.frame["timestamp"].iloc[-1]
        return pd.Series(values, index=self._index, dtype="float64", name=stamp)

    def _check_market(self, candles: Candles) -> None:
        if self.symbol is not None and candles.symbol != self.symbol:
            raise UsageError(
                f"this pipeline is bound to {self.symbol}, but the candles are {candles.symbol}",
                fix=f"pass {self.symbol} candles or build a pipeline for {candles.symbol}",
            )
        if self.timeframe is not None and candles.timeframe != self.timeframe:
            raise UsageError(
                f"this pipeline is bound to {self.timeframe} candles, "
                f"but the candles are {candles.timeframe}",
                fix=f"pass {self.timeframe} candles or build a pipeline for {candles.timeframe}",
            )

    def __repr__(self) -> str:
        market = " ".join(str(x) for x in (self.symbol, self.timeframe) if x is not None)
        where = f" for {market}" if market else ""
        return (
            f"FeaturePipeline({len(self.names)} features{where}, spec {self.spec.spec_hash[:12]})"
        )
