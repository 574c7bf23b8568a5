"""Drift monitors: PSI by hand, KS/Wasserstein against scipy within the sketch's bound, real
BTC regimes, the sliding window, degenerate features, typed errors, and river's detectors."""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy import stats
from tests.training.conftest import FEATURES

from alphaops.core.errors import DataValidationError, SpecError, UsageError
from alphaops.data.candles import Candles
from alphaops.features import FeaturePipeline
from alphaops.monitoring import (
    DriftThresholds,
    FeatureDrift,
    OutcomeDrift,
    PredictionDrift,
    kolmogorov_smirnov,
    population_stability,
    psi,
    wasserstein,
)
from alphaops.scoring import FeatureProfile, ReferenceProfile, build_profile
from alphaops.scoring._profile import SKETCH_SIZE

Array = npt.NDArray[np.float64]
CLASSES = ("DOWN", "UP")


def _profile(features: Array, names: tuple[str, ...] | None = None) -> ReferenceProfile:
    names = names or tuple(f"f{j}" for j in range(features.shape[1]))
    return build_profile(features, names, np.full((len(features), 2), 0.5), CLASSES)


@pytest.fixture(scope="module")
def btc_features(load_real: Callable[[str, str], Candles]) -> pd.DataFrame:
    """Return the real BTCUSDT 1h features of the training tests' spec, with timestamps."""
    frame = FeaturePipeline(FEATURES).transform(load_real("BTCUSDT", "1h"))
    return frame.dropna().reset_index(drop=True)


def _period(frame: pd.DataFrame, start: str, end: str) -> Array:
    inside = (frame["timestamp"] >= start) & (frame["timestamp"] < end)
    return frame.loc[inside, list(FEATURES.names)].to_numpy(np.float64)


# --- pure functions ------------------------------------------------------------------------


def test_psi_equals_the_hand_computed_value() -> None:
    # (0.2 - 0.3) ln(0.2/0.3) + 0 + (0.5 - 0.4) ln(0.5/0.4) = 0.1 ln 1.5 + 0.1 ln 1.25
    assert psi([0.2, 0.3, 0.5], [0.3, 0.3, 0.4]) == pytest.approx(0.0628609, abs=1e-7)


def test_psi_fills_an_empty_bin_with_evidentlys_0_0001() -> None:
    # The reference's empty third bin becomes 0.0001; the live shares have no empty bin.
    expected = 0.25 * math.log(2) + (0.0001 - 0.25) * math.log(0.0001 / 0.25)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.25, 0.25]) == pytest.approx(expected, rel=1e-12)
    # A smallest share <= 0.0001 gives its millionth instead.
    tiny = 0.00005
    fill = tiny / 1e6
    want = (tiny - 0.5) * math.log(tiny / 0.5) + (fill - 0.5) * math.log(fill / 0.5)
    assert psi([tiny, 0.0, 1 - tiny], [0.5, 0.5, 0.0]) == pytest.approx(
        want + (1 - tiny - 0.0001) * math.log((1 - tiny) / 0.0001), rel=1e-12
    )


def test_population_stability_bins_live_values_with_the_reference_deciles() -> None:
    feature = FeatureProfile.of("x", np.arange(1000.0))
    assert len(feature.edges) == 9
    assert feature.proportions == pytest.approx([0.1] * 10)
    # Live values all in the lowest decile: shares [1, 0, …] filled with 0.0001.
    live = np.arange(100.0)
    hand = (0.1 - 1.0) * math.log(0.1 / 1.0) + 9 * (0.1 - 0.0001) * math.log(0.1 / 0.0001)
    assert population_stability(feature, live) == pytest.approx(hand)
    # Values beyond the reference range fall into the open outer bins.
    assert feature.proportions_of([-1e9, 1e9]).tolist() == [0.5] + [0.0] * 8 + [0.5]


def test_ks_and_wasserstein_equal_scipy_when_the_sketch_is_the_whole_reference() -> None:
    rng = np.random.default_rng(0)
    reference, live = rng.normal(size=400), rng.normal(0.2, 1.0, size=700)
    feature = FeatureProfile.of("x", reference)
    assert np.array_equal(feature.sketch, np.sort(reference))  # rows <= 512: exact
    raw = stats.ks_2samp(reference, live, method="asymp")
    assert kolmogorov_smirnov(feature, live) == pytest.approx((raw.statistic, raw.pvalue))
    assert wasserstein(feature, live) == pytest.approx(stats.wasserstein_distance(reference, live))


