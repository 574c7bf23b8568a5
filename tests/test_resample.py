"""Resampling: exchange semantics, checked against the exchange's own coarser candles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaops.core.errors import InsufficientDataError, SpecError
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles
from alphaops.data.resampling import resample, resample_with_report

LoadReal = Callable[[str, str], Candles]
PRICES = ["open", "high", "low", "close"]


@pytest.mark.parametrize("symbol", ["ADAUSDT", "BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"])
def test_real_5m_candles_resampled_to_1h_equal_the_exchange_1h_candles(
    load_real: LoadReal, symbol: str
) -> None:
    five_minutes = load_real(symbol, "5m")
    hourly_file = load_real(symbol, "1h")

    hourly, report = resample_with_report(five_minutes, "1h")

    overlap = hourly_file.between(
        five_minutes.frame["timestamp"].iloc[0],
        five_minutes.frame["timestamp"].iloc[-1] + pd.Timedelta(minutes=5),
    )
    assert (report.buckets, report.dropped) == (len(overlap), 0) == (4368, 0)
    pd.testing.assert_series_equal(hourly.frame["timestamp"], overlap.frame["timestamp"])
    np.testing.assert_array_equal(hourly.frame[PRICES].to_numpy(), overlap.frame[PRICES].to_numpy())
    np.testing.assert_allclose(hourly.frame["volume"], overlap.frame["volume"], rtol=1e-9, atol=0)


def test_resampling_in_steps_equals_resampling_at_once(load_real: LoadReal) -> None:
    five_minutes = load_real("ETHUSDT", "5m")

    stepwise = resample(resample(five_minutes, "1h"), "4h")
    direct = resample(five_minutes, "4h")

    pd.testing.assert_frame_equal(stepwise.frame, direct.frame, rtol=1e-12)
    assert str(direct.timeframe) == "4h"
    assert set(direct.frame["timestamp"].dt.hour) == {0, 4, 8, 12, 16, 20}


def test_weekly_buckets_open_on_monday_and_partial_weeks_are_dropped(
    load_real: LoadReal,
) -> None:
    # 5m data runs from Tuesday 2024-12-31 to Monday 2025-06-30 23:55.
    weekly, report = resample_with_report(load_real("BTCUSDT", "5m"), "1w")

    stamps = weekly.frame["timestamp"]
    assert set(stamps.dt.day_of_week) == {0}
    assert (stamps.iloc[0], stamps.iloc[-1]) == (
        pd.Timestamp("2025-01-06", tz="UTC"),
        pd.Timestamp("2025-06-23", tz="UTC"),
    )
    assert (report.buckets, report.partial, report.dropped) == (25, 2, 2)
    assert report.partial_examples == (
        pd.Timestamp("2024-12-30", tz="UTC"),
        pd.Timestamp("2025-06-30", tz="UTC"),
    )


def test_days_with_exchange_downtime_are_dropped_by_default_and_kept_on_request(
    load_real: LoadReal,
) -> None:
    # Binance maintenance: 2018-02-08 04:00 .. 2018-02-09 13:00 UTC is missing (33 candles).
    hourly = load_real("BTCUSDT", "1h").between(
        pd.Timestamp("2018-02-05", tz="UTC"), pd.Timestamp("2018-02-12", tz="UTC")
    )

    dropped, report = resample_with_report(hourly, "1d")
    kept = resample(hourly, "1d", partial="keep")

    assert list(dropped.frame["timestamp"].dt.day) == [5, 6, 7, 10, 11]
    assert (report.partial, report.dropped) == (2, 2)
    assert list(kept.frame["timestamp"].dt.day) == [5, 6, 7, 8, 9, 10, 11]
    feb8 = hourly.between(
        pd.Timestamp("2018-02-08", tz="UTC"), pd.Timestamp("2018-02-09", tz="UTC")
    )
    row = kept.frame.iloc[3]
    assert row["open"] == feb8.frame["open"].iloc[0]
    assert row["close"] == feb8.frame["close"].iloc[-1]
    assert row["high"] == feb8.frame["high"].max()
    assert row["volume"] == pytest.approx(feb8.frame["volume"].sum(), rel=1e-12)


def test_incomplete_last_bucket_is_dropped_and_counted(load_real: LoadReal) -> None:
    five_minutes = load_real("SOLUSDT", "5m").tail(12 * 24 + 5)  # ends 5 candles into an hour

    hourly, report = resample_with_report(five_minutes, "1h")

    assert (len(hourly), report.dropped) == (24, 1)
    assert hourly.frame["timestamp"].iloc[-1] == pd.Timestamp("2025-06-30 23:00", tz="UTC")


@settings(max_examples=30, deadline=None)
@given(missing=st.sets(st.integers(0, 12 * 48 - 1), max_size=20))
def test_only_buckets_missing_sub_candles_are_dropped(
    load_real: LoadReal, missing: set[int]
) -> None:
    full = load_real("BNBUSDT", "5m").between(
        pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-03", tz="UTC")
    )
    holed = Candles.from_frame(
        full.frame.drop(index=sorted(missing)), symbol="BNBUSDT", timeframe="5m"
    )

    hourly, report = resample_with_report(holed, "1h")

    touched = {i // 12 for i in missing}
    expected = resample(full, "1h").frame.drop(index=sorted(touched)).reset_index(drop=True)
    assert report.dropped == len(touched)
    pd.testing.assert_frame_equal(hourly.frame, expected)


@pytest.mark.parametrize("target", ["90m", "1h", "30m", "150m"])
def test_target_that_is_not_a_coarser_whole_multiple_is_refused(
    load_real: LoadReal, target: str
) -> None:
    with pytest.raises(SpecError, match=f"cannot resample 1h candles to {target}") as caught:
        resample(load_real("BTCUSDT", "1h").tail(48), target)

    assert "2h" in (caught.value.fix or "")


def test_weekly_target_off_the_source_grid_is_refused() -> None:
    frame = pd.DataFrame(
        {
            # 2025-01-01 03:00 UTC lies on the epoch-aligned 7h grid.
            "timestamp": pd.date_range("2025-01-01 03:00", periods=48, freq="7h", tz="UTC"),
            **{c: [1.0] * 48 for c in ["open", "high", "low", "close", "volume"]},
        }
    )
    seven_hours = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="7h")

    with pytest.raises(SpecError, match="Monday 00:00 UTC, which is not on the 7h grid"):
        resample(seven_hours, "1w")


def test_resampling_less_than_one_whole_bucket_is_insufficient(load_real: LoadReal) -> None:
    five_minutes = load_real("ADAUSDT", "5m").tail(11)

    with pytest.raises(InsufficientDataError, match="fill no complete 1h bucket"):
        resample(five_minutes, "1h")
    assert len(resample(five_minutes, "1h", partial="keep")) == 1
    assert resample(five_minutes, Timeframe("1h"), partial="keep").timeframe == Timeframe("1h")
