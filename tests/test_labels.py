"""Label rules and make_labels: known answers, dropped rows, validation, real data."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaops.core.errors import InsufficientDataError, SpecError
from alphaops.data.candles import Candles
from alphaops.features import DROP_REASONS, LabelRule, make_labels

Loader = Callable[[str, str], Candles]
HOUR = pd.Timedelta("1h")


def candles_from(
    close: list[float],
    *,
    high: list[float] | None = None,
    hours: list[int] | None = None,
) -> Candles:
    """Return 1h candles; ``hours`` gives each candle's offset from the start (for gaps)."""
    offsets = list(range(len(close))) if hours is None else hours
    frame = pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(offsets, unit="h"),
            "open": close,
            "high": close if high is None else high,
            "low": close,
            "close": close,
            "volume": 1.0,
        }
    )
    return Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")


@pytest.fixture(scope="module")
def btc(load_real: Loader) -> Candles:
    return load_real("BTCUSDT", "1h")


# --- the rule ------------------------------------------------------------------------------


def test_classes_follow_the_label_integer_order() -> None:
    assert LabelRule(kind="binary", horizon=4, threshold=0.01).classes == ("LOSS", "WIN")
    assert LabelRule(kind="ternary", horizon=4, threshold=0.01).classes == ("SELL", "HOLD", "BUY")


@pytest.mark.parametrize(
    ("rule", "sentence"),
    [
        (
            LabelRule(horizon=4, threshold=0.01, price="touch"),
            "WIN when a high within the next 4 bars (4h) is at least 1% above the entry close, "
            "else LOSS",
        ),
        (
            LabelRule(horizon=1, threshold=0.005),
            "WIN when the close 1 bar (1h) later is at least 0.5% above the entry close, else LOSS",
        ),
        (
            LabelRule(kind="ternary", horizon=24, threshold=0.02),
            "BUY when the close 24 bars (1d) later is at least 2% above the entry close, "
            "SELL when it is at least 2% below, else HOLD",
        ),
    ],
)
def test_describe_reads_as_one_sentence_with_the_horizon_as_time(
    rule: LabelRule, sentence: str
) -> None:
    assert rule.describe("1h") == sentence


def test_rule_hash_is_stable_across_processes_and_changes_with_any_parameter() -> None:
    rule = LabelRule(horizon=4, threshold=0.01)
    code = (
        "from alphaops.features import LabelRule; "
        "print(LabelRule(horizon=4, threshold=0.01).rule_hash)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == rule.rule_hash
    assert LabelRule.from_dict(rule.to_dict()).rule_hash == rule.rule_hash
    variants = [
        LabelRule(horizon=5, threshold=0.01),
        LabelRule(horizon=4, threshold=0.011),
        LabelRule(horizon=4, threshold=0.01, price="touch"),
        LabelRule(kind="ternary", horizon=4, threshold=0.01),
    ]
    assert len({rule.rule_hash, *(v.rule_hash for v in variants)}) == 5


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ({"horizon": 0, "threshold": 0.01}, "horizon=0"),
        ({"horizon": 1.5, "threshold": 0.01}, "horizon=1.5"),
        ({"horizon": 4, "threshold": 0.0}, "threshold=0.0"),
        ({"horizon": 4, "threshold": float("inf")}, "threshold=inf"),
        ({"horizon": 4, "threshold": 1}, "threshold=1.0 means 100%"),
        ({"horizon": 4}, "threshold is required"),
        ({"kind": "quaternary", "horizon": 4, "threshold": 0.01}, "kind='quaternary'"),
        ({"horizon": 4, "threshold": 0.01, "price": "vwap"}, "price='vwap'"),
        ({"horizon": 4, "threshold": 0.01, "stop": 0.02}, "unknown parameter 'stop'"),
        ({"kind": "ternary", "horizon": 4, "threshold": 0.01, "price": "touch"}, "ternary"),
    ],
)
def test_invalid_rule_raises_spec_error_naming_value_and_fix(
    data: dict[str, object], shown: str
) -> None:
    with pytest.raises(SpecError) as caught:
        LabelRule.from_dict(data)
    assert shown in caught.value.message
    assert caught.value.fix


