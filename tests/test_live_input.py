"""The live input of a bundle: what a bar may be, and what is refused before anything changes.

Built on a real bundle manifest (the tiny logistic regression with a real feature spec) and
real BTCUSDT candles.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from alphaops.core.errors import (
    DataGapError,
    DataValidationError,
    InsufficientDataError,
    StaleBarError,
    UsageError,
    WrongMarketError,
)
from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, Returns, Volatility
from alphaops.registry import Manifest
from alphaops.scoring import Bar, InputContract, bars_of

SPEC = FeatureSpec(features=(Returns(bars=1), Volatility(window=5)))
HOUR = 3_600_000


def manifest(*, lookback: int | None = None) -> Manifest:
    names = list(SPEC.names)
    shape = (
        {"kind": "tabular", "n_features": len(names)}
        if lookback is None
        else {"kind": "sequence", "lookback": lookback, "n_features": len(names)}
    )
    return Manifest.model_validate(
        {
            "symbol": "BTCUSDT",
            "model_type": "logreg",
            "created_at": datetime(2025, 1, 1, tzinfo=UTC),
            "files": [
                {"path": "model.onnx", "sha256": "0" * 64, "size": 1},
                {"path": "reference.npz", "sha256": "0" * 64, "size": 1},
            ],
            "features": [{"name": n, "dtype": "float32"} for n in names],
            "input": shape,
            "label": {"rule": "binary", "horizon": 4, "threshold": 0.01,
                      "class_order": ["LOSS", "WIN"]},
            "data": {"start": datetime(2024, 1, 1, tzinfo=UTC),
                     "end": datetime(2024, 6, 1, tzinfo=UTC), "timeframe": "1h",
                     "fingerprint": "0" * 64, "rows": 100},
            "seed": 0,
            "code_version": "test",
            "feature_spec": SPEC.to_dict(),
        }
    )  # fmt: skip


def contract(lookback: int | None = None) -> InputContract:
    return InputContract(manifest(lookback=lookback), spec=SPEC)


@pytest.fixture
def btc(load_real: Callable[[str, str], Candles]) -> Candles:
    return load_real("BTCUSDT", "1h").tail(200)


def test_bars_are_read_from_mappings_ccxt_rows_and_timestamps_with_a_zone() -> None:
    stamp = pd.Timestamp("2025-01-01T00:00", tz="UTC")
    expected = Bar(int(stamp.value // 1_000_000), 1.0, 2.0, 0.5, 1.5, 10.0)
    mapping = {"timestamp": stamp, "open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 10}
    assert Bar.of(mapping) == expected
    assert Bar.of([expected.timestamp_ms, 1, 2, 0.5, 1.5, 10]) == expected
    assert Bar.of(mapping | {"symbol": "ETHUSDT"}).symbol == "ETHUSDT"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"timestamp": datetime(2025, 1, 1), "open": 1, "high": 1, "low": 1, "close": 1,
          "volume": 1}, "no time zone"),
        ({"timestamp": 1.5, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1},
         "not whole milliseconds"),
        ({"open": 1, "high": 1, "low": 1, "close": 1, "volume": 1}, "timestamp"),
        ([0, 1, 2, 3], "4 values"),
        ({"timestamp": 0, "open": "x", "high": 1, "low": 1, "close": 1, "volume": 1}, "'x'"),
    ],
)  # fmt: skip
def test_an_unreadable_bar_is_a_usage_error_naming_the_problem(bad: object, why: str) -> None:
    with pytest.raises(UsageError, match="cannot read a bar") as caught:
        Bar.of(bad)  # type: ignore[arg-type]
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("bar", "problem"),
    [
        (Bar(0, float("nan"), 1, 1, 1, 1), "non-finite"),
        (Bar(0, 1, 1, 1, 1, -1), "negative volume"),
        (Bar(0, 0, 1, 0, 1, 1), "non-positive price"),
        (Bar(0, 1, 1.5, 1.2, 1.4, 1), "low above open/close"),
    ],
)
def test_a_broken_bar_is_refused_and_the_input_is_unchanged(bar: Bar, problem: str) -> None:
    live = contract().live()
    with pytest.raises(DataValidationError, match=problem):
        live.push(bar)
    assert (live.bars, live.last_ms) == (0, None)


def test_history_and_live_build_the_same_inputs_on_real_candles(btc: Candles) -> None:
    spec = contract()
    stamps, inputs = spec.history(btc)
    live = spec.live()
    got = []
    for bar in bars_of(btc):
        live.push(bar)
        try:
            got.append((bar.timestamp_ms, live.batch()[0]))
        except InsufficientDataError:
            continue
    assert [t for t, _ in got] == stamps.tolist()
    assert np.array_equal(np.stack([row for _, row in got]), inputs.astype(np.float32))
    assert np.array_equal(spec.latest(btc), inputs[-1:].astype(np.float32))


def test_a_gap_blocks_a_sequence_window_until_lookback_bars_follow_it(btc: Candles) -> None:
    live = contract(lookback=3).live()
    bars = bars_of(btc)
    for bar in bars[:20]:
        live.push(bar)
    live.batch()
    after_gap = bars[25]  # five hours missing
    live.push(after_gap)
    with pytest.raises(DataGapError, match=r"3-bar window .* crosses a gap") as caught:
        live.batch()
    assert "wait 2 more gap-free bars" in str(caught.value)
    live.push(bars[26])
    with pytest.raises(DataGapError):
        live.batch()
    live.push(bars[27])
    assert live.batch().shape == (1, 3, 2)


def test_wrong_symbol_timeframe_and_grid_are_wrong_market_errors(
    btc: Candles, load_real: Callable[[str, str], Candles]
) -> None:
    spec = contract()
    with pytest.raises(WrongMarketError, match="BTCUSDT 1h candles, got ETHUSDT 1h"):
        spec.history(load_real("ETHUSDT", "1h").tail(50))
    live = spec.live()
    live.push(bars_of(btc)[0])
    first = bars_of(btc)[0]
    with pytest.raises(WrongMarketError, match="1800 s after the last one"):
        live.push(Bar(first.timestamp_ms + HOUR // 2, 1, 1, 1, 1, 1))
    with pytest.raises(StaleBarError, match="a duplicate"):
        live.push(first)
    assert live.bars == 1
