"""Training fixtures: small real datasets (BTCUSDT 1h, last 3,000 bars) and fast model params."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from alphaops.data.candles import Candles
from alphaops.features import RSI, FeatureSpec, LabelRule, Returns, Volatility, VolumeZScore
from alphaops.training import TrainingJob
from alphaops.training.data import PreparedData, prepare_data

BARS = 3000
LOOKBACK = 16
# Small but real: a few seconds per torch fit, well under a second per tree model.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 30, "max_depth": 6},
    "lightgbm": {"n_estimators": 40},
    "xgboost": {"n_estimators": 40},
    "lstm": {"hidden": 16, "max_epochs": 2},
    "patchtst": {"d_model": 16, "heads": 2, "layers": 1, "max_epochs": 2},
}
FAMILIES = tuple(FAST_PARAMS)
LABELS = {
    "binary": LabelRule(kind="binary", horizon=4, threshold=0.005),
    "ternary": LabelRule(kind="ternary", horizon=4, threshold=0.01),
}
# A short warm-up (about 50 bars) leaves most of the 3,000 bars for training.
FEATURES = FeatureSpec(
    features=(
        Returns(bars=1),
        Returns(bars=4),
        Volatility(window=24),
        RSI(period=14),
        VolumeZScore(window=24),
    )
)


def make_job(model: str, task: str = "ternary", **changes: Any) -> TrainingJob:
    """Return a fast job on BTCUSDT 1h for ``model`` and ``task``; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "symbols": ("BTCUSDT",),
        "timeframe": "1h",
        "model": model,
        "params": FAST_PARAMS[model],
        "features": FEATURES,
        "label": LABELS[task],
        "lookback": LOOKBACK,
        "seed": 7,
    }
    return TrainingJob(**(fields | changes))


@pytest.fixture(scope="session")
def btc(load_real: Callable[[str, str], Candles]) -> dict[str, Candles]:
    """Return the last 3,000 real BTCUSDT 1h candles, keyed by symbol."""
    return {"BTCUSDT": load_real("BTCUSDT", "1h").tail(BARS)}


@pytest.fixture(scope="session")
def market(load_real: Callable[[str, str], Candles]) -> dict[str, Candles]:
    """Return the last 3,000 real 1h candles of BTCUSDT, ETHUSDT and SOLUSDT."""
    return {s: load_real(s, "1h").tail(BARS) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")}


@pytest.fixture(scope="session")
def prepared(btc: dict[str, Candles]) -> Callable[[str, str], PreparedData]:
    """Return ``prepared(model, task)``: the split data of :func:`make_job` (cached)."""

    @cache
    def build(model: str, task: str) -> PreparedData:
        return prepare_data(make_job(model, task), btc)

    return build
