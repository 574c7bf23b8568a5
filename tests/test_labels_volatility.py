"""Volatility-scaled label rules: hashes of old rules, the σ math, no lookahead, real markets."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaops.core.errors import SpecError
from alphaops.core.specs import canonical_json, sha256_hex
from alphaops.data.candles import Candles
from alphaops.features import DROP_REASONS, LabelRule, make_labels
from alphaops.registry import Manifest
from alphaops.scoring import label_rule_of
from alphaops.training import TrainingJob


def candles_from(
    close: list[float] | np.ndarray,
    *,
    high: list[float] | np.ndarray | None = None,
    hours: list[int] | None = None,
) -> Candles:
    """Return 1h candles; ``hours`` gives each candle's offset from the start (for gaps)."""
    close = list(close)
    offsets = list(range(len(close))) if hours is None else hours
    frame = pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(offsets, unit="h"),
            "open": close,
            "high": close if high is None else list(high),
            "low": close,
            "close": close,
            "volume": 1.0,
        }
    )
    return Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")


def random_walk(n: int, seed: int, sigma: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, sigma, n)))


# --- old rules keep their meaning and their hashes -------------------------------------------


def test_a_fixed_rule_serializes_and_hashes_exactly_as_before_the_volatility_scale() -> None:
    rule = LabelRule(kind="ternary", horizon=4, threshold=0.01)
    before = {"kind": "ternary", "horizon": 4, "threshold": 0.01, "price": "close"}
    assert rule.to_dict() == before
    assert rule.rule_hash == sha256_hex(canonical_json(before))
    # ... also nested in the specs that hash it (a training job's config hash).
    job = TrainingJob(symbols=("BTCUSDT",), timeframe="1h", model="lightgbm", label=rule)
    assert job.to_dict()["label"] == before
    assert LabelRule.from_dict(before) == rule
    assert LabelRule.from_dict(before).scale == "fixed"


def test_volatility_rules_round_trip_and_hash_apart_by_scale_multiple_and_window() -> None:
    rule = LabelRule.balanced("ternary", 4)
    assert rule.to_dict() == {
        "kind": "ternary",
        "horizon": 4,
        "threshold": 0.4307,
        "price": "close",
        "scale": "volatility",
        "volatility_window": 100,
    }
    assert LabelRule.from_dict(rule.to_dict()) == rule
    variants = [
        LabelRule(kind="ternary", horizon=4, threshold=0.4307),  # the same number, fixed
        LabelRule.balanced("ternary", 4, volatility_window=50),
        LabelRule(kind="ternary", horizon=4, threshold=0.5, scale="volatility"),
    ]
    assert len({rule.rule_hash, *(v.rule_hash for v in variants)}) == 4


def _manifest(label: dict[str, Any]) -> Manifest:
    return Manifest.model_validate(
        {
            "symbol": "BTCUSDT",
            "model_type": "lightgbm",
            "features": [{"name": "f0", "dtype": "float32"}],
            "input": {"kind": "tabular", "n_features": 1},
            "label": label,
            "data": {
                "start": "2024-01-01T00:00:00+00:00",
                "end": "2024-06-30T23:00:00+00:00",
                "timeframe": "1h",
                "fingerprint": "0" * 64,
            },
            "seed": 0,
            "library_versions": {},
            "code_version": "test",
            "created_at": "2025-01-01T00:00:00+00:00",
            "files": [
                {"path": name, "sha256": "0" * 64, "size": 1}
                for name in ("model.onnx", "reference.npz")
            ],
        }
    )


def test_label_rule_of_reads_old_manifests_as_fixed_and_new_ones_with_scale_and_window() -> None:
    old = _manifest(
        {
            "rule": "ternary",
            "horizon": 4,
            "threshold": 0.005,
            "params": {"price": "close"},
            "class_order": ["SELL", "HOLD", "BUY"],
        }
    )
    assert label_rule_of(old) == LabelRule(kind="ternary", horizon=4, threshold=0.005)
    rule = LabelRule.balanced("ternary", 4, volatility_window=48)
    # The label section as training writes it: every field but kind/horizon/threshold in params.
    params = {k: v for k, v in rule.to_dict().items() if k not in ("kind", "horizon", "threshold")}
    new = _manifest(
        {
            "rule": "ternary",
            "horizon": 4,
            "threshold": rule.threshold,
            "params": params,
            "class_order": ["SELL", "HOLD", "BUY"],
        }
    )
    assert new.label.params == {"price": "close", "scale": "volatility", "volatility_window": 48}
    assert label_rule_of(new) == rule
    assert label_rule_of(new).rule_hash == rule.rule_hash


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "shown", "fix"),
    [
        (
            {"horizon": 4, "threshold": 0.01, "volatility_window": 50},
            "volatility_window=50 has no effect",
            "scale='volatility'",
        ),
        (
            {"kind": "ternary", "horizon": 4, "threshold": 0.005, "scale": "volatility"},
            "threshold=0.005 with scale='volatility' is a multiple",
            "scale='fixed'",
        ),
        (
            {"kind": "ternary", "horizon": 4, "threshold": 12.0, "scale": "volatility"},
            "threshold=12.0",
            "scale='fixed'",
        ),
        (
            {"kind": "ternary", "horizon": 4, "threshold": 0.0, "scale": "volatility"},
            "without a barrier",
            "0.4307",
        ),
        (
            {"horizon": 4, "threshold": 0.0, "price": "touch", "scale": "volatility"},
            "without a barrier",
            "0.6745",
        ),
        ({"horizon": 4, "scale": "volatility", "volatility_window": 1}, "volatility_window=1", ""),
        ({"horizon": 4, "threshold": 0.5, "scale": "sigma"}, "scale='sigma'", ""),
    ],
)
def test_invalid_volatility_rules_raise_spec_errors_naming_value_and_fix(
    data: dict[str, object], shown: str, fix: str
) -> None:
    with pytest.raises(SpecError) as caught:
        LabelRule.from_dict(data)
    assert shown in caught.value.message
    assert caught.value.fix is not None
    assert fix in caught.value.fix


