"""The feature kinds: one frozen model per kind, each with its name and warm-up.

See :mod:`alphaops.features.spec` for how ``warmup_bars`` is chosen; the computations live in
:mod:`alphaops.features._indicators`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from alphaops.core.errors import SpecError
from alphaops.core.specs import MAX_PERIOD, SpecModel

__all__ = [
    "ATR",
    "CONVERGENCE_TOLERANCE",
    "MACD",
    "RSI",
    "BollingerPctB",
    "MACross",
    "Returns",
    "Volatility",
    "VolumeZScore",
]

CONVERGENCE_TOLERANCE = 1e-12
"""Largest weight a truncated window's seed may keep in a recursive indicator's value."""


def _decay_bars(alpha: float) -> int:
    """Return the smallest k with ``(1 - alpha) ** k <= CONVERGENCE_TOLERANCE``."""
    return math.ceil(math.log(CONVERGENCE_TOLERANCE) / math.log1p(-alpha))


def _ema_alpha(period: int) -> float:
    return 2.0 / (period + 1)


def _name_number(value: float) -> str:
    text = repr(float(value))
    return (text.removesuffix(".0")).replace(".", "p")


def _period(default: int, description: str, minimum: int = 2) -> Any:
    return Field(default, ge=minimum, le=MAX_PERIOD, strict=True, description=description)


class _FeatureModel(SpecModel):
    """Common surface of every feature: a stable ``name`` and its ``warmup_bars``."""

    spec_label: ClassVar[str] = "feature"

    @property
    @abstractmethod
    def name(self) -> str:
        """Return the column name, stable across versions (e.g. ``rsi_14``)."""

    @property
    @abstractmethod
    def warmup_bars(self) -> int:
        """Return how many bars of history the value at one bar needs (see module doc)."""


class RSI(_FeatureModel):
    """Wilder's relative strength index of the close (TA-Lib ``RSI``), from 0 to 100.

    A window with no price change at all gives 0 (TA-Lib's convention).

    >>> RSI().name, RSI().warmup_bars
    ('rsi_14', 388)
    """

    spec_label: ClassVar[str] = "rsi feature"
    spec_example: ClassVar[str] = '{"kind": "rsi", "period": 14}'

    kind: Literal["rsi"] = "rsi"
    period: int = _period(14, "Bars in Wilder's smoothing (alpha = 1/period).")

    @property
    def name(self) -> str:
        """Return ``rsi_<period>``."""
        return f"rsi_{self.period}"

    @property
    def warmup_bars(self) -> int:
        """Return the look-back (period + 1 bars) plus the Wilder convergence bars."""
        return self.period + 1 + _decay_bars(1.0 / self.period)


class MACross(_FeatureModel):
    """Moving-average cross: ``fast_ma / slow_ma - 1`` of the close (SMA or EMA, as in TA-Lib).

    >>> MACross(fast=10, slow=30, ma="sma").name
    'ma_cross_sma_10_30'
    """

    spec_label: ClassVar[str] = "ma_cross feature"
    spec_example: ClassVar[str] = '{"kind": "ma_cross", "fast": 10, "slow": 30, "ma": "ema"}'

    kind: Literal["ma_cross"] = "ma_cross"
    fast: int = _period(10, "Bars in the fast moving average; less than slow.")
    slow: int = _period(30, "Bars in the slow moving average; more than fast.")
    ma: Literal["sma", "ema"] = Field("sma", description="Simple or exponential average.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Self:
        if self.fast >= self.slow:
            raise SpecError(
                f"ma_cross fast={self.fast} must be less than slow={self.slow}",
                fix="swap them or pick a shorter fast period, e.g. fast=10, slow=30",
                fast=self.fast,
                slow=self.slow,
            )
        return self

    @property
    def name(self) -> str:
        """Return ``ma_cross_<ma>_<fast>_<slow>``."""
        return f"ma_cross_{self.ma}_{self.fast}_{self.slow}"

    @property
    def warmup_bars(self) -> int:
        """Return ``slow`` for an SMA; for an EMA add the slow EMA's convergence bars."""
        if self.ma == "sma":
            return self.slow
        return self.slow + _decay_bars(_ema_alpha(self.slow))


class Volatility(_FeatureModel):
    """Sample standard deviation (ddof=1) of the last ``window`` log returns of the close.

    >>> Volatility(window=24).name, Volatility(window=24).warmup_bars
    ('volatility_24', 25)
    """

    spec_label: ClassVar[str] = "volatility feature"
    spec_example: ClassVar[str] = '{"kind": "volatility", "window": 24}'

    kind: Literal["volatility"] = "volatility"
    window: int = _period(24, "Number of log returns in the window.")

    @property
    def name(self) -> str:
        """Return ``volatility_<window>``."""
        return f"volatility_{self.window}"

    @property
    def warmup_bars(self) -> int:
        """Return ``window + 1`` (``window`` returns need one more close)."""
        return self.window + 1


class Returns(_FeatureModel):
    """Simple return over ``bars`` bars: ``close / close.shift(bars) - 1``.

    Simple rather than log returns, so the feature reads like the labels' forward return.

    >>> Returns(bars=4).name
    'returns_4'
    """

    spec_label: ClassVar[str] = "returns feature"
    spec_example: ClassVar[str] = '{"kind": "returns", "bars": 1}'

    kind: Literal["returns"] = "returns"
    bars: int = _period(1, "How many bars back the reference close is.", minimum=1)

    @property
    def name(self) -> str:
        """Return ``returns_<bars>``."""
        return f"returns_{self.bars}"

    @property
    def warmup_bars(self) -> int:
        """Return ``bars + 1``."""
        return self.bars + 1


class ATR(_FeatureModel):
    """Wilder's average true range divided by the close (TA-Lib ``ATR`` / close).

    >>> ATR(period=14).name
    'atr_14'
    """

    spec_label: ClassVar[str] = "atr feature"
    spec_example: ClassVar[str] = '{"kind": "atr", "period": 14}'

    kind: Literal["atr"] = "atr"
    period: int = _period(14, "Bars in Wilder's smoothing of the true range.")

    @property
    def name(self) -> str:
        """Return ``atr_<period>``."""
        return f"atr_{self.period}"

    @property
    def warmup_bars(self) -> int:
        """Return the look-back (period + 1 bars) plus the Wilder convergence bars."""
        return self.period + 1 + _decay_bars(1.0 / self.period)


class MACD(_FeatureModel):
    """MACD histogram (MACD line minus signal line, TA-Lib ``MACD``) divided by the close.

    >>> MACD().name, MACD().warmup_bars
    ('macd_12_26_9', 518)
    """

    spec_label: ClassVar[str] = "macd feature"
    spec_example: ClassVar[str] = '{"kind": "macd", "fast": 12, "slow": 26, "signal": 9}'

    kind: Literal["macd"] = "macd"
    fast: int = _period(12, "Bars in the fast EMA; less than slow.")
    slow: int = _period(26, "Bars in the slow EMA; more than fast.")
    signal: int = _period(9, "Bars in the EMA of the MACD line (the signal line).")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Self:
        if self.fast >= self.slow:
            raise SpecError(
                f"macd fast={self.fast} must be less than slow={self.slow}",
                fix="swap them or pick a shorter fast period, e.g. fast=12, slow=26",
                fast=self.fast,
                slow=self.slow,
            )
        return self

    @property
    def name(self) -> str:
        """Return ``macd_<fast>_<slow>_<signal>``."""
        return f"macd_{self.fast}_{self.slow}_{self.signal}"

    @property
    def warmup_bars(self) -> int:
        """Return the look-back plus the convergence bars of the slow and signal EMAs."""
        lookback = self.slow + self.signal - 1
        return lookback + _decay_bars(_ema_alpha(self.slow)) + _decay_bars(_ema_alpha(self.signal))


class BollingerPctB(_FeatureModel):
    """Bollinger %B: where the close sits between the bands, ``(close - lower) / (upper - lower)``.

    Bands are the mean plus/minus ``num_std`` population standard deviations (ddof=0, as
    TA-Lib ``BBANDS``) of the last ``period`` closes. A window of identical closes gives 0.5.

    >>> BollingerPctB(period=20, num_std=2.0).name
    'bollinger_pctb_20_2'
    """

    spec_label: ClassVar[str] = "bollinger_pctb feature"
    spec_example: ClassVar[str] = '{"kind": "bollinger_pctb", "period": 20, "num_std": 2.0}'

    kind: Literal["bollinger_pctb"] = "bollinger_pctb"
    period: int = _period(20, "Closes in the band window.")
    num_std: float = Field(
        2.0,
        gt=0,
        le=10,
        allow_inf_nan=False,
        strict=True,
        description="Band half-width in standard deviations.",
    )

    @property
    def name(self) -> str:
        """Return ``bollinger_pctb_<period>_<num_std>`` (``.`` in num_std written ``p``)."""
        return f"bollinger_pctb_{self.period}_{_name_number(self.num_std)}"

    @property
    def warmup_bars(self) -> int:
        """Return ``period``."""
        return self.period


class VolumeZScore(_FeatureModel):
    """Z-score of the bar's volume against the last ``window`` volumes (ddof=1, bar included).

    A window of identical volumes gives 0.

    >>> VolumeZScore(window=24).name
    'volume_zscore_24'
    """

    spec_label: ClassVar[str] = "volume_zscore feature"
    spec_example: ClassVar[str] = '{"kind": "volume_zscore", "window": 24}'

    kind: Literal["volume_zscore"] = "volume_zscore"
    window: int = _period(24, "Volumes in the window, the current bar included.")

    @property
    def name(self) -> str:
        """Return ``volume_zscore_<window>``."""
        return f"volume_zscore_{self.window}"

    @property
    def warmup_bars(self) -> int:
        """Return ``window``."""
        return self.window