def test_threshold_written_as_percent_gets_a_fraction_hint() -> None:
    with pytest.raises(SpecError) as caught:
        LabelRule(horizon=4, threshold=1.0)
    assert caught.value.fix == "write 1% as 0.01"


# --- make_labels on hand-made series ---------------------------------------------------------


def test_binary_close_labels_win_when_the_close_after_the_horizon_rises_by_threshold() -> None:
    candles = candles_from([100.0, 100.5, 101.0, 99.0, 102.0, 100.0])
    result = make_labels(candles, LabelRule(horizon=2, threshold=0.01))
    # +1% WIN (inclusive), -1.5% LOSS, +0.99% LOSS, +1.01% WIN
    assert result.frame["label"].tolist() == [1, 0, 0, 1]
    np.testing.assert_allclose(
        result.frame["forward_return"], [0.01, 99 / 100.5 - 1, 102 / 101 - 1, 100 / 99 - 1]
    )
    assert result.class_counts == {"LOSS": 2, "WIN": 2}


def test_touch_labels_win_when_any_high_within_the_horizon_reaches_threshold() -> None:
    close = [100.0, 100.0, 100.0, 100.0, 100.0]
    high = [130.0, 100.0, 101.5, 100.0, 100.0]  # the entry bar's own high never counts
    candles = candles_from(close, high=high)
    touch = make_labels(candles, LabelRule(horizon=2, threshold=0.01, price="touch"))
    by_close = make_labels(candles, LabelRule(horizon=2, threshold=0.01))
    assert touch.frame["label"].tolist() == [1, 1, 0]
    assert by_close.frame["label"].tolist() == [0, 0, 0]
    np.testing.assert_allclose(touch.frame["max_return"], [0.015, 0.015, 0.0])
    assert "max_return" not in by_close.frame.columns


def test_ternary_labels_buy_sell_hold_at_symmetric_threshold_inclusive() -> None:
    candles = candles_from([100.0, 101.0, 99.99, 100.5, 99.495, 99.495])
    result = make_labels(candles, LabelRule(kind="ternary", horizon=1, threshold=0.01))
    # +1% BUY, -1% SELL, +0.51% HOLD, -1% SELL, 0% HOLD
    assert [result.rule.classes[i] for i in result.frame["label"]] == [
        "BUY",
        "SELL",
        "HOLD",
        "SELL",
        "HOLD",
    ]
    assert result.class_counts == {"SELL": 2, "HOLD": 2, "BUY": 1}


def test_last_horizon_rows_are_dropped_as_end_of_data() -> None:
    candles = candles_from([100.0 + i for i in range(10)])
    result = make_labels(candles, LabelRule(horizon=3, threshold=0.01))
    assert len(result) == 7
    assert result.dropped == {"end_of_data": 3, "gap": 0, "warmup": 0}
    assert tuple(result.dropped) == DROP_REASONS
    assert result.frame["timestamp"].iloc[-1] == candles.frame["timestamp"].iloc[6]


