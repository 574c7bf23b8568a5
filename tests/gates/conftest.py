"""Gate fixtures: a sound LightGBM trained on real BTCUSDT 1h data, and planted-defect models.

The data: the last 6,000 real BTCUSDT 1h bars. Models train on the first 4,500; gates judge
the last 1,500 (out of sample), with the bars before them used only to warm features up.

The sound model's label rule is ternary, 4 bars, 0.6%: on recent BTCUSDT 1h data about two
thirds of the bars are HOLD and a sixth each SELL and BUY, so every class is learnable; with
balanced class weights and a fixed 60 boosting rounds the model spreads its actions (no
action above ~65%) and its confidence (std ~0.1, P10-P90 ~0.28) and beats chance
(balanced accuracy ~0.37 vs 0.33, log loss below ln 3). Early stopping on this data stops
after ~20 rounds, leaving probabilities too close to the class prior (std ~0.06).
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from alphaops.data.candles import Candles
from alphaops.features import (
    RSI,
    FeaturePipeline,
    FeatureSpec,
    LabelRule,
    Returns,
    Volatility,
    VolumeZScore,
)
from alphaops.registry import Bundle, ModelVersion, Registry, open_registry, write_bundle
from alphaops.registry.testing import logistic_regression_onnx
from alphaops.training import TrainingJob, publish_trained, train_job

BARS = 6000
TRAIN_BARS = 4500
FEATURES = FeatureSpec(
    features=(
        Returns(bars=1),
        Returns(bars=4),
        Returns(bars=24),
        Volatility(window=24),
        RSI(period=14),
        VolumeZScore(window=24),
    )
)
LABEL = LabelRule(kind="ternary", horizon=4, threshold=0.006)
SOUND_PARAMS: dict[str, Any] = {"n_estimators": 60, "early_stopping_rounds": 0}
CLASSES = ("SELL", "HOLD", "BUY")


@dataclass(frozen=True)
class Market:
    """All candles, the training part, and the first out-of-sample bar (ms)."""

    candles: Candles
    train: Candles
    window_start_ms: int


@pytest.fixture(scope="session")
def market(load_real: Callable[[str, str], Candles]) -> Market:
    candles = load_real("BTCUSDT", "1h").tail(BARS)
    train = Candles.from_frame(candles.frame.iloc[:TRAIN_BARS], symbol="BTCUSDT", timeframe="1h")
    return Market(candles, train, int(candles.timestamps_ms[TRAIN_BARS]))


def sound_job(**changes: Any) -> TrainingJob:
    fields: dict[str, Any] = {
        "symbols": ("BTCUSDT",),
        "timeframe": "1h",
        "model": "lightgbm",
        "params": SOUND_PARAMS,
        "features": FEATURES,
        "label": LABEL,
        "seed": 7,
    }
    return TrainingJob(**(fields | changes))


@pytest.fixture(scope="session")
def gate_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A session registry holding the sound LightGBM as BTCUSDT/lightgbm/1."""
    with open_registry(tmp_path_factory.mktemp("gates") / "home") as registry:
        yield registry


@pytest.fixture(scope="session")
def sound_version(gate_registry: Registry, market: Market) -> ModelVersion:
    trained = train_job(sound_job(), {"BTCUSDT": market.train})
    return publish_trained(trained, gate_registry)


@pytest.fixture(scope="session")
def sound_bundle(gate_registry: Registry, sound_version: ModelVersion) -> Bundle:
    return gate_registry.load(sound_version.ref)


def feature_scale(market: Market, features: FeatureSpec = FEATURES) -> npt.NDArray[np.float64]:
    rows = FeaturePipeline(features).transform(market.train)[list(features.names)].to_numpy()
    return np.asarray(np.nanstd(rows, axis=0), dtype=np.float64)


def planted_onnx(kind: str, scale: npt.NDArray[np.float64], seed: int = 3) -> bytes:
    """A logistic regression over the FEATURES with a planted defect.

    constant: zero weights; majority: HOLD dominates; dead_zone: HOLD at ~0.5 with SELL and
    BUY at ~0.25; random: large random weights (varied, confident, and without skill);
    always_buy: varied probabilities whose largest is always BUY's.
    """
    rng = np.random.default_rng(seed)
    f = len(scale)
    unit = rng.normal(size=(f, 3)) / scale[:, None]
    weights, bias = {
        "constant": (np.zeros((f, 3)), np.log([0.2, 0.5, 0.3])),
        "majority": (0.3 * unit, np.array([0.0, 2.5, 0.0])),
        "dead_zone": (0.02 * unit, np.log([0.25, 0.5, 0.25])),
        "random": (3.0 * unit, np.zeros(3)),
        "always_buy": (0.05 * unit, np.array([0.0, 0.0, 8.0])),
    }[kind]
    return logistic_regression_onnx(weights.astype(np.float32), bias.astype(np.float32))


