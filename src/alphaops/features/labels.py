"""Labels: what a model learns to predict, from a frozen, hashable :class:`LabelRule`.

A label at bar ``t`` enters at the close of ``t`` and looks at the next ``horizon`` bars,
``t+1 .. t+horizon``; ``label_end`` is the open time of bar ``t+horizon``, so the label is
known at ``label_end + timeframe`` (its close). Rows without a full horizon are dropped,
never guessed: the last ``horizon`` rows, and rows whose horizon crosses a data gap (bar
``t+horizon`` is not exactly ``horizon`` timeframes after bar ``t``).

* ``binary`` / ``close``: WIN if the close ``horizon`` bars later is at least ``threshold``
  above the entry close, else LOSS.
* ``binary`` / ``touch``: WIN if any high in the next ``horizon`` bars reaches at least
  ``threshold`` above the entry close ("rises 1% within 4 hours"), else LOSS.
* ``ternary`` (close only): BUY if the forward return is ``>= threshold``, SELL if it is
  ``<= -threshold``, else HOLD.

``label`` is the index into :attr:`LabelRule.classes`.

>>> import pandas as pd
>>> from alphaops.data.candles import Candles
>>> close = [100.0, 101.0, 99.0, 99.5, 101.0]
>>> frame = pd.DataFrame({
...     "timestamp": pd.date_range("2025-01-01", periods=5, freq="1h", tz="UTC"),
...     "open": close, "high": close, "low": close, "close": close, "volume": 1.0})
>>> candles = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")
>>> rule = LabelRule(kind="ternary", horizon=1, threshold=0.01)
>>> result = make_labels(candles, rule)
>>> [rule.classes[i] for i in result.frame["label"]]
['BUY', 'SELL', 'HOLD', 'BUY']
>>> result.dropped, result.class_counts
({'end_of_data': 1, 'gap': 0}, {'SELL': 1, 'HOLD': 1, 'BUY': 2})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, model_validator

from alphaops.core.errors import InsufficientDataError, SpecError
from alphaops.core.specs import MAX_PERIOD, SpecModel, canonical_json, sha256_hex
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles

__all__ = ["DROP_REASONS", "LabelResult", "LabelRule", "make_labels"]

DROP_REASONS = ("end_of_data", "gap")
"""Why a row gets no label: its horizon runs past the data, or across a gap."""

_BINARY = ("LOSS", "WIN")
_TERNARY = ("SELL", "HOLD", "BUY")


class LabelRule(SpecModel):
    """How to label a bar: binary or ternary, over ``horizon`` bars, at ``threshold``.

    >>> rule = LabelRule(kind="binary", horizon=4, threshold=0.01, price="touch")
    >>> rule.classes
    ('LOSS', 'WIN')
    >>> rule.describe("1h")
    'WIN when a high within the next 4 bars (4h) is at least 1% above the entry close, else LOSS'
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
        gt=0,
        allow_inf_nan=False,
        strict=True,
        description="Return that counts as a move, as a fraction: 0.01 means 1%.",
    )
    price: Literal["close", "touch"] = Field(
        "close",
        description="close: the close at the horizon end; touch: any high within the horizon.",
    )

    @model_validator(mode="after")
    def _check_combination(self) -> Self:
        if self.threshold >= 1:
            raise SpecError(
                f"threshold={self.threshold!r} means {self.threshold * 100:g}%: "
                "thresholds are fractions",
                fix="write 1% as 0.01",
                threshold=self.threshold,
            )
        if self.kind == "ternary" and self.price == "touch":
            raise SpecError(
                "a ternary rule cannot use price='touch' (a bar may touch both barriers, "
                "and their order inside the bar is unknown)",
                fix="use price='close' for ternary labels, or kind='binary' for touch labels",
            )
        return self

    @property
    def classes(self) -> tuple[str, ...]:
        """Return the class names; a label is the index of its class in this tuple."""
        return _BINARY if self.kind == "binary" else _TERNARY

    @property
    def rule_hash(self) -> str:
        """Return the sha256 of the canonical JSON of the rule (stable across processes)."""
        return sha256_hex(canonical_json(self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as plain JSON-ready data; :meth:`from_dict` reads it back."""
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

    def describe(self, timeframe: str | Timeframe | None = None) -> str:
        """Return the rule as one sentence; with ``timeframe``, also give the horizon as time.

        >>> LabelRule(kind="ternary", horizon=24, threshold=0.02).describe()
        'BUY when the close 24 bars later is at least 2% above the entry close, SELL when it is at least 2% below, else HOLD'
        """
        bars = f"{self.horizon} bar" + ("s" if self.horizon != 1 else "")
        if timeframe is not None:
            bars += f" ({_duration(Timeframe.parse(timeframe).seconds * self.horizon)})"
        pct = f"{self.threshold * 100:g}%"
        if self.kind == "ternary":
            return (
                f"BUY when the close {bars} later is at least {pct} above the entry close, "
                f"SELL when it is at least {pct} below, else HOLD"
            )
        if self.price == "touch":
            return (
                f"WIN when a high within the next {bars} is at least {pct} above the entry "
                "close, else LOSS"
            )
        return f"WIN when the close {bars} later is at least {pct} above the entry close, else LOSS"


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
    ``max_return`` (highest high in the horizon / entry close - 1), and ``label`` (int64
    index into ``rule.classes``). ``dropped`` counts unlabelled rows by reason
    (:data:`DROP_REASONS`).
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
        label = (columns["max_return"] >= rule.threshold).astype(np.int64)
    elif rule.kind == "binary":
        label = (forward >= rule.threshold).astype(np.int64)
    else:
        label = np.where(forward >= rule.threshold, 2, np.where(forward <= -rule.threshold, 0, 1))
    columns["label"] = label.astype(np.int64)
    labelled = pd.DataFrame(columns)[complete].reset_index(drop=True)
    return LabelResult(
        symbol=candles.symbol,
        timeframe=candles.timeframe,
        rule=rule,
        frame=labelled,
        dropped={"end_of_data": horizon, "gap": int((~complete).sum())},
    )