def test_balanced_multiples_are_the_gaussian_quantiles() -> None:
    z = NormalDist()
    assert LabelRule.balanced("ternary", 4).threshold == pytest.approx(z.inv_cdf(2 / 3), abs=1e-4)
    assert LabelRule.balanced("binary", 4).threshold == 0.0
    touch = LabelRule.balanced("binary", 4, price="touch")
    assert touch.threshold == pytest.approx(z.inv_cdf(3 / 4), abs=1e-4)
    # A rule read without a threshold takes the same multiple.
    for kind, price in (("ternary", "close"), ("binary", "close"), ("binary", "touch")):
        read = LabelRule.from_dict(
            {"kind": kind, "horizon": 4, "price": price, "scale": "volatility"}
        )
        assert read == LabelRule.balanced(kind, 4, price=price)  # type: ignore[arg-type]


def test_describe_names_the_multiple_the_horizon_and_the_window() -> None:
    assert LabelRule.balanced("ternary", 4).describe("1h") == (
        "BUY when the close 4 bars (4h) later is at least 0.4307 σ·√4 above the entry close, "
        "SELL when it is at least 0.4307 σ·√4 below, else HOLD "
        "(σ: volatility of the last 100 one-bar returns)"
    )
    assert LabelRule.balanced("binary", 24, price="touch", volatility_window=50).describe("1h") == (
        "WIN when a high within the next 24 bars (1d) is at least 0.6745 σ·√24 above the entry "
        "close, else LOSS (σ: volatility of the last 50 one-bar returns)"
    )


# --- the σ math on hand-made series ----------------------------------------------------------


def test_barrier_is_the_multiple_of_median_abs_return_over_0_6745_times_root_horizon() -> None:
    # One-bar returns +2%, -1%, +3%, -0.5%: over the last 3 returns at bar 3 the median |r|
    # is 2%; at bar 4 it is 1%.
    close = 100 * np.cumprod([1.0, 1.02, 0.99, 1.03, 0.995])
    rule = LabelRule(horizon=9, threshold=0.5, scale="volatility", volatility_window=3)
    barriers = rule.barriers(candles_from(close))
    assert np.isnan(barriers[:3]).all()
    expected = [0.5 * 0.02 / NormalDist().inv_cdf(0.75) * 3, 0.5 * 0.01 / 0.6744897501960817 * 3]
    np.testing.assert_allclose(barriers[3:], expected, rtol=1e-9)


def test_labels_compare_each_forward_return_with_its_own_bar_barrier() -> None:
    close = random_walk(400, seed=3)
    candles = candles_from(close)
    rule = LabelRule.balanced("ternary", 4, volatility_window=20)
    result = make_labels(candles, rule)
    frame = result.frame
    expected = np.where(
        frame["forward_return"] >= frame["barrier"],
        2,
        np.where(frame["forward_return"] <= -frame["barrier"], 0, 1),
    )
    np.testing.assert_array_equal(frame["label"], expected)
    positions = np.searchsorted(candles.timestamps_ms, candles_ms(frame["timestamp"]))
    np.testing.assert_array_equal(frame["barrier"], rule.barriers(candles)[positions])
    assert result.dropped == {"end_of_data": 4, "gap": 0, "warmup": 20}
    assert tuple(result.dropped) == DROP_REASONS
    assert len(result) + sum(result.dropped.values()) == len(candles)


def candles_ms(values: pd.Series) -> np.ndarray:
    return np.asarray(values.to_numpy(dtype="datetime64[ms]")).astype(np.int64)


