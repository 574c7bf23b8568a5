"""The lookahead audit checks every bar: sparse leaks in custom features are always caught."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.gates.conftest import CLASSES, FEATURES, LABEL, Market, user_code

from alphaops.core.errors import LookaheadError
from alphaops.data.candles import Candles
from alphaops.features import (
    ATR,
    MACD,
    RSI,
    BollingerPctB,
    CustomFeature,
    FeaturePipeline,
    FeatureSpec,
    MACross,
    Returns,
    Volatility,
    VolumeZScore,
    audit_lookahead,
    check_lookahead,
)
from alphaops.gates import lookahead_audit
from alphaops.inference import OnnxSession
from alphaops.registry import Bundle, write_bundle
from alphaops.registry.testing import logistic_regression_onnx
from alphaops.scoring import BundlePredictor

MODULE = "user_lookahead_features"
SOURCE = '''
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def honest(bars, window=24):
    close = np.asarray(bars.close)
    out = np.full(close.size, np.nan)
    if close.size >= window:
        out[window - 1 :] = close[window - 1 :] / sliding_window_view(close, window).mean(1) - 1
    return out


def leak_bars(close, every, phase):
    """The bars that leak: about one in ``every``, chosen by a hash of the close's bits."""
    bits = close.view(np.uint64)
    mixed = (bits ^ (bits >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
    hit = (mixed >> np.uint64(32)) % np.uint64(every) == np.uint64(phase)
    hit[-1] = False
    return hit


def leak(bars, every=24, phase=0):
    """The last bar's return, except on one bar in ``every``: the next bar's return."""
    close = np.asarray(bars.close)
    out = np.full(close.size, np.nan)
    out[1:] = close[1:] / close[:-1] - 1.0
    at = np.flatnonzero(leak_bars(close, every, phase))
    out[at] = close[at + 1] / close[at] - 1.0
    return out
'''


@pytest.fixture(scope="module")
def user_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with user_code(tmp_path_factory.mktemp("user_code"), MODULE, SOURCE) as module:
        yield module


def leaky(every: int, phase: int) -> CustomFeature:
    return CustomFeature(
        path=f"{MODULE}:leak", warmup=2, params={"every": every, "phase": phase}, column="leak"
    )


def leaking_stamps(module: object, candles: Candles, every: int, phase: int) -> set[int]:
    """Bars where the leak changes the value by more than the audit's 1e-6 (not the first)."""
    close = candles.frame["close"].to_numpy(np.float64)
    hit = module.leak_bars(close, every, phase)  # type: ignore[attr-defined]
    hit[0] = False
    at = np.flatnonzero(hit)
    changed = at[np.abs(close[at + 1] / close[at] - close[at] / close[at - 1]) > 1e-6]
    return {int(t) for t in candles.timestamps_ms[changed]}


MARKETS = [("BTCUSDT", "1h"), ("ETHUSDT", "1h"), ("ADAUSDT", "1h"), ("BNBUSDT", "5m")]


@pytest.mark.parametrize("every", [24, 100])
@pytest.mark.parametrize("seed", range(20))
def test_a_feature_leaking_on_one_bar_in_every_is_caught_at_every_leaking_bar(
    user_module: object,
    load_real: Callable[[str, str], Candles],
    every: int,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    symbol, timeframe = MARKETS[seed % len(MARKETS)]
    full = load_real(symbol, timeframe)
    first = int(rng.integers(0, len(full) - 3000))
    candles = Candles.from_frame(
        full.frame.iloc[first : first + 3000], symbol=symbol, timeframe=timeframe
    )
    phase = int(rng.integers(0, every))
    spec = FeatureSpec(features=(Returns(bars=1), leaky(every, phase)))
    audit = audit_lookahead(spec, candles)
    expected = leaking_stamps(user_module, candles, every, phase)
    assert 3000 / every / 3 < len(expected) < 3000 / every * 3  # about one bar in ``every``
    assert not audit.passed
    assert audit.audited == 3000
    assert set(audit.mismatched_bars_ms) == expected  # every leaking bar, and only those
    with pytest.raises(LookaheadError, match="feature leak reads the future") as caught:
        check_lookahead(spec, candles)
    first_leak = str(np.datetime64(min(expected), "ms").astype("datetime64[s]")) + "Z"
    assert first_leak in str(caught.value)


@pytest.mark.parametrize("market", MARKETS)
def test_every_built_in_kind_and_an_honest_custom_feature_pass_bit_for_bit(
    user_module: object, load_real: Callable[[str, str], Candles], market: tuple[str, str]
) -> None:
    candles = load_real(*market).tail(5000)
    spec = FeatureSpec(
        features=(
            *FeatureSpec.default().features,
            MACross(fast=5, slow=50, ma="ema"),
            ATR(period=7),
            RSI(period=30),
            MACD(fast=5, slow=35, signal=5),
            BollingerPctB(period=50, num_std=1.5),
            Volatility(window=100),
            VolumeZScore(window=72),
            CustomFeature(path=f"{MODULE}:honest", warmup=24),
        )
    )
    audit = audit_lookahead(spec, candles)
    assert audit.passed
    assert audit.audited == 5000
    assert audit.worst < 1e-12


def custom_bundle(folder: Path, market: Market, feature: CustomFeature) -> Bundle:
    """A logistic regression over FEATURES plus ``feature``, written like the trainer does."""
    spec = FeatureSpec(features=(*FEATURES.features, feature))
    rows = FeaturePipeline(spec).transform(market.train)[list(spec.names)].to_numpy()
    scale = np.nanstd(rows, axis=0)
    weights = np.random.default_rng(5).normal(size=(len(spec.names), 3)) / scale[:, None]
    model = logistic_regression_onnx(weights.astype(np.float32), np.zeros(3, np.float32))
    reference = rows[np.isfinite(rows).all(axis=1)][:8].astype(np.float32)
    manifest = {
        "symbol": "BTCUSDT",
        "model_type": "custom-features",
        "features": [{"name": n, "dtype": "float32"} for n in spec.names],
        "input": {"kind": "tabular", "n_features": len(spec.names)},
        "label": {
            "rule": LABEL.kind,
            "horizon": LABEL.horizon,
            "threshold": LABEL.threshold,
            "params": {"price": LABEL.price},
            "class_order": list(CLASSES),
        },
        "data": {
            "start": market.train.frame["timestamp"].iloc[0].isoformat(),
            "end": market.train.frame["timestamp"].iloc[-1].isoformat(),
            "timeframe": "1h",
            "fingerprint": market.train.fingerprint,
            "rows": len(market.train),
        },
        "seed": 0,
        "code_version": "test",
        "params": {"feature_spec_hash": spec.spec_hash},
    }
    return write_bundle(
        folder,
        model_onnx=model,
        reference_inputs=reference,
        reference_expected=OnnxSession(model).run(reference),
        manifest=manifest,
        reports={"training.json": json.dumps({"job": {"features": spec.to_dict()}}).encode()},
    )


@pytest.mark.parametrize(("every", "seed"), [(24, 0), (24, 1), (24, 2), (100, 0), (100, 1)])
def test_the_gate_fails_a_model_on_a_sparsely_leaking_feature_naming_it_and_its_bars(
    user_module: object, market: Market, tmp_path: Path, every: int, seed: int
) -> None:
    phase = int(np.random.default_rng(seed).integers(0, every))
    bundle = custom_bundle(tmp_path / "bundle", market, leaky(every, phase))
    predictor = BundlePredictor(bundle)
    batch = predictor.score(market.candles, start_ms=market.window_start_ms)
    outcome = lookahead_audit(predictor, market.candles, batch)
    window = Candles.from_frame(
        market.candles.frame.iloc[len(market.train) :], symbol="BTCUSDT", timeframe="1h"
    )
    expected = leaking_stamps(user_module, window, every, phase)
    assert not outcome.passed
    assert expected
    assert outcome.value("mismatched_bars") == len(expected)
    assert outcome.data["audited"] == len(batch)
    assert "feature leak reads the future" in outcome.checks[0].explanation
    first = str(np.datetime64(min(expected), "ms"))
    assert first in outcome.checks[0].explanation


def test_the_gate_passes_a_model_on_an_honest_custom_feature_bit_for_bit(
    user_module: object, market: Market, tmp_path: Path
) -> None:
    feature = CustomFeature(path=f"{MODULE}:honest", warmup=24)
    predictor = BundlePredictor(custom_bundle(tmp_path / "bundle", market, feature))
    batch = predictor.score(market.candles, start_ms=market.window_start_ms)
    outcome = lookahead_audit(predictor, market.candles, batch)
    assert outcome.passed, outcome.checks
    assert outcome.data["audited"] == len(batch) == len(market.candles) - len(market.train)
    assert outcome.value("max_probability_difference") == 0.0