def write_planted(
    folder: Path,
    model: bytes,
    market: Market,
    *,
    model_type: str,
    features: FeatureSpec = FEATURES,
    label: LabelRule = LABEL,
) -> Bundle:
    """Write a bundle for ``model`` with ``features`` and ``label``, like the trainer does."""
    rows = FeaturePipeline(features).transform(market.train)[list(features.names)].to_numpy()
    reference = rows[np.isfinite(rows).all(axis=1)][:8].astype(np.float32)
    from alphaops.inference import OnnxSession

    expected = OnnxSession(model).run(reference)
    manifest = {
        "symbol": market.train.symbol,
        "model_type": model_type,
        "features": [{"name": n, "dtype": "float32"} for n in features.names],
        "input": {"kind": "tabular", "n_features": len(features.names)},
        "label": {
            "rule": label.kind,
            "horizon": label.horizon,
            "threshold": label.threshold,
            "params": {"price": label.price},
            "class_order": list(CLASSES),
        },
        "data": {
            "start": market.train.frame["timestamp"].iloc[0].isoformat(),
            "end": market.train.frame["timestamp"].iloc[-1].isoformat(),
            "timeframe": market.train.timeframe.value,
            "fingerprint": market.train.fingerprint,
            "rows": len(market.train),
        },
        "seed": 0,
        "code_version": "test",
        "params": {"feature_spec_hash": features.spec_hash},
    }
    report = {"job": {"features": features.to_dict()}}
    return write_bundle(
        folder,
        model_onnx=model,
        reference_inputs=reference,
        reference_expected=expected,
        manifest=manifest,
        reports={"training.json": json.dumps(report).encode()},
    )


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory, market: Market) -> Callable[[str], Bundle]:
    """Return ``planted(kind)``: a verified bundle of a planted-defect model (cached)."""
    scale = feature_scale(market)
    cache: dict[str, Bundle] = {}

    def build(kind: str) -> Bundle:
        if kind not in cache:
            folder = tmp_path_factory.mktemp(f"planted-{kind}") / "bundle"
            model_type = f"planted_{kind}".replace("_", "-")
            cache[kind] = write_planted(
                folder, planted_onnx(kind, scale), market, model_type=model_type
            )
        return cache[kind]

    return build


# The planted-edge market (see test_planted_edge.py): real ETHUSDT 1h bars with a momentum
# drift of EDGE_STRENGTH * tanh(z) planted in every bar's return, z the 24-bar return over its
# volatility at the previous close. Models train on the first EDGE_TRAIN_BARS bars.
EDGE_SYMBOL = "ETHUSDT"
EDGE_BARS = 8000
EDGE_TRAIN_BARS = 6000
MOMENTUM_BARS = 24
EDGE_STRENGTH = 0.002


def plant_momentum(
    frame: pd.DataFrame, strength: float
) -> tuple[pd.DataFrame, npt.NDArray[np.float64]]:
    """Return the frame with the momentum drift planted, and the drift of every bar."""
    close = frame["close"].to_numpy(np.float64)
    real = np.diff(np.log(close))
    planted = np.empty_like(close)
    planted[0] = close[0]
    drift = np.zeros_like(close)
    for t in range(1, close.size):
        if t > MOMENTUM_BARS:
            past = planted[t - 1 - MOMENTUM_BARS : t]
            scale = np.diff(np.log(past)).std() * np.sqrt(MOMENTUM_BARS)
            drift[t] = strength * np.tanh((past[-1] / past[0] - 1.0) / scale)
        planted[t] = planted[t - 1] * np.exp(real[t - 1] + drift[t])
    out = frame.copy()
    factor = planted / close
    for column in ("open", "high", "low", "close"):
        out[column] = frame[column].to_numpy(np.float64) * factor
    return out, drift


@dataclass(frozen=True)
class PlantedMarket:
    market: Market
    drift: npt.NDArray[np.float64]

    @property
    def close(self) -> npt.NDArray[np.float64]:
        return self.market.candles.frame["close"].to_numpy(np.float64)


@pytest.fixture(scope="session")
def planted_market(load_real: Callable[[str, str], Candles]) -> PlantedMarket:
    real = load_real(EDGE_SYMBOL, "1h").tail(EDGE_BARS)
    assert real.gaps.count == 0  # the recursion below assumes consecutive bars
    frame, drift = plant_momentum(real.frame.reset_index(drop=True), EDGE_STRENGTH)
    candles = Candles.from_frame(frame, symbol=EDGE_SYMBOL, timeframe="1h")
    train = Candles.from_frame(frame.iloc[:EDGE_TRAIN_BARS], symbol=EDGE_SYMBOL, timeframe="1h")
    market = Market(candles, train, int(candles.timestamps_ms[EDGE_TRAIN_BARS]))
    return PlantedMarket(market, drift)


@contextmanager
def user_code(folder: Path, name: str, source: str) -> Iterator[object]:
    """Install ``source`` as an importable module ``name`` (a user's feature code) while open."""
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)