def test_a_gap_restarts_the_warm_up_and_flat_markets_have_no_barrier() -> None:
    # 30 bars, a 3-hour outage, 30 bars: σ needs 10 one-bar returns after the gap again.
    close = random_walk(60, seed=5)
    hours = list(range(30)) + list(range(33, 63))
    rule = LabelRule(horizon=1, threshold=0.5, scale="volatility", volatility_window=10)
    candles = candles_from(close, hours=hours)
    measured = np.isfinite(rule.barriers(candles))
    assert measured.tolist() == [False] * 10 + [True] * 20 + [False] * 10 + [True] * 20
    result = make_labels(candles, rule)
    # Rows 0-9 and 30-39 are warm-up; row 29's horizon crosses the gap; row 59 has none.
    assert result.dropped == {"end_of_data": 1, "gap": 1, "warmup": 20}
    assert len(result) + sum(result.dropped.values()) == len(candles)
    # A market whose closes mostly do not move (more than half the returns zero) has no σ.
    flat = [100.0] * 8 + [100.5, 100.0] * 2 + [100.0] * 8
    assert np.isnan(rule.barriers(candles_from(flat))).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t=st.integers(0, 79), window=st.integers(2, 30))
def test_the_barrier_at_bar_t_never_depends_on_bars_after_t(seed: int, t: int, window: int) -> None:
    close = random_walk(80, seed)
    rule = LabelRule.balanced("ternary", 3, volatility_window=window)
    before = rule.barriers(candles_from(close))
    changed = close.copy()
    changed[t + 1 :] *= np.random.default_rng(seed + 1).uniform(0.5, 2.0, 79 - t)
    after = rule.barriers(candles_from(changed))
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), start=st.integers(1, 60), window=st.integers(2, 30))
def test_the_barrier_does_not_depend_on_where_the_candles_start(
    seed: int, start: int, window: int
) -> None:
    # Training, gates and replay load different stretches: once warm, σ_t is the same.
    close = random_walk(120, seed)
    rule = LabelRule.balanced("ternary", 4, volatility_window=window)
    full = rule.barriers(candles_from(close))
    hours = list(range(start, 120))
    part = rule.barriers(candles_from(close[start:], hours=hours))
    np.testing.assert_array_equal(part[window:], full[start + window :])
    assert np.isnan(part[:window]).all()


def test_balanced_rules_split_a_gaussian_random_walk_as_designed() -> None:
    # 60 sub-steps per bar, so a bar's high approximates the continuous path's maximum.
    rng = np.random.default_rng(7)
    bars, steps = 30_000, 60
    path = 100 * np.exp(np.cumsum(rng.normal(0, 0.01 / math.sqrt(steps), bars * steps)))
    close = path[steps - 1 :: steps]
    high = path.reshape(bars, steps).max(axis=1)
    candles = candles_from(close, high=high)
    ternary = shares(make_labels(candles, LabelRule.balanced("ternary", 4)))
    assert ternary == pytest.approx({"SELL": 1 / 3, "HOLD": 1 / 3, "BUY": 1 / 3}, abs=0.02)
    binary = shares(make_labels(candles, LabelRule.balanced("binary", 4)))
    assert binary == pytest.approx({"LOSS": 0.5, "WIN": 0.5}, abs=0.02)
    touch = shares(make_labels(candles, LabelRule.balanced("binary", 4, price="touch")))
    assert touch == pytest.approx({"LOSS": 0.5, "WIN": 0.5}, abs=0.03)


def shares(result: Any) -> dict[str, float]:
    counts = result.class_counts
    total = sum(counts.values())
    return {name: n / total for name, n in counts.items()}


# --- real markets -----------------------------------------------------------------------------

# Hourly BTC from June 2025 (the calm end of the shared data), hourly EUR/USD on the FX
# calendar, the daily S&P 500 on the NYSE calendar.
MARKETS = [
    ("BTCUSDT", "1h", "24/7", "2025-06-01"),
    ("EURUSD", "1h", "fx", None),
    ("SPX", "1d", "XNYS", None),
]


def _shares(result: Any, start: str | None) -> dict[str, float]:
    frame = result.frame
    if start is not None:
        frame = frame[frame["timestamp"] >= pd.Timestamp(start, tz="UTC")]
    counts = np.bincount(frame["label"].to_numpy(), minlength=len(result.rule.classes))
    assert counts.sum() > 500, (result.symbol, result.dropped)
    return {c: float(n / counts.sum()) for c, n in zip(result.rule.classes, counts, strict=True)}


def test_default_ternary_labels_are_balanced_on_crypto_fx_and_equities_where_1pct_is_not(
    data_dir: Path,
) -> None:
    default = LabelRule.from_options()  # what `alphaops train` and `dataset build` use
    old = LabelRule(kind="ternary", horizon=4, threshold=0.01)  # the default until now
    new_shares, old_shares = {}, {}
    for symbol, timeframe, calendar, start in MARKETS:
        frame = pd.read_parquet(data_dir / f"{symbol}-{timeframe}.parquet")
        candles = Candles.from_frame(frame, symbol=symbol, timeframe=timeframe, calendar=calendar)
        # σ of the first rows after ``start`` is measured on the bars before it.
        new_shares[symbol] = _shares(make_labels(candles, default), start)
        old_shares[symbol] = _shares(make_labels(candles, old), start)
    for symbol, found in new_shares.items():
        assert all(0.20 <= share <= 0.45 for share in found.values()), (symbol, found)
    assert max(found["HOLD"] for found in old_shares.values()) > 0.80, old_shares