def test_rows_whose_horizon_crosses_a_gap_are_dropped_not_guessed() -> None:
    # Hours 0..4, then the exchange is down for 2 hours, then hours 7..11.
    hours = [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    candles = candles_from([100.0 + i for i in range(10)], hours=hours)
    result = make_labels(candles, LabelRule(horizon=2, threshold=0.01))
    kept_hours = ((result.frame["timestamp"] - candles.frame["timestamp"].iloc[0]) / HOUR).tolist()
    assert kept_hours == [0, 1, 2, 7, 8, 9]
    assert result.dropped == {"end_of_data": 2, "gap": 2, "warmup": 0}
    assert len(result) + sum(result.dropped.values()) == len(candles)


def test_label_end_is_the_open_time_of_the_bar_horizon_steps_ahead() -> None:
    candles = candles_from([100.0 + i for i in range(8)])
    result = make_labels(candles, LabelRule(horizon=3, threshold=0.01))
    assert (result.frame["label_end"] - result.frame["timestamp"] == 3 * HOUR).all()
    assert str(result.frame["label_end"].dtype) == "datetime64[ms, UTC]"
    assert result.frame["label"].dtype == np.int64


def test_too_short_series_raises_insufficient_data_naming_bars_needed() -> None:
    candles = candles_from([100.0, 101.0, 102.0])
    with pytest.raises(InsufficientDataError) as caught:
        make_labels(candles, LabelRule(horizon=3, threshold=0.01))
    assert "need at least 4 bars" in caught.value.message
    assert "has 3" in caught.value.message
    assert caught.value.details == {"needed": 4, "given": 3}


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    horizon=st.integers(1, 6),
    price=st.sampled_from(["close", "touch"]),
    row=st.integers(0, 50),
)
def test_a_label_never_depends_on_bars_outside_its_entry_to_label_end(
    seed: int, horizon: int, price: str, row: int
) -> None:
    rng = np.random.default_rng(seed)
    close = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))).tolist()
    high = [c * 1.005 for c in close]
    rule = LabelRule(horizon=horizon, threshold=0.005, price=price)  # type: ignore[arg-type]
    before = make_labels(candles_from(close, high=high), rule).frame
    # Move every bar outside [row, row + horizon] far away.
    outside = [i for i in range(60) if not row <= i <= row + horizon]
    for i in outside:
        close[i] *= 3.0
        high[i] *= 3.0
    after = make_labels(candles_from(close, high=high), rule).frame
    pd.testing.assert_series_equal(before.iloc[row], after.iloc[row])


# --- real data ------------------------------------------------------------------------------


def test_real_btc_rows_whose_horizon_spans_one_of_the_28_gaps_are_dropped(btc: Candles) -> None:
    horizon = 4
    result = make_labels(btc, LabelRule(horizon=horizon, threshold=0.01))
    assert btc.gaps.count == 28
    # BTCUSDT 1h gaps are more than 4 bars apart, so each one costs exactly 4 entry rows.
    assert result.dropped == {"end_of_data": horizon, "gap": 28 * horizon, "warmup": 0}
    assert len(result) + sum(result.dropped.values()) == len(btc)
    entry, end = result.frame["timestamp"], result.frame["label_end"]
    assert (end - entry == horizon * HOUR).all()
    for gap in btc.gaps.gaps:
        assert not ((entry <= gap.after) & (end >= gap.before)).any()


def test_real_btc_forward_returns_and_labels_follow_the_rule(btc: Candles) -> None:
    rule = LabelRule(horizon=4, threshold=0.01)
    result = make_labels(btc, rule)
    close = btc.frame.set_index("timestamp")["close"]
    entry = close.loc[result.frame["timestamp"]].to_numpy()
    later = close.loc[result.frame["label_end"]].to_numpy()
    np.testing.assert_array_equal(result.frame["forward_return"], later / entry - 1)
    assert ((result.frame["forward_return"] >= 0.01) == (result.frame["label"] == 1)).all()


@pytest.mark.parametrize(
    ("rule", "lowest_share"),
    [
        (LabelRule(horizon=4, threshold=0.01), 0.05),
        (LabelRule(horizon=4, threshold=0.01, price="touch"), 0.15),
        (LabelRule(kind="ternary", horizon=24, threshold=0.02), 0.10),
    ],
)
def test_real_btc_class_balance_is_sane(btc: Candles, rule: LabelRule, lowest_share: float) -> None:
    counts = make_labels(btc, rule).class_counts
    total = sum(counts.values())
    shares = {name: n / total for name, n in counts.items()}
    assert min(shares.values()) >= lowest_share, shares
    assert max(shares.values()) <= 0.9, shares