def test_ks_and_wasserstein_stay_within_the_sketch_bound_on_real_features(
    btc_features: pd.DataFrame,
) -> None:
    reference = _period(btc_features, "2019-01-01", "2021-01-01")
    live = _period(btc_features, "2024-01-01", "2024-03-01")
    for j, name in enumerate(FEATURES.names):
        ref, cur = reference[:, j], live[:, j]
        feature = FeatureProfile.of(name, ref)
        # Bounds: sup|F_sketch - F_ref| <= 1/(2n) + 1/rows, and
        # W1(sketch, reference) <= 2 (max - min) / n, n = 512 quantiles.
        ks_bound = 1 / (2 * SKETCH_SIZE) + 1 / ref.size
        w_bound = 2 * (ref.max() - ref.min()) / SKETCH_SIZE
        statistic, pvalue = kolmogorov_smirnov(feature, cur)
        raw = stats.ks_2samp(ref, cur, method="asymp")
        assert abs(statistic - raw.statistic) <= ks_bound, name
        # The p-value is scipy's for the true sizes: the raw p lies between those of D ± bound.
        en = np.round(ref.size * cur.size / (ref.size + cur.size))
        low, high = stats.kstwo.sf([statistic + ks_bound, max(statistic - ks_bound, 0)], en)
        assert low <= raw.pvalue <= high, name
        assert low <= pvalue <= high, name
        assert stats.wasserstein_distance(feature.sketch, ref) <= w_bound, name
        assert abs(wasserstein(feature, cur) - stats.wasserstein_distance(ref, cur)) <= w_bound


# --- FeatureDrift ----------------------------------------------------------------------------


def test_a_later_btc_regime_alarms_on_volatility_while_returns_stay_quiet(
    btc_features: pd.DataFrame,
) -> None:
    profile = _profile(_period(btc_features, "2019-01-01", "2019-07-01"), FEATURES.names)
    monitor = FeatureDrift(profile, window=1000)
    monitor.update_many(_period(btc_features, "2025-01-01", "2025-07-01")[-1000:])
    report = monitor.report()
    assert monitor.drift_detected
    assert report.worst == "alarm"
    assert "volatility_24" in report.alarms  # 2025 hourly volatility is far below 2019's
    assert report.row("returns_1").status != "alarm"


def test_a_sample_of_the_same_period_stays_ok_and_a_3_sigma_shift_alarms_everywhere(
    btc_features: pd.DataFrame,
) -> None:
    rows = _period(btc_features, "2019-01-01", "2019-07-01")
    order = np.random.default_rng(0).permutation(len(rows))
    reference, live = rows[order[:3000]], rows[order[3000:4000]]
    profile = _profile(reference, FEATURES.names)
    same = FeatureDrift(profile)
    same.update_many(live)
    assert same.report().worst == "ok"
    assert not same.drift_detected
    assert all(r.psi < 0.1 and r.n == 1000 for r in same.report().rows)
    shifted = FeatureDrift(profile)
    shifted.update_many(live + 3 * reference.std(axis=0))
    assert shifted.report().alarms == FEATURES.names


def test_the_sliding_window_forgets_rows_older_than_the_window() -> None:
    rng = np.random.default_rng(1)
    monitor = FeatureDrift(_profile(rng.normal(size=(2000, 2))), window=300)
    monitor.update_many(rng.normal(5.0, 1.0, size=(700, 2)))
    assert monitor.drift_detected
    for row in rng.normal(size=(300, 2)):  # one row at a time, as live bars arrive
        monitor.update(row)
    assert monitor.n == 300
    assert monitor.report().worst == "ok"
    assert not monitor.drift_detected


def test_a_constant_feature_is_ok_while_constant_and_alarms_when_it_moves() -> None:
    rng = np.random.default_rng(2)
    reference = np.column_stack([rng.normal(size=1000), np.full(1000, 5.0)])
    profile = _profile(reference)
    constant = profile.features[1]
    assert (constant.discrete, constant.edges, constant.proportions) == (True, (5.0,), (0, 1, 0))
    monitor = FeatureDrift(profile, window=500)
    monitor.update_many(np.column_stack([rng.normal(size=500), np.full(500, 5.0)]))
    assert monitor.report().row("f1").psi == 0.0
    assert monitor.report().row("f1").status == "ok"
    monitor.update_many(np.column_stack([rng.normal(size=500), np.full(500, 5.5)]))
    assert monitor.report().alarms == ("f1",)


def test_nan_values_are_ignored_and_too_few_rows_are_insufficient() -> None:
    rng = np.random.default_rng(3)
    monitor = FeatureDrift(_profile(rng.normal(size=(1000, 2))), window=1000)
    batch = rng.normal(size=(500, 2))
    batch[:400, 1] = np.nan
    monitor.update_many(batch)
    report = monitor.report()
    assert (report.row("f0").n, report.row("f0").status) == (500, "ok")
    assert (report.row("f1").n, report.row("f1").status) == (100, "insufficient")
    assert report.worst == "insufficient"
    empty = FeatureDrift(_profile(rng.normal(size=(100, 1)))).report().to_dict()
    assert empty["rows"][0]["psi"] is None  # NaN becomes null
    assert json.loads(json.dumps(empty))["worst"] == "insufficient"


def test_a_row_of_the_wrong_length_is_refused_naming_expected_and_got() -> None:
    monitor = FeatureDrift(_profile(np.zeros((10, 3))))
    with pytest.raises(DataValidationError, match=r"have 2 values.*expects 3") as info:
        monitor.update([1.0, 2.0])
    assert info.value.details == {"expected": 3, "got": 2}
    assert "in the model's input order" in str(info.value.fix)
    with pytest.raises(UsageError, match="update_many"):
        monitor.update(np.zeros((2, 3)))
    with pytest.raises(UsageError, match="at least 1 row"):
        FeatureDrift(_profile(np.zeros((10, 3))), window=0)


