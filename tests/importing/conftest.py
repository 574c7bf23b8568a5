"""Import fixtures: legacy model folders built the way bots save them, from real candles.

Models are trained in the test on the last 3,000 real BTCUSDT 1h candles with alphaops's own
feature code (so names map to alphaops features) and saved with joblib, as self-learning bots
do. A golden batch comes from the same candle file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import joblib  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest

from alphaops.data.candles import Candles
from alphaops.features import FeaturePipeline, FeatureSpec
from alphaops.features.spec import MACD, RSI, Returns, Volatility
from alphaops.importing import GoldenData

BARS = 3000
SPEC = FeatureSpec(
    features=(Returns(bars=1), Returns(bars=4), Volatility(window=24), RSI(period=14), MACD())
)
COLUMNS = list(SPEC.names)


@dataclass(frozen=True)
class Frame:
    """Features and next-bar direction labels of real candles."""

    X: np.ndarray
    y: np.ndarray
    frame: pd.DataFrame


@pytest.fixture(scope="session")
def btc_tail(load_real: Callable[[str, str], Candles]) -> Candles:
    candles = load_real("BTCUSDT", "1h")
    return Candles.from_frame(candles.frame.tail(BARS), symbol="BTCUSDT", timeframe="1h")


@pytest.fixture(scope="session")
def btc_features(btc_tail: Candles) -> Frame:
    frame = FeaturePipeline(SPEC).transform(btc_tail)
    close = btc_tail.frame["close"].to_numpy()
    up = np.r_[close[1:] > close[:-1], False].astype(int)
    frame = frame.assign(label=up).iloc[:-1].dropna()
    return Frame(frame[COLUMNS].to_numpy(), frame["label"].to_numpy(), frame)


@pytest.fixture
def golden(btc_tail: Candles) -> GoldenData:
    def candles(symbol: str, timeframe: str) -> Candles:
        assert (symbol, timeframe) == ("BTCUSDT", "1h")
        return btc_tail

    return GoldenData(candles=candles)


def save_legacy(folder: Path, model: object, *, name: str = "BTCUSDT_lightgbm") -> Path:
    """Save ``model`` and its feature list as a self-learning bot does; return the model file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pkl"
    joblib.dump(model, path)
    joblib.dump(COLUMNS, folder / f"{name.split('_')[0]}_features.pkl")
    return path


class WritesMarker:
    """Unpickling this runs ``exec``: it writes the loading process's pid to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        code = f"import os; open({str(self.path)!r}, 'w').write(str(os.getpid()))"
        return (exec, (code,))


class OpensSocket:
    """Unpickling this connects to ``port`` on localhost."""

    def __init__(self, port: int) -> None:
        self.port = port

    def __reduce__(self) -> tuple[object, tuple[str]]:
        code = f"import socket; socket.create_connection(('127.0.0.1', {self.port}), timeout=2)"
        return (exec, (code,))


class Runs:
    """Unpickling this runs ``code`` (for limit tests: loops, sleeps, allocations)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (self.code,))
