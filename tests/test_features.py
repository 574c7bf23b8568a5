"""Feature specs and the feature pipeline: validation, hashing, values, live == batch, causality."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import types
import typing
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import alphaops.features as features_pkg
from alphaops.core.errors import InsufficientDataError, SpecError, UsageError
from alphaops.data.candles import Candles
from alphaops.features import (
    ATR,
    CONVERGENCE_TOLERANCE,
    MACD,
    RSI,
    BollingerPctB,
    Feature,
    FeaturePipeline,
    FeatureSpec,
    MACross,
    Returns,
    Volatility,
    VolumeZScore,
)

Loader = Callable[[str, str], Candles]

# Small periods so that a few hundred random bars reach every feature's warm-up.
SMALL_SPEC = FeatureSpec(
    features=(
        RSI(period=3),
        MACross(fast=2, slow=5, ma="ema"),
        MACross(fast=2, slow=5, ma="sma"),
        Volatility(window=3),
        Returns(bars=2),
        ATR(period=3),
        MACD(fast=2, slow=5, signal=3),
        BollingerPctB(period=4, num_std=1.5),
        VolumeZScore(window=4),
    )
)
# Features whose value is computed from their own window only: live equals batch bit for bit.
WINDOW_ONLY = (
    "returns_1",
    "returns_4",
    "returns_24",
    "volatility_24",
    "bollinger_pctb_20_2",
    "volume_zscore_24",
)


def candles_from(
    close: list[float] | np.ndarray,
    *,
    high: list[float] | np.ndarray | None = None,
    low: list[float] | np.ndarray | None = None,
    volume: list[float] | np.ndarray | None = None,
    timestamps: pd.DatetimeIndex | None = None,
    symbol: str = "BTCUSDT",
) -> Candles:
    """Return 1h candles with open = close (unless high/low say otherwise)."""
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    stamps = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC")
    frame = pd.DataFrame(
        {
            "timestamp": stamps if timestamps is None else timestamps,
            "open": close,
            "high": close if high is None else np.asarray(high, dtype=np.float64),
            "low": close if low is None else np.asarray(low, dtype=np.float64),
            "close": close,
            "volume": np.ones(n) if volume is None else np.asarray(volume, dtype=np.float64),
        }
    )
    return Candles.from_frame(frame, symbol=symbol, timeframe="1h")


def random_walk_frame(n: int, seed: int, sigma: float, *, gaps: bool = True) -> pd.DataFrame:
    """Return a valid random-walk OHLCV frame: consistent wicks, some zero volumes and gaps."""
    rng = np.random.default_rng(seed)
    start = float(rng.uniform(0.01, 50_000))
    close = start * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    open_ = np.concatenate([[start], close[:-1]])
    wicks = np.abs(rng.normal(0.0, sigma / 2, (2, n)))
    volume = rng.lognormal(3.0, 1.0, n)
    volume[rng.random(n) < 0.05] = 0.0
    steps = np.ones(n, dtype=np.int64)
    if gaps:
        steps[1:] += (rng.random(n - 1) < 0.02) * rng.integers(1, 6, n - 1)
    hours = np.cumsum(steps) - 1
    return pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h"),
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(wicks[0]),
            "low": np.minimum(open_, close) * np.exp(-wicks[1]),
            "close": close,
            "volume": volume,
        }
    )


def as_candles(frame: pd.DataFrame) -> Candles:
    return Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")


def values(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    return frame[list(names)].to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def btc(load_real: Loader) -> Candles:
    return load_real("BTCUSDT", "1h")


@pytest.fixture(scope="module")
def btc_features(btc: Candles) -> pd.DataFrame:
    return FeaturePipeline(FeatureSpec.default()).transform(btc)


# --- the spec --------------------------------------------------------------------------


def test_public_names_match_dunder_all() -> None:
    public = {
        name
        for name, value in vars(features_pkg).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(features_pkg.__all__)


def test_default_spec_has_every_feature_kind_with_stable_names() -> None:
    spec = FeatureSpec.default()
    models = typing.get_args(typing.get_args(Feature)[0])
    all_kinds = {model.model_fields["kind"].default for model in models}
    assert {f.kind for f in spec.features} == all_kinds - {"custom"}  # users' own features
    assert spec.names == (
        "returns_1",
        "returns_4",
        "returns_24",
        "volatility_24",
        "rsi_14",
        "ma_cross_sma_10_30",
        "ma_cross_ema_12_26",
        "macd_12_26_9",
        "atr_14",
        "bollinger_pctb_20_2",
        "volume_zscore_24",
    )
    assert spec.warmup_bars == max(f.warmup_bars for f in spec.features) == 518


def test_fractional_band_width_is_spelled_without_a_dot_in_the_name() -> None:
    assert BollingerPctB(period=20, num_std=2.5).name == "bollinger_pctb_20_2p5"


def test_recursive_warmup_leaves_seed_weight_below_convergence_tolerance() -> None:
    # Bars beyond the look-back, and the weight (1 - alpha) ** bars the seed keeps after them.
    rsi_extra = RSI(period=14).warmup_bars - 15
    assert (1 - 1 / 14) ** rsi_extra <= CONVERGENCE_TOLERANCE < (1 - 1 / 14) ** (rsi_extra - 1)
    ema_extra = MACross(fast=12, slow=26, ma="ema").warmup_bars - 26
    assert (1 - 2 / 27) ** ema_extra <= CONVERGENCE_TOLERANCE
    assert MACross(fast=12, slow=26, ma="sma").warmup_bars == 26
    assert Returns(bars=24).warmup_bars == 25


def test_spec_hash_is_equal_for_separately_built_equal_specs() -> None:
    built = FeatureSpec.default()
    parsed = FeatureSpec.from_dict(json.loads(json.dumps(FeatureSpec.default().to_dict())))
    from_json = FeatureSpec.from_json(built.model_dump_json())
    assert built == parsed == from_json
    assert built.spec_hash == parsed.spec_hash == from_json.spec_hash
    assert len(built.spec_hash) == 64


def test_spec_hash_is_the_same_in_a_fresh_process_with_other_hash_seed() -> None:
    code = "from alphaops.features import FeatureSpec; print(FeatureSpec.default().spec_hash)"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == FeatureSpec.default().spec_hash


@pytest.mark.parametrize(
    "changed",
    [
        RSI(period=15),
        MACross(fast=10, slow=30, ma="ema"),
        BollingerPctB(period=20, num_std=2.5),
        MACD(fast=12, slow=26, signal=10),
    ],
)
def test_spec_hash_changes_when_a_parameter_changes(changed: Feature) -> None:
    base = FeatureSpec(features=(RSI(period=14), MACross(), BollingerPctB(), MACD()))
    swapped = tuple(changed if f.kind == changed.kind else f for f in base.features)
    assert FeatureSpec(features=swapped).spec_hash != base.spec_hash


def test_spec_hash_depends_on_feature_order() -> None:
    a = FeatureSpec(features=(RSI(), ATR()))
    b = FeatureSpec(features=(ATR(), RSI()))
    assert a.spec_hash != b.spec_hash


def test_specs_are_frozen_and_hashable() -> None:
    spec = FeatureSpec.default()
    assert len({spec, FeatureSpec.default()}) == 1
    with pytest.raises(ValidationError, match="frozen"):
        spec.features = ()  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        spec.features[0].bars = 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ({"kind": "rsi", "period": 1}, "period=1"),
        ({"kind": "rsi", "period": True}, "period=True"),
        ({"kind": "rsi", "period": "14"}, "period='14'"),
        ({"kind": "atr", "period": 20_000}, "period=20000"),
        ({"kind": "ma_cross", "fast": 30, "slow": 10}, "fast=30"),
        ({"kind": "ma_cross", "fast": 10, "slow": 30, "ma": "wma"}, "ma='wma'"),
        ({"kind": "macd", "fast": 26, "slow": 12}, "fast=26"),
        ({"kind": "bollinger_pctb", "num_std": 0.0}, "num_std=0.0"),
        ({"kind": "bollinger_pctb", "num_std": float("nan")}, "num_std=nan"),
        ({"kind": "volatility", "window": 1}, "window=1"),
        ({"kind": "returns", "bars": 0}, "bars=0"),
        ({"kind": "volume_zscore", "windw": 24}, "'windw'"),
        ({"kind": "stochastic"}, "'stochastic'"),
    ],
)
def test_invalid_feature_raises_spec_error_naming_value_and_fix(
    data: dict[str, object], shown: str
) -> None:
    with pytest.raises(SpecError) as caught:
        FeatureSpec.from_dict({"features": [data]})
    assert shown in caught.value.message
    assert caught.value.fix
    assert caught.value.code == "spec_invalid"


def test_direct_construction_also_raises_spec_error() -> None:
    with pytest.raises(SpecError, match="period=1"):
        RSI(period=1)


def test_duplicate_feature_names_are_refused() -> None:
    with pytest.raises(SpecError, match="repeated: returns_1") as caught:
        FeatureSpec(features=(Returns(bars=1), RSI(), Returns(bars=1)))
    assert "remove the duplicate" in str(caught.value.fix)


def test_empty_or_non_mapping_spec_is_refused() -> None:
    with pytest.raises(SpecError, match="features"):
        FeatureSpec.from_dict({"features": []})
    with pytest.raises(SpecError, match="must be a mapping, not list"):
        FeatureSpec.from_dict([{"kind": "rsi"}])  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="invalid feature spec"):
        FeatureSpec.from_json("{not json")


# --- transform ---------------------------------------------------------------------------


def test_transform_returns_timestamp_and_one_float_column_per_feature_in_order(
    btc: Candles, btc_features: pd.DataFrame
) -> None:
    spec = FeatureSpec.default()
    assert list(btc_features.columns) == ["timestamp", *spec.names]
    assert len(btc_features) == len(btc)
    assert (btc_features["timestamp"] == btc.frame["timestamp"]).all()
    assert str(btc_features["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert all(btc_features[name].dtype == np.float64 for name in spec.names)


def test_each_feature_is_nan_until_its_warmup_and_finite_after(
    btc_features: pd.DataFrame,
) -> None:
    spec = FeatureSpec.default()
    for feature in spec.features:
        column = btc_features[feature.name].to_numpy()
        assert np.isnan(column[: feature.warmup_bars - 1]).all(), feature.name
        assert np.isfinite(column[feature.warmup_bars - 1 :]).all(), feature.name
    valid = btc_features.dropna()
    assert valid.index[0] == spec.warmup_bars - 1
    assert len(valid) == len(btc_features) - (spec.warmup_bars - 1)


def test_transform_on_history_shorter_than_warmup_gives_nan_rows_not_an_error() -> None:
    short = as_candles(random_walk_frame(100, seed=3, sigma=0.01))
    features = FeaturePipeline(FeatureSpec.default()).transform(short)
    assert len(features) == 100
    assert features["rsi_14"].isna().all()
    assert features["returns_1"].notna().sum() == 99
    assert features.dropna().empty


def test_features_match_talib_and_pandas_references_on_real_data(
    btc: Candles, btc_features: pd.DataFrame
) -> None:
    f = btc_features.iloc[1000:]
    c, h, lo, v = (btc.frame[k].to_numpy() for k in ("close", "high", "low", "volume"))
    close = pd.Series(c)
    reference = {
        "rsi_14": talib.RSI(c, 14),
        "atr_14": talib.ATR(h, lo, c, 14) / c,
        "macd_12_26_9": talib.MACD(c, 12, 26, 9)[2] / c,
        "ma_cross_sma_10_30": talib.SMA(c, 10) / talib.SMA(c, 30) - 1,
        "ma_cross_ema_12_26": talib.EMA(c, 12) / talib.EMA(c, 26) - 1,
        "returns_4": (close / close.shift(4) - 1).to_numpy(),
    }
    # Same definitions as TA-Lib; alphaops sums in its own fixed order (identical live and in
    # batch), so they agree to rounding, not to the bit.
    for name, expected in reference.items():
        np.testing.assert_allclose(f[name], expected[1000:], rtol=1e-12, atol=1e-13, err_msg=name)
    upper, _, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    np.testing.assert_allclose(
        f["bollinger_pctb_20_2"], ((c - lower) / (upper - lower))[1000:], atol=1e-9
    )
    log_returns = np.log(close / close.shift(1))
    rolling_std = log_returns.rolling(24).std(ddof=1).to_numpy()
    np.testing.assert_allclose(f["volatility_24"], rolling_std[1000:], rtol=1e-9)
    vol = pd.Series(v)
    zscore = ((vol - vol.rolling(24).mean()) / vol.rolling(24).std(ddof=1)).to_numpy()
    np.testing.assert_allclose(f["volume_zscore_24"], zscore[1000:], rtol=1e-9, atol=1e-12)


def test_features_on_hand_made_series_have_known_values() -> None:
    rising = candles_from(np.arange(1.0, 201.0), volume=[1.0] * 199 + [30.0])
    spec = FeatureSpec(
        features=(Returns(bars=1), RSI(period=5), BollingerPctB(period=20), VolumeZScore(window=5))
    )
    last = FeaturePipeline(spec).transform(rising).iloc[-1]
    assert last["returns_1"] == pytest.approx(200 / 199 - 1, rel=1e-15)
    assert last["rsi_5"] == pytest.approx(100.0)
    closes = list(range(11, 31))
    mean, std = statistics.fmean(closes), statistics.pstdev(closes)
    assert last["bollinger_pctb_20_2"] == pytest.approx(
        (30 - (mean - 2 * std)) / (4 * std), rel=1e-12
    )
    volumes = [1.0] * 4 + [30.0]
    expected_z = (30.0 - statistics.fmean(volumes)) / statistics.stdev(volumes)
    assert last["volume_zscore_5"] == pytest.approx(expected_z, rel=1e-12)


def test_flat_windows_give_neutral_values_instead_of_nan() -> None:
    flat = candles_from([250.0] * 40)
    spec = FeatureSpec(
        features=(BollingerPctB(period=20), VolumeZScore(window=5), Volatility(window=5))
    )
    last = FeaturePipeline(spec).transform(flat).iloc[-1]
    assert (last["bollinger_pctb_20_2"], last["volume_zscore_5"], last["volatility_5"]) == (
        0.5,
        0.0,
        0.0,
    )


def test_features_are_scale_free_across_price_and_volume_levels(btc: Candles) -> None:
    frame = btc.frame.iloc[-3000:]
    scaled = frame.assign(
        **{c: frame[c] * 1000.0 for c in ("open", "high", "low", "close", "volume")}
    )
    pipeline = FeaturePipeline(FeatureSpec.default())
    a = values(pipeline.transform(as_candles(frame)), pipeline.names)
    b = values(pipeline.transform(as_candles(scaled)), pipeline.names)
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_features_are_computed_straight_across_gaps_without_filling() -> None:
    frame = random_walk_frame(200, seed=7, sigma=0.01, gaps=False)
    with_gap = frame.assign(
        timestamp=frame["timestamp"].where(
            frame.index < 100, frame["timestamp"] + pd.Timedelta("5h")
        )
    )
    gapped = as_candles(with_gap)
    assert gapped.gaps.count == 1
    pipeline = FeaturePipeline(SMALL_SPEC)
    a = pipeline.transform(as_candles(frame))
    b = pipeline.transform(gapped)
    assert len(b) == 200
    np.testing.assert_array_equal(values(a, pipeline.names), values(b, pipeline.names))


# --- latest (live) -------------------------------------------------------------------------


def test_latest_equals_transform_on_real_btc_history_for_every_feature(
    btc: Candles, btc_features: pd.DataFrame
) -> None:
    pipeline = FeaturePipeline(FeatureSpec.default(), symbol="BTCUSDT", timeframe="1h")
    width = pipeline.warmup_bars
    n = len(btc)
    rng = np.random.default_rng(20250630)
    after_gaps = [
        int(btc.frame["timestamp"].searchsorted(gap.before)) + k
        for gap in btc.gaps.gaps
        for k in (0, 1, width // 2)
    ]
    positions = sorted(
        {width - 1, width, n - 1, *rng.integers(width - 1, n, 200).tolist()}
        | {t for t in after_gaps if width - 1 <= t < n}
    )
    assert len(positions) > 250
    window_only = [pipeline.names.index(name) for name in WINDOW_ONLY]
    batch = values(btc_features, pipeline.names)
    for t in positions:
        window = as_candles(btc.frame.iloc[t - width + 1 : t + 1])
        live = pipeline.latest(window)
        assert live.name == btc.frame["timestamp"].iloc[t]
        np.testing.assert_allclose(
            live.to_numpy(), batch[t], rtol=1e-9, atol=1e-12, err_msg=f"t={t}"
        )
        np.testing.assert_array_equal(live.to_numpy()[window_only], batch[t, window_only])


def test_latest_on_a_longer_window_uses_only_the_last_warmup_bars(btc: Candles) -> None:
    pipeline = FeaturePipeline(FeatureSpec.default())
    long_window = as_candles(btc.frame.iloc[-2000:])
    short_window = as_candles(btc.frame.iloc[-pipeline.warmup_bars :])
    pd.testing.assert_series_equal(pipeline.latest(long_window), pipeline.latest(short_window))


def test_latest_returns_feature_series_named_by_last_bar_timestamp(btc: Candles) -> None:
    pipeline = FeaturePipeline(FeatureSpec.default())
    live = pipeline.latest(as_candles(btc.frame.iloc[-600:]))
    assert tuple(live.index) == pipeline.names
    assert live.dtype == np.float64
    assert live.name == btc.frame["timestamp"].iloc[-1]
    assert np.isfinite(live.to_numpy()).all()


def test_latest_with_too_short_window_names_bars_needed_and_given(btc: Candles) -> None:
    pipeline = FeaturePipeline(FeatureSpec.default())
    with pytest.raises(InsufficientDataError) as caught:
        pipeline.latest(as_candles(btc.frame.iloc[-517:]))
    err = caught.value
    assert "needs the last 518 bars" in err.message
    assert "holds 517" in err.message
    assert err.details == {"needed": 518, "given": 517}
    assert err.fix == "pass a longer window, e.g. candles.tail(518)"


def test_pipeline_bound_to_a_market_refuses_other_symbol_or_timeframe(btc: Candles) -> None:
    window = btc.frame.iloc[-600:]
    eth = Candles.from_frame(window, symbol="ETHUSDT", timeframe="1h")
    pipeline = FeaturePipeline(SMALL_SPEC, symbol="btc/usdt", timeframe="1h")
    with pytest.raises(UsageError, match="bound to BTCUSDT, but the candles are ETHUSDT"):
        pipeline.latest(eth)
    with pytest.raises(UsageError, match="bound to 1h candles, but the candles are 2h"):
        pipeline.transform(Candles.from_frame(window.iloc[::2], symbol="BTCUSDT", timeframe="2h"))
    assert len(pipeline.transform(as_candles(window))) == 600


# --- no lookahead (property tests) -----------------------------------------------------------


@st.composite
def series_and_cut(draw: st.DrawFn) -> tuple[pd.DataFrame, int]:
    n = draw(st.integers(min_value=30, max_value=700))
    sigma = draw(st.sampled_from([0.0, 1e-4, 0.01, 0.08]))
    frame = random_walk_frame(n, draw(st.integers(0, 2**32 - 1)), sigma)
    return frame, draw(st.integers(min_value=0, max_value=n - 2))


@st.composite
def future_change(draw: st.DrawFn) -> tuple[str, int, float]:
    how = draw(st.sampled_from(["regenerate", "spike", "volume"]))
    return how, draw(st.integers(0, 2**32 - 1)), draw(st.floats(0.2, 5.0))


def change_after(frame: pd.DataFrame, t: int, change: tuple[str, int, float]) -> pd.DataFrame:
    how, seed, factor = change
    out = frame.copy()
    future = slice(t + 1, len(frame))
    if how == "regenerate":
        fresh = random_walk_frame(len(frame), seed, 0.05, gaps=False)
        for column in ("open", "high", "low", "close", "volume"):
            out.iloc[future, out.columns.get_loc(column)] = fresh[column].to_numpy()[future]
    elif how == "spike":
        row = t + 1 + seed % (len(frame) - t - 1)
        for column in ("open", "high", "low", "close"):
            out.iloc[row, out.columns.get_loc(column)] *= factor
    else:
        out.iloc[future, out.columns.get_loc("volume")] *= factor
    return out


@settings(max_examples=50, deadline=None)
@given(series_and_cut(), future_change())
def test_changing_data_after_t_never_changes_features_at_or_before_t(
    series: tuple[pd.DataFrame, int], change: tuple[str, int, float]
) -> None:
    frame, t = series
    changed = change_after(frame, t, change)
    for spec in (SMALL_SPEC, FeatureSpec.default()):
        pipeline = FeaturePipeline(spec)
        before = values(pipeline.transform(as_candles(frame)), spec.names)[: t + 1]
        after = values(pipeline.transform(as_candles(changed)), spec.names)[: t + 1]
        np.testing.assert_array_equal(after, before)


@settings(max_examples=50, deadline=None)
@given(series_and_cut())
def test_features_up_to_t_are_the_same_without_any_later_data(
    series: tuple[pd.DataFrame, int],
) -> None:
    frame, t = series
    for spec in (SMALL_SPEC, FeatureSpec.default()):
        pipeline = FeaturePipeline(spec)
        full = values(pipeline.transform(as_candles(frame)), spec.names)
        prefix = values(pipeline.transform(as_candles(frame.iloc[: t + 1])), spec.names)
        np.testing.assert_array_equal(prefix, full[: t + 1])
