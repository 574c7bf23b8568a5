"""Labels: what a model learns to predict, from a frozen, hashable :class:`LabelRule`.

A label at bar ``t`` enters at the close of ``t`` and looks at the next ``horizon`` bars,
``t+1 .. t+horizon``; ``label_end`` is the open time of bar ``t+horizon``, so the label is
known at ``label_end + timeframe`` (its close). Rows without a full horizon are dropped,
never guessed: the last ``horizon`` rows, and rows whose horizon crosses a data gap (bar
``t+horizon`` is not exactly ``horizon`` timeframes after bar ``t``).

* ``binary`` / ``close``: WIN if the close ``horizon`` bars later is at least the barrier
  above the entry close, else LOSS.
* ``binary`` / ``touch``: WIN if any high in the next ``horizon`` bars reaches at least the
  barrier above the entry close ("rises 1% within 4 hours"), else LOSS.
* ``ternary`` (close only): BUY if the forward return is ``>= barrier``, SELL if it is
  ``<= -barrier``, else HOLD.

The barrier comes from the rule's ``scale``:

* ``fixed``: ``threshold`` itself, a fraction (0.01 = 1%), on every bar of every market.
* ``volatility`` (López de Prado, *Advances in Financial Machine Learning*, ch. 3): at bar
  ``t`` it is ``threshold × σ_t × √horizon``, a multiple of the move to expect over the
  horizon, so one multiple means the same on hourly crypto, hourly FX and daily equities,
  in calm months and in wild ones. ``σ_t`` is the volatility of the ``volatility_window``
  one-bar returns ending at bar ``t`` (see :meth:`LabelRule.barriers`); bars after ``t``
  never enter it. Rows without that history are dropped as ``warmup``.

``label`` is the index into :attr:`LabelRule.classes`.

>>> import pandas as pd
>>> from alphaops.data.candles import Candles
>>> def hourly(close):
...     return Candles.from_frame(pd.DataFrame({
...         "timestamp": pd.date_range("2025-01-01", periods=len(close), freq="1h", tz="UTC"),
...         "open": close, "high": close, "low": close, "close": close, "volume": 1.0}),
...         symbol="BTCUSDT", timeframe="1h")
>>> rule = LabelRule(kind="ternary", horizon=1, threshold=0.01)
>>> result = make_labels(hourly([100.0, 101.0, 99.0, 99.5, 101.0]), rule)
>>> [rule.classes[i] for i in result.frame["label"]]
['BUY', 'SELL', 'HOLD', 'BUY']
>>> result.dropped, result.class_counts
({'end_of_data': 1, 'gap': 0, 'warmup': 0}, {'SELL': 1, 'HOLD': 1, 'BUY': 2})

Scaled by volatility, the same 1% moves count or not depending on how the market moved just
before: after two ±1% bars a barrier of ``0.5 σ`` is 0.74%, after a 0.5% bar it is 0.56%.
The first two bars have fewer than two returns behind them and are warm-up:

>>> import numpy as np
>>> candles = hourly((100 * np.cumprod([1, 1.01, 0.99, 1.01, 0.995, 0.99])).tolist())
>>> rule = LabelRule(
...     kind="ternary", horizon=1, threshold=0.5, scale="volatility", volatility_window=2)
>>> rule.barriers(candles).round(4).tolist()
[nan, nan, 0.0074, 0.0074, 0.0056, 0.0056]
>>> result = make_labels(candles, rule)
>>> [rule.classes[i] for i in result.frame["label"]], result.dropped
(['BUY', 'HOLD', 'SELL'], {'end_of_data': 1, 'gap': 0, 'warmup': 2})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from alphaops.core.errors import InsufficientDataError, SpecError
from alphaops.core.specs import MAX_PERIOD, SpecModel, canonical_json, sha256_hex
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles

__all__ = ["DROP_REASONS", "LabelResult", "LabelRule", "make_labels"]

DROP_REASONS = ("end_of_data", "gap", "warmup")
"""Why a row gets no label: its horizon runs past the data or across a gap, or (volatility
scale) too little history lies behind it to measure the volatility."""

_BINARY = ("LOSS", "WIN")
_TERNARY = ("SELL", "HOLD", "BUY")

# Φ⁻¹(3/4): the median of |Z| for a standard normal Z, so median(|r|) / _MEDIAN_ABS_Z
# estimates σ of zero-mean Gaussian returns.
_MEDIAN_ABS_Z = NormalDist().inv_cdf(0.75)

DEFAULT_FIXED_THRESHOLD = 0.01
"""The threshold of a fixed rule built from options without one (alphaops' default until the
volatility scale): 1% means a lot on daily equities and almost nothing on a wild crypto day."""

DEFAULT_VOLATILITY_WINDOW = 100
"""One-bar returns behind σ_t by default: about four days of hours, five months of days."""

# The balanced multiples of σ·√horizon, rounded to four places (the class shares move by
# less than 0.01 percentage points); the reasoning is in LabelRule.balanced.
_BALANCED: dict[tuple[str, str], float] = {
    ("ternary", "close"): round(NormalDist().inv_cdf(2 / 3), 4),  # 0.4307
    ("binary", "close"): 0.0,
    ("binary", "touch"): round(_MEDIAN_ABS_Z, 4),  # 0.6745
}

# A volatility multiple under this is no barrier at all (fewer than 4% of moves are that
# small); such a value is almost always a fraction meant for scale="fixed".
_SMALLEST_MULTIPLE = 0.05
_LARGEST_MULTIPLE = 10.0


class LabelRule(SpecModel):
    """How to label a bar: binary or ternary, over ``horizon`` bars, at a barrier.

    ``scale="fixed"`` (the default when reading a rule, so every rule written before the
    volatility scale keeps its meaning and hash) makes ``threshold`` a fraction;
    ``scale="volatility"`` makes it a multiple of ``σ·√horizon``, and a rule without a
    threshold gets the :meth:`balanced` one.

    >>> rule = LabelRule(kind="binary", horizon=4, threshold=0.01, price="touch")
    >>> rule.classes
    ('LOSS', 'WIN')
    >>> rule.describe("1h")
    'WIN when a high within the next 4 bars (4h) is at least 1% above the entry close, else LOSS'
    >>> LabelRule.from_dict({"kind": "ternary", "horizon": 4, "scale": "volatility"}).threshold
    0.4307
    >>> LabelRule(horizon=4, threshold=1)
    Traceback (most recent call last):
    ...
    alphaops.core.errors.SpecError: threshold=1.0 means 100%: thresholds are fractions. Fix: ...
    """

    spec_label: ClassVar[str] = "label rule"
    spec_example: ClassVar[str] = '{"kind": "binary", "horizon": 4, "threshold": 0.01}'

    kind: Literal["binary", "ternary"] = Field(
        "binary", description="binary: LOSS/WIN; ternary: SELL/HOLD/BUY."
    )
    horizon: int = Field(
        ge=1, le=MAX_PERIOD, strict=True, description="Bars after the entry bar to look at."
    )
    threshold: float = Field(
        ge=0,
        allow_inf_nan=False,
        strict=True,
        description="The barrier: with scale 'fixed' a fraction (0.01 means 1%); with scale "
        "'volatility' a multiple of σ·√horizon (default: the balanced multiple).",
    )
    price: Literal["close", "touch"] = Field(
        "close",
        description="close: the close at the horizon end; touch: any high within the horizon.",
    )
    scale: Literal["fixed", "volatility"] = Field(
        "fixed",
        description="fixed: threshold is a return; volatility: a multiple of σ_t·√horizon, "
        "σ_t the volatility of the one-bar returns up to bar t.",
    )
    volatility_window: int = Field(
        DEFAULT_VOLATILITY_WINDOW,
        ge=2,
        le=MAX_PERIOD,
        strict=True,
        description="One-bar returns behind σ_t (scale 'volatility' only).",
    )

    @classmethod
    def balanced(
        cls,
        kind: Literal["binary", "ternary"] = "ternary",
        horizon: int = 4,
        *,
        price: Literal["close", "touch"] = "close",
        volatility_window: int = DEFAULT_VOLATILITY_WINDOW,
    ) -> LabelRule:
        """Return the volatility-scaled rule whose classes are balanced by design.

        Under Gaussian returns the forward return over ``h`` bars is ``σ√h·Z`` with ``Z``
        standard normal, so the multiple ``k`` alone sets the class shares, on any market
        and timeframe:

        * ternary: HOLD is ``|Z| < k``; ``P(|Z| < k) = 1/3`` gives ``k = Φ⁻¹(2/3) ≈ 0.4307``,
          and SELL and BUY get 1/3 each by symmetry.
        * binary close: WIN is ``Z ≥ k``; only ``k = 0`` gives 1/2 (up against down). Any
          ``k > 0`` makes LOSS the majority, and a model that learns to say LOSS learns
          nothing; a flat close (``r = 0``) counts as WIN.
        * binary touch: WIN is ``max(path) ≥ k·σ√h``; by the reflection principle
          ``P(max ≥ b) = 2·P(r ≥ b)``, so ``1/2`` needs ``P(Z ≥ k) = 1/4``,
          ``k = Φ⁻¹(3/4) ≈ 0.6745`` (highs within a bar approximate the continuous path).

        Real returns have fatter tails than a Gaussian: more tiny moves and more huge ones.
        That is why σ_t is a robust scale (see :meth:`barriers`); with a plain standard
        deviation the tails inflate σ and HOLD takes 45-48% of hourly bars.

        >>> LabelRule.balanced("ternary", 4).describe("1h")
        'BUY when the close 4 bars (4h) later is at least 0.4307 σ·√4 above the entry close, SELL when it is at least 0.4307 σ·√4 below, else HOLD (σ: volatility of the last 100 one-bar returns)'
        >>> LabelRule.balanced("binary", 4, price="touch").threshold
        0.6745
        """
        return cls(
            kind=kind,
            horizon=horizon,
            threshold=_BALANCED.get((kind, price), _BALANCED["ternary", "close"]),
            price=price,
            scale="volatility",
            volatility_window=volatility_window,
        )

    @classmethod
    def from_options(
        cls,
        *,
        kind: str = "ternary",
        horizon: int = 4,
        threshold: float | None = None,
        scale: str = "volatility",
        price: str = "close",
        volatility_window: int | None = None,
    ) -> LabelRule:
        """Build a rule from command-line style options; raise :class:`SpecError` if invalid.

        Left out, ``threshold`` is the :meth:`balanced` multiple with ``scale="volatility"``
        and :data:`DEFAULT_FIXED_THRESHOLD` with ``scale="fixed"``.

        >>> LabelRule.from_options(scale="fixed").describe()
        'BUY when the close 4 bars later is at least 1% above the entry close, SELL when it is at least 1% below, else HOLD'
        >>> LabelRule.from_options(threshold=1.0).threshold, LabelRule.from_options().threshold
        (1.0, 0.4307)
        """
        data: dict[str, Any] = {"kind": kind, "horizon": horizon, "price": price, "scale": scale}
        if threshold is not None:
            data["threshold"] = threshold
        elif scale == "fixed":
            data["threshold"] = DEFAULT_FIXED_THRESHOLD
        if volatility_window is not None:
            data["volatility_window"] = volatility_window
        return cls.from_dict(data)

    @model_validator(mode="before")
    @classmethod
    def _balanced_by_default(cls, data: Any) -> Any:
        # A volatility rule without a threshold takes the balanced multiple.
        if isinstance(data, Mapping) and data.get("scale") == "volatility":
            key = (data.get("kind", "binary"), data.get("price", "close"))
            if "threshold" not in data and key in _BALANCED:
                return {**data, "threshold": _BALANCED[key]}
        return data

    @model_validator(mode="after")
    def _check_combination(self) -> Self:
        if self.kind == "ternary" and self.price == "touch":
            raise SpecError(
                "a ternary rule cannot use price='touch' (a bar may touch both barriers, "
                "and their order inside the bar is unknown)",
                fix="use price='close' for ternary labels, or kind='binary' for touch labels",
            )
        if self.scale == "fixed":
            self._check_fraction()
        else:
            self._check_multiple()
        return self

    def _check_fraction(self) -> None:
        if self.threshold == 0:
            raise SpecError(
                f"threshold={self.threshold!r}: a fixed threshold must be greater than 0",
                fix="give a fraction such as 0.01 (1%), or scale='volatility'",
                threshold=self.threshold,
            )
        if self.threshold >= 1:
            raise SpecError(
                f"threshold={self.threshold!r} means {self.threshold * 100:g}%: "
                "thresholds are fractions",
                fix="write 1% as 0.01",
                threshold=self.threshold,
            )
        if self.volatility_window != DEFAULT_VOLATILITY_WINDOW:
            raise SpecError(
                f"volatility_window={self.volatility_window} has no effect with scale='fixed'",
                fix="drop volatility_window, or set scale='volatility'",
                volatility_window=self.volatility_window,
            )

    def _check_multiple(self) -> None:
        k = self.threshold
        if k == 0 and (self.kind, self.price) != ("binary", "close"):
            raise SpecError(
                f"threshold=0 with scale='volatility' leaves a {self.kind} {self.price} rule "
                "without a barrier",
                fix=f"give a multiple of σ·√horizon such as "
                f"{_BALANCED.get((self.kind, self.price), 0.43)} (the balanced one)",
            )
        if 0 < k < _SMALLEST_MULTIPLE or k > _LARGEST_MULTIPLE:
            raise SpecError(
                f"threshold={k!r} with scale='volatility' is a multiple of σ·√horizon, "
                f"and must be 0 or lie in [{_SMALLEST_MULTIPLE}, {_LARGEST_MULTIPLE:g}]",
                fix="for a fraction of the price (0.01 = 1%) set scale='fixed'; for "
                "balanced classes leave the threshold out",
                threshold=k,
            )

    @model_serializer(mode="wrap")
    def _fixed_rules_serialize_as_before(
        self, handler: SerializerFunctionWrapHandler
    ) -> dict[str, Any]:
        # A fixed rule leaves the volatility fields out, so its canonical JSON, its hash and
        # the hashes of the jobs and datasets holding it are those of rules written before
        # the fields existed; reading such a dict back defaults to scale="fixed".
        data: dict[str, Any] = handler(self)
        if self.scale == "fixed":
            data.pop("scale", None)
            data.pop("volatility_window", None)
        return data

    @property
    def classes(self) -> tuple[str, ...]:
        """Return the class names; a label is the index of its class in this tuple."""
        return _BINARY if self.kind == "binary" else _TERNARY

    @property
    def rule_hash(self) -> str:
        """Return the sha256 of the canonical JSON of the rule (stable across processes)."""
        return sha256_hex(canonical_json(self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as plain JSON-ready data; :meth:`from_dict` reads it back.

        >>> LabelRule(horizon=4, threshold=0.01).to_dict()
        {'kind': 'binary', 'horizon': 4, 'threshold': 0.01, 'price': 'close'}
        >>> LabelRule.balanced("ternary", 4).to_dict()["scale"]
        'volatility'
        """
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelRule:
        """Build a rule from plain data; raise :class:`SpecError` if it is invalid."""
        if not isinstance(data, Mapping):
            raise SpecError(
                f"a label rule must be a mapping, not {type(data).__name__}",
                fix=f"pass e.g. {cls.spec_example}",
            )
        return cls.model_validate(dict(data))

    def barriers(self, candles: Candles) -> npt.NDArray[np.float64]:
        """Return the barrier (a return) of every bar of ``candles``; NaN where it is unknown.

        With scale ``fixed`` every bar's barrier is ``threshold``. With ``volatility`` it is
        ``threshold × σ_t × √horizon``, where ``σ_t = median(|r|) / Φ⁻¹(3/4)`` over the
        ``volatility_window`` one-bar returns ``r`` ending at bar ``t`` (``r_t`` is close
        ``t`` over close ``t-1``, minus 1). For Gaussian zero-mean returns this estimates the
        standard deviation; unlike it, one crash bar does not inflate the barrier of the
        next ``volatility_window`` bars. σ_t is NaN (the row is warm-up) when fewer than
        ``volatility_window`` returns lie behind bar ``t``, when one of them spans a gap
        (it is not a one-bar return), or when at least half of them are zero.

        A rolling window, not an exponential average, so that σ_t depends on those bars
        only: labels are the same whichever bar the candles happen to start at (training,
        gates and replay each load a different stretch).

        >>> import pandas as pd
        >>> close = (100 * np.cumprod([1, 1.02, 0.98, 1.02, 0.98])).tolist()  # |r| = 2%
        >>> candles = Candles.from_frame(pd.DataFrame({
        ...     "timestamp": pd.date_range("2025-01-01", periods=5, freq="1h", tz="UTC"),
        ...     "open": close, "high": close, "low": close, "close": close, "volume": 1.0}),
        ...     symbol="BTCUSDT", timeframe="1h")
        >>> LabelRule(horizon=1, threshold=0.01).barriers(candles).tolist()
        [0.01, 0.01, 0.01, 0.01, 0.01]
        >>> rule = LabelRule(horizon=4, threshold=0.5, scale="volatility", volatility_window=3)
        >>> rule.barriers(candles).round(4).tolist()  # 0.5 × (0.02 / 0.6745) × √4
        [nan, nan, nan, 0.0297, 0.0297]
        """
        n = len(candles)
        if self.scale == "fixed":
            return np.full(n, self.threshold, dtype=np.float64)
        close = candles.frame["close"].to_numpy(dtype=np.float64)
        bars = candles.calendar.bar_numbers(candles.timestamps_ms, candles.timeframe)
        moves = np.full(n, np.nan)
        moves[1:] = np.abs(close[1:] / close[:-1] - 1.0)
        moves[1:][np.diff(bars) != 1] = np.nan  # a return across a gap is no one-bar return
        # min_periods=window: a window holding a NaN (no history, a gap) yields NaN.
        window = self.volatility_window
        typical = pd.Series(moves).rolling(window, min_periods=window).median().to_numpy()
        sigma = typical / _MEDIAN_ABS_Z
        sigma[~(sigma > 0)] = np.nan  # a market that mostly did not move has no scale
        return np.asarray(self.threshold * sigma * math.sqrt(self.horizon), dtype=np.float64)

    def describe(self, timeframe: str | Timeframe | None = None) -> str:
        """Return the rule as one sentence; with ``timeframe``, also give the horizon as time.

        >>> LabelRule(kind="ternary", horizon=24, threshold=0.02).describe()
        'BUY when the close 24 bars later is at least 2% above the entry close, SELL when it is at least 2% below, else HOLD'
        >>> LabelRule.balanced("binary", 4).describe()
        'WIN when the close 4 bars later is not below the entry close, else LOSS (σ: volatility of the last 100 one-bar returns)'
        """
        bars = f"{self.horizon} bar" + ("s" if self.horizon != 1 else "")
        if timeframe is not None:
            bars += f" ({_duration(Timeframe.parse(timeframe).seconds * self.horizon)})"
        if self.scale == "fixed":
            move, sigma = f"{self.threshold * 100:g}%", ""
        else:
            move = f"{self.threshold:g} σ·√{self.horizon}"
            sigma = f" (σ: volatility of the last {self.volatility_window} one-bar returns)"
        if self.kind == "ternary":
            return (
                f"BUY when the close {bars} later is at least {move} above the entry close, "
                f"SELL when it is at least {move} below, else HOLD{sigma}"
            )
        if self.price == "touch":
            return (
                f"WIN when a high within the next {bars} is at least {move} above the entry "
                f"close, else LOSS{sigma}"
            )
        if self.threshold == 0:
            return f"WIN when the close {bars} later is not below the entry close, else LOSS{sigma}"
        return (
            f"WIN when the close {bars} later is at least {move} above the entry close, "
            f"else LOSS{sigma}"
        )


