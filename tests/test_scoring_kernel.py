"""One scoring kernel: what trades is exactly what was gated, bar by bar, refused when wrong.

Real trained bundles (LightGBM on the default feature spec, an LSTM with lookback 8) on real
BTCUSDT candles they never saw; the live path is the LivePredictor a bot calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaops.core.errors import (
    DataGapError,
    DataValidationError,
    InsufficientDataError,
    StaleBarError,
    WrongMarketError,
)
from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import record_passing_gates
from alphaops.runtime import Bar, LivePredictor, bars_of
from alphaops.scoring import BundlePredictor
from alphaops.training import TrainingJob
from alphaops.training.executor import publish_trained, train_job

TRAIN_BARS = 3000
LOOKBACK = 8


@dataclass(frozen=True)
class Served:
    registry: Registry
    candles: Candles  # every bar after the training window: data the models never saw
    keys: tuple[str, ...]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, load_real: Callable[[str, str], Candles]
) -> Iterator[Served]:
    btc = load_real("BTCUSDT", "1h").tail(TRAIN_BARS + 1500)
    train = Candles.from_frame(btc.frame.iloc[:TRAIN_BARS], symbol="BTCUSDT", timeframe="1h")
    unseen = Candles.from_frame(btc.frame.iloc[TRAIN_BARS:], symbol="BTCUSDT", timeframe="1h")
    label = LabelRule(kind="ternary", horizon=4, threshold=0.01)
    jobs = {
        "lightgbm": TrainingJob(
            symbols=("BTCUSDT",), timeframe="1h", model="lightgbm", features=FeatureSpec.default(),
            label=label, params={"n_estimators": 40}, seed=3,
        ),
        "lstm": TrainingJob(
            symbols=("BTCUSDT",), timeframe="1h", model="lstm", features=FeatureSpec.default(),
            label=label, params={"hidden": 16, "max_epochs": 2}, lookback=LOOKBACK, seed=3,
        ),
    }  # fmt: skip
    registry = open_registry(tmp_path_factory.mktemp("kernel") / "home")
    for job in jobs.values():
        version = publish_trained(train_job(job, {"BTCUSDT": train}), registry)
        record_passing_gates(registry, version.ref)
        registry.promote(version.ref, expect=None, reason="kernel tests")
    yield Served(registry, unseen, ("BTCUSDT/lightgbm", "BTCUSDT/lstm"))
    registry.close()


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from([0, 1]),
    start=st.integers(min_value=0, max_value=600),
    length=st.integers(min_value=560, max_value=800),
)
def test_live_bar_by_bar_scores_bit_for_bit_what_the_gates_scored(
    served: Served, which: int, start: int, length: int
) -> None:
    key = served.keys[which]
    window = Candles.from_frame(
        served.candles.frame.iloc[start : start + length], symbol="BTCUSDT", timeframe="1h"
    )
    gate = BundlePredictor(served.registry.load(f"{key}@champion"))
    gated = gate.score(window)
    stamps, inputs = gate.contract.history(window)
    position = {int(t): i for i, t in enumerate(stamps)}
    by_time = {int(t): p for t, p in zip(gated.timestamps_ms, gated.probabilities, strict=True)}
    live_input = gate.contract.live()
    compared = 0
    with LivePredictor(served.registry, key, start=False) as live:
        for bar in bars_of(window):
            live_input.push(bar)
            try:
                got = live.on_bar(bar)
            except InsufficientDataError:
                assert bar.timestamp_ms not in by_time
                continue
            i = position[bar.timestamp_ms]
            gate_input = inputs.batch(np.array([i])) if which else inputs[i : i + 1]
            assert np.array_equal(
                live_input.batch(), np.asarray(gate_input, dtype=gate.contract.dtype)
            )
            expected = tuple(float(p) for p in by_time[bar.timestamp_ms])
            if which == 0:
                assert got.probabilities == expected, bar.timestamp_ms
            else:
                # Same inputs, but onnxruntime's LSTM kernels round differently for a batch of
                # one than for the gates' batch of thousands (float32 GEMM blocking).
                np.testing.assert_allclose(got.probabilities, expected, rtol=0, atol=2e-6)
            compared += 1
    assert compared == len(gated) > 0


def test_a_rolling_window_through_predict_candles_equals_the_streaming_entry(
    served: Served,
) -> None:
    window = served.candles.frame.iloc[:700]
    with (
        LivePredictor(served.registry, served.keys[0], start=False) as rolling,
        LivePredictor(served.registry, served.keys[0], start=False) as streaming,
    ):
        streaming.warm_up(Candles.from_frame(window.iloc[:600], symbol="BTCUSDT", timeframe="1h"))
        for end in range(600, 700):
            candles = Candles.from_frame(window.iloc[: end + 1], symbol="BTCUSDT", timeframe="1h")
            by_window = rolling.predict_candles(candles)
            by_bar = streaming.on_bar(bars_of(candles.tail(1))[0])
            assert by_window == by_bar


@pytest.mark.parametrize("which", [0, 1])
def test_candles_of_another_market_or_timeframe_are_refused(
    served: Served, which: int, load_real: Callable[[str, str], Candles]
) -> None:
    with LivePredictor(served.registry, served.keys[which], start=False) as live:
        with pytest.raises(WrongMarketError, match=r"BTCUSDT 1h candles, got ETHUSDT 1h"):
            live.predict_candles(load_real("ETHUSDT", "1h").tail(700))
        with pytest.raises(WrongMarketError, match=r"got BTCUSDT 5m"):
            live.predict_candles(load_real("BTCUSDT", "5m").tail(700))
        live.warm_up(served.candles.tail(700))
        last = bars_of(served.candles.tail(1))[0]
        five_minutes_later = Bar(last.timestamp_ms + 300_000, 1.0, 1.0, 1.0, 1.0, 1.0)
        with pytest.raises(WrongMarketError, match=r"not a multiple of .* timeframe 1h"):
            live.on_bar(five_minutes_later)
        eth = {"timestamp_ms": last.timestamp_ms + 3_600_000, "open": 1.0, "high": 1.0,
               "low": 1.0, "close": 1.0, "volume": 1.0, "symbol": "ETHUSDT"}  # fmt: skip
        with pytest.raises(WrongMarketError, match="serves BTCUSDT, got a ETHUSDT bar"):
            live.on_bar(eth)


def test_stale_and_broken_bars_are_refused_and_change_nothing(served: Served) -> None:
    candles = served.candles.tail(701)
    bars = bars_of(candles)
    with LivePredictor(served.registry, served.keys[0], start=False) as live:
        live.warm_up(Candles.from_frame(candles.frame.iloc[:700], symbol="BTCUSDT", timeframe="1h"))
        with pytest.raises(StaleBarError, match="a duplicate"):
            live.on_bar(bars[699])
        with pytest.raises(StaleBarError, match="out of order"):
            live.on_bar(bars[650])
        broken = Bar(bars[700].timestamp_ms, 10.0, 9.0, 8.0, 10.0, 1.0)  # high below open
        with pytest.raises(DataValidationError, match="high below open/close"):
            live.on_bar(broken)
        with pytest.raises(StaleBarError, match="before the last bar"):
            live.predict_candles(Candles.from_frame(
                candles.frame.iloc[:600], symbol="BTCUSDT", timeframe="1h"))  # fmt: skip
        after = live.on_bar(bars[700])
    fresh = BundlePredictor(served.registry.load(f"{served.keys[0]}@champion")).score(candles)
    assert after.probabilities == tuple(float(p) for p in fresh.probabilities[-1])


def test_a_sequence_window_across_a_gap_is_refused_live_as_the_gates_skip_it(
    served: Served,
) -> None:
    frame = served.candles.frame.iloc[:720]
    gapped = frame.drop(frame.index[700:703])  # three missing hours
    candles = Candles.from_frame(gapped, symbol="BTCUSDT", timeframe="1h")
    bars = bars_of(candles)
    gated = {
        key: BundlePredictor(served.registry.load(f"{key}@champion")).score(candles)
        for key in served.keys
    }
    with LivePredictor(served.registry, served.keys[1], start=False) as lstm:
        lstm.warm_up(Candles.from_frame(gapped.iloc[:700], symbol="BTCUSDT", timeframe="1h"))
        for i, bar in enumerate(bars[700:], start=700):
            if i < 700 + LOOKBACK - 1:
                with pytest.raises(DataGapError, match="crosses a gap"):
                    lstm.on_bar(bar)
                assert bar.timestamp_ms not in set(gated[served.keys[1]].timestamps_ms.tolist())
            else:
                assert lstm.on_bar(bar).probabilities is not None
        with pytest.raises(DataGapError):
            LivePredictor(served.registry, served.keys[1], start=False).predict_candles(
                Candles.from_frame(gapped.iloc[:702], symbol="BTCUSDT", timeframe="1h")
            )
    with LivePredictor(served.registry, served.keys[0], start=False) as tabular:
        tabular.warm_up(Candles.from_frame(gapped.iloc[:700], symbol="BTCUSDT", timeframe="1h"))
        first_after_gap = tabular.on_bar(bars[700])  # features run straight across gaps
        assert bars[700].timestamp_ms in set(gated[served.keys[0]].timestamps_ms.tolist())
        assert first_after_gap.version == 1


def test_a_cold_predictor_says_how_many_bars_it_still_needs(served: Served) -> None:
    with (
        LivePredictor(served.registry, served.keys[0], start=False) as live,
        pytest.raises(InsufficientDataError, match=r"needs 518 bars .* has 1"),
    ):
        live.on_bar(bars_of(served.candles.tail(1))[0])