def test_the_report_serialises_to_json_with_every_metric() -> None:
    rng = np.random.default_rng(4)
    monitor = FeatureDrift(_profile(rng.normal(size=(600, 1))), window=400)
    monitor.update_many(rng.normal(size=(400, 1)))
    data = json.loads(json.dumps(monitor.report().to_dict()))
    assert set(data["rows"][0]) == {
        "name", "psi", "ks", "ks_pvalue", "ks_rejects", "wasserstein", "status", "n",
    }  # fmt: skip
    assert data["thresholds"] == DriftThresholds().model_dump()


def test_thresholds_are_frozen_ordered_and_refuse_unknown_keys() -> None:
    assert DriftThresholds().status(0.2, 200) == "alarm"  # Evidently's >=
    with pytest.raises(SpecError, match=r"psi_warn 0\.3 exceeds psi_alarm 0\.2"):
        DriftThresholds(psi_warn=0.3, psi_alarm=0.2)
    with pytest.raises(SpecError, match="unknown parameter 'psi_warning'"):
        DriftThresholds(psi_warning=0.3)  # type: ignore[call-arg]


# --- PredictionDrift -------------------------------------------------------------------------


def test_prediction_drift_compares_class_shares_and_confidence() -> None:
    rng = np.random.default_rng(5)
    reference = rng.dirichlet([3, 2, 1], size=2000)
    profile = build_profile(np.zeros((2000, 1)), ["x"], reference, ("SELL", "HOLD", "BUY"))
    same = PredictionDrift(profile, window=1000)
    same.update(rng.dirichlet([3, 2, 1], size=1000))
    assert same.report().worst == "ok"
    moved = PredictionDrift(profile, window=1000)
    for row in rng.dirichlet([1, 2, 6], size=1000):
        moved.update(row)
    assert moved.report().row("predicted_class").status == "alarm"
    assert moved.drift_detected
    with pytest.raises(DataValidationError, match=r"have 2 values.*3 classes"):
        moved.update([0.5, 0.5])


# --- OutcomeDrift ----------------------------------------------------------------------------


def _stream(rng: np.random.Generator, rates: list[tuple[float, int]]) -> npt.NDArray[np.bool_]:
    return np.concatenate([rng.random(n) < p for p, n in rates])


@pytest.mark.parametrize("detector", ["adwin", "ddm"])
@pytest.mark.parametrize("seed", range(5))
def test_outcome_drift_detects_a_win_rate_falling_from_0_6_to_0_3(detector: str, seed: int) -> None:
    monitor = OutcomeDrift(detector)  # type: ignore[arg-type]
    for won in _stream(np.random.default_rng(seed), [(0.6, 1000), (0.3, 1000)]):
        monitor.update(bool(won))
    assert monitor.drift_detected
    delay = {"adwin": 200, "ddm": 600}[detector]  # ADWIN reacts faster than DDM
    assert monitor.detected_at is not None
    assert 1000 < monitor.detected_at <= 1000 + delay
    assert monitor.n == 2000
    assert monitor.win_rate == pytest.approx(0.45, abs=0.05)


@pytest.mark.parametrize("detector", ["adwin", "ddm"])
@pytest.mark.parametrize("seed", range(5))
def test_outcome_drift_stays_quiet_on_a_stationary_0_55_stream(detector: str, seed: int) -> None:
    monitor = OutcomeDrift(detector)  # type: ignore[arg-type]
    for won in _stream(np.random.default_rng(100 + seed), [(0.55, 3000)]):
        monitor.update(bool(won))
    assert not monitor.drift_detected


def test_outcome_drift_latches_until_reset_and_takes_returns() -> None:
    monitor = OutcomeDrift()
    rng = np.random.default_rng(6)
    # Returns in units of the stop distance (ADWIN's bound assumes values in about [0, 1]).
    returns = np.concatenate([rng.normal(0.1, 0.3, 500), rng.normal(-0.1, 0.3, 500)])
    for value in returns:
        monitor.update(float(value))
    assert monitor.drift_detected  # latched, although river's flag is set for one update only
    assert monitor.detected_at is not None
    assert monitor.detected_at > 500
    assert 0.45 < monitor.win_rate < 0.55
    monitor.reset()
    assert (monitor.drift_detected, monitor.n, math.isnan(monitor.win_rate)) == (False, 0, True)
    with pytest.raises(UsageError, match="'adwin' or 'ddm'"):
        OutcomeDrift("kswin")  # type: ignore[arg-type]


def test_all_matches_the_public_names() -> None:
    package = importlib.import_module("alphaops.monitoring")
    public = {
        n for n, v in vars(package).items() if not n.startswith("_") and not inspect.ismodule(v)
    }
    assert set(package.__all__) == public