def _duration(seconds: int) -> str:
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, eq=False)
class LabelResult:
    """Labels of one candle series under one rule.

    ``frame`` has ``timestamp`` (entry bar), ``label_end`` (last bar looked at),
    ``forward_return`` (close at ``label_end`` / entry close - 1), for touch rules also
    ``max_return`` (highest high in the horizon / entry close - 1), for volatility-scaled
    rules also ``barrier`` (the return that counted as a move at that bar), and ``label``
    (int64 index into ``rule.classes``). ``dropped`` counts unlabelled rows by reason
    (:data:`DROP_REASONS`); a row counts under the first reason that applies.
    """

    symbol: str
    timeframe: Timeframe
    rule: LabelRule
    frame: pd.DataFrame
    dropped: Mapping[str, int]

    @property
    def class_counts(self) -> dict[str, int]:
        """Return how many rows carry each class, in class order (zeros included)."""
        counts = np.bincount(self.frame["label"].to_numpy(), minlength=len(self.rule.classes))
        return {name: int(n) for name, n in zip(self.rule.classes, counts, strict=True)}

    def __len__(self) -> int:
        return len(self.frame)


def make_labels(candles: Candles, rule: LabelRule) -> LabelResult:
    """Label every bar of ``candles`` that has a complete horizon (see the module docstring).

    Raise :class:`InsufficientDataError` if the series has no bar with a full horizon.
    """
    n, horizon = len(candles), rule.horizon
    if n <= horizon:
        raise InsufficientDataError(
            f"labels with horizon {horizon} need at least {horizon + 1} bars, but "
            f"{candles.symbol} {candles.timeframe} has {n}",
            fix="load more history or shorten the horizon",
            needed=horizon + 1,
            given=n,
        )
    frame = candles.frame
    entry = np.arange(n - horizon)
    end = entry + horizon
    # A horizon counts trading bars of the series' calendar: a weekend is no gap on a
    # market that closes for it, a missing session is.
    bars = candles.calendar.bar_numbers(candles.timestamps_ms, candles.timeframe)
    complete = (bars[end] - bars[entry]) == horizon
    barrier = rule.barriers(candles)[entry]
    measured = np.isfinite(barrier)
    close = frame["close"].to_numpy(dtype=np.float64)
    forward = close[end] / close[entry] - 1.0
    columns: dict[str, Any] = {
        "timestamp": frame["timestamp"].to_numpy()[entry],
        "label_end": frame["timestamp"].to_numpy()[end],
        "forward_return": forward,
    }
    if rule.price == "touch":
        high = frame["high"].to_numpy(dtype=np.float64)
        peak = sliding_window_view(high[1:], horizon).max(axis=1)
        columns["max_return"] = peak / close[entry] - 1.0
        label = columns["max_return"] >= barrier
    elif rule.kind == "binary":
        label = forward >= barrier
    else:
        label = np.where(forward >= barrier, 2, np.where(forward <= -barrier, 0, 1))
    if rule.scale == "volatility":
        columns["barrier"] = barrier
    columns["label"] = label.astype(np.int64)
    labelled = pd.DataFrame(columns)[complete & measured].reset_index(drop=True)
    return LabelResult(
        symbol=candles.symbol,
        timeframe=candles.timeframe,
        rule=rule,
        frame=labelled,
        dropped={
            "end_of_data": horizon,
            "gap": int((~complete).sum()),
            "warmup": int((complete & ~measured).sum()),
        },
    )
