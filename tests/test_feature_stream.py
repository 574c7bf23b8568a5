"""Live feature updates equal the batch computation bit for bit, on every market and kind.

The live runtime computes features one closed bar at a time (:class:`FeatureStream`); gates,
backtests and training compute them over a whole history (:class:`FeaturePipeline`). For
random specs covering every feature kind, and random slices of real hourly crypto, 5-minute
crypto, hourly FX and daily equity-index candles, the two agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaops.data.candles import Candles
from alphaops.features import (
    ATR,
    MACD,
    RSI,
    BollingerPctB,
    Feature,
    FeaturePipeline,
    FeatureSpec,
    FeatureStream,
    MACross,
    Returns,
    Volatility,
    VolumeZScore,
)

MARKETS = (("BTCUSDT", "1h"), ("ETHUSDT", "5m"), ("EURUSD", "1h"), ("SPX", "1d"))


@st.composite
def features(draw: st.DrawFn) -> Feature:
    period = st.integers(min_value=2, max_value=60)
    kind = draw(st.sampled_from(["returns", "vol", "rsi", "sma", "ema", "macd", "atr", "bb", "vz"]))
    if kind == "returns":
        return Returns(bars=draw(st.integers(1, 48)))
    if kind == "vol":
        return Volatility(window=draw(period))
    if kind == "rsi":
        return RSI(period=draw(period))
    if kind in ("sma", "ema"):
        fast = draw(st.integers(2, 30))
        return MACross(fast=fast, slow=fast + draw(st.integers(1, 40)), ma=kind)
    if kind == "macd":
        fast = draw(st.integers(2, 20))
        slow = fast + draw(st.integers(1, 20))
        return MACD(fast=fast, slow=slow, signal=draw(st.integers(2, 15)))
    if kind == "atr":
        return ATR(period=draw(period))
    if kind == "bb":
        return BollingerPctB(period=draw(period), num_std=draw(st.sampled_from([1.0, 2.0, 2.5])))
    return VolumeZScore(window=draw(period))


@st.composite
def specs(draw: st.DrawFn) -> FeatureSpec:
    chosen = draw(st.lists(features(), min_size=1, max_size=6, unique_by=lambda f: f.name))
    return FeatureSpec(features=tuple(chosen))


def stream_rows(spec: FeatureSpec, candles: Candles) -> np.ndarray:
    stream = FeatureStream(spec)
    frame = candles.frame
    cols = [frame[c].to_numpy(np.float64).tolist() for c in ("high", "low", "close", "volume")]
    return np.array([stream.update(*bar) for bar in zip(*cols, strict=True)])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(((a == b) | (np.isnan(a) & np.isnan(b))).all())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spec=specs(),
    market=st.sampled_from(MARKETS),
    start=st.floats(0.0, 1.0),
    length=st.integers(1, 1500),
)
def test_the_stream_equals_the_batch_bit_for_bit_on_random_specs_and_real_markets(
    load_real: Callable[[str, str], Candles],
    spec: FeatureSpec,
    market: tuple[str, str],
    start: float,
    length: int,
) -> None:
    candles = load_real(*market)
    first = int(start * max(0, len(candles) - length))
    window = Candles.from_frame(
        candles.frame.iloc[first : first + length], symbol=market[0], timeframe=market[1]
    )
    batch = FeaturePipeline(spec).transform(window)[list(spec.names)].to_numpy(np.float64)
    live = stream_rows(spec, window)
    assert live.shape == batch.shape
    assert same_bits(live, batch), [
        name for j, name in enumerate(spec.names) if not same_bits(live[:, j], batch[:, j])
    ]


@pytest.mark.parametrize("market", MARKETS)
def test_the_default_spec_streams_bit_for_bit_over_a_whole_market(
    load_real: Callable[[str, str], Candles], market: tuple[str, str]
) -> None:
    candles = load_real(*market).tail(20_000)
    spec = FeatureSpec.default()
    batch = FeaturePipeline(spec).transform(candles)[list(spec.names)].to_numpy(np.float64)
    live = stream_rows(spec, candles)
    assert same_bits(live, batch)
    assert np.isfinite(live[spec.warmup_bars - 1 :]).all()
    assert np.isnan(live[: spec.warmup_bars - 1]).any(axis=1).all()


def test_a_stream_is_ready_exactly_when_the_batch_row_is_complete() -> None:
    spec = FeatureSpec(features=(Returns(bars=3), RSI(period=5)))
    stream = FeatureStream(spec)
    for i in range(spec.warmup_bars):
        assert not stream.ready
        row = stream.update(101.0 + i, 99.0 + i, 100.0 + i, 5.0)
    assert stream.ready
    assert np.isfinite(row).all()
