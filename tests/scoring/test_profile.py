"""The drift reference profile: sketches and bins, degenerate features, JSON, and the profile a
real training job writes into its bundle."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from tests.training.conftest import BARS, FEATURES, make_job

from alphaops.core.errors import IntegrityError, UsageError
from alphaops.data.candles import Candles
from alphaops.registry import Bundle
from alphaops.registry.testing import build_tiny_bundle
from alphaops.scoring import (
    PROFILE_REPORT,
    FeatureProfile,
    ReferenceProfile,
    build_profile,
    profile_of,
)
from alphaops.scoring._profile import SKETCH_SIZE
from alphaops.training import train_job
from alphaops.training.data import prepare_data
from alphaops.training.executor import TrainedBundle, write_trained_bundle


@pytest.fixture(scope="module")
def btc(load_real: Callable[[str, str], Candles]) -> dict[str, Candles]:
    return {"BTCUSDT": load_real("BTCUSDT", "1h").tail(BARS)}


@pytest.fixture(scope="module")
def trained(btc: dict[str, Candles]) -> Callable[[str], TrainedBundle]:
    """Return ``trained(family)``: a fast ternary job of that family on real BTC (cached)."""
    return cache(lambda family: train_job(make_job(family, "ternary"), btc))


def test_the_sketch_holds_the_reference_quantiles_at_i_plus_half_over_n() -> None:
    values = np.random.default_rng(0).lognormal(size=5000)
    feature = FeatureProfile.of("x", values)
    probabilities = (np.arange(SKETCH_SIZE) + 0.5) / SKETCH_SIZE
    assert feature.sketch.tolist() == np.quantile(values, probabilities, method="hazen").tolist()
    assert feature.rows == 5000
    small = FeatureProfile.of("y", values[:300])
    assert small.sketch.tolist() == sorted(values[:300])  # n = rows: the values themselves


def test_a_continuous_feature_gets_decile_bins_and_a_discrete_one_value_bins() -> None:
    rng = np.random.default_rng(1)
    continuous = FeatureProfile.of("x", rng.normal(size=2000))
    assert not continuous.discrete
    assert len(continuous.edges) == 9
    assert continuous.proportions == pytest.approx([0.1] * 10)
    hours = FeatureProfile.of("hour", rng.integers(0, 24, size=2000) % 20)
    assert hours.discrete
    assert hours.edges == tuple(float(h) for h in range(20))
    assert sum(hours.proportions[1::2]) == pytest.approx(1.0)  # value bins hold everything
    assert hours.proportions_of([0.5]).tolist()[2] == 1.0  # between 0 and 1: a gap bin


def test_nan_rows_are_ignored_per_feature_and_a_constant_feature_does_not_crash() -> None:
    rows = np.column_stack(
        [np.r_[np.arange(99.0), np.nan], np.full(100, 3.0), np.full(100, np.nan)]
    )
    profile = build_profile(rows, ["x", "const", "empty"], np.full((100, 2), 0.5), ["A", "B"])
    x, const, empty = profile.features
    assert (x.rows, const.rows, empty.rows, profile.rows) == (99, 100, 0, 100)
    assert (const.edges, const.proportions, const.quantiles) == ((3.0,), (0, 1, 0), (3.0,) * 100)
    assert (empty.quantiles, empty.proportions) == ((), ())


def test_shapes_that_do_not_fit_are_refused() -> None:
    with pytest.raises(UsageError, match=r"features have shape \[4, 2\], expected \[rows, 3\]"):
        build_profile(np.zeros((4, 2)), ["a", "b", "c"], np.zeros((4, 2)), ["A", "B"])
    with pytest.raises(UsageError, match=r"probabilities have shape \[4, 3\], expected \[4, 2\]"):
        build_profile(np.zeros((4, 2)), ["a", "b"], np.zeros((4, 3)), ["A", "B"])


def test_the_profile_round_trips_through_json_exactly() -> None:
    rng = np.random.default_rng(2)
    profile = build_profile(
        rng.normal(size=(700, 3)),
        ["a", "b", "c"],
        rng.dirichlet([1, 1, 1], size=700),
        ["SELL", "HOLD", "BUY"],
        window_start_ms=1_700_000_000_000,
        window_end_ms=1_702_516_400_000,
    )
    data = profile.to_json()
    assert json.loads(data)["window_end_ms"] == 1_702_516_400_000
    assert ReferenceProfile.from_json(data) == profile
    with pytest.raises(IntegrityError, match="not a valid drift reference profile"):
        ReferenceProfile.from_json(data.replace(b'"format":1', b'"format":9'))


def test_training_writes_the_drift_reference_into_the_bundle(
    trained: Callable[[str], TrainedBundle], btc: dict[str, Candles], tmp_path: Path
) -> None:
    result = trained("random_forest")
    bundle = write_trained_bundle(result, tmp_path / "bundle")
    entry = {f.path: f for f in bundle.manifest.files}[PROFILE_REPORT]
    assert entry.size == (bundle.path / PROFILE_REPORT).stat().st_size  # checksummed
    profile = profile_of(Bundle.load(bundle.path))
    assert profile is not None
    assert profile.names == FEATURES.names
    assert profile.classes == ("SELL", "HOLD", "BUY")
    data = prepare_data(make_job("random_forest", "ternary"), btc)
    assert profile.rows == data.y_val.size == result.metrics["val_rows"]
    assert profile.feature("rsi_14") == FeatureProfile.of("rsi_14", data.X_val[:, 3])
    assert (profile.window_start_ms, profile.window_end_ms) == (data.val_start_ms, data.val_end_ms)
    assert profile.window_end_ms == btc["BTCUSDT"].timestamps_ms[-1] - 4 * 3_600_000  # horizon 4
    assert sum(profile.class_shares) == pytest.approx(1.0)
    (bundle.path / PROFILE_REPORT).write_bytes(b"{}")
    with pytest.raises(IntegrityError, match=PROFILE_REPORT):
        Bundle.load(bundle.path)  # the manifest's sha256 covers the profile


def test_a_sequence_model_profiles_the_features_of_each_decided_bar(
    trained: Callable[[str], TrainedBundle], btc: dict[str, Candles], tmp_path: Path
) -> None:
    bundle = write_trained_bundle(trained("lstm"), tmp_path / "bundle")
    profile = profile_of(bundle)
    assert profile is not None
    windows = prepare_data(make_job("lstm", "ternary"), btc).X_val
    last_step = windows.features[windows.ends]
    assert np.array_equal(last_step, windows.batch(np.arange(len(windows)))[:, -1, :])
    for j, name in enumerate(FEATURES.names):
        assert profile.feature(name) == FeatureProfile.of(name, last_step[:, j])


def test_a_bundle_trained_before_profiles_has_none(tmp_path: Path) -> None:
    assert profile_of(Bundle.load(build_tiny_bundle(tmp_path / "old"))) is None


def test_a_profile_of_other_features_than_the_manifest_is_refused(
    trained: Callable[[str], TrainedBundle], tmp_path: Path
) -> None:
    result = trained("random_forest")
    wrong = build_profile(np.zeros((3, 1)), ["other"], np.full((3, 3), 1 / 3), ["S", "H", "B"])
    reports = result.reports | {"drift_reference.json": wrong.to_json()}
    bundle = write_trained_bundle(dataclasses.replace(result, reports=reports), tmp_path / "b")
    with pytest.raises(IntegrityError, match=r"profiles features \['other'\]") as info:
        profile_of(bundle)
    assert info.value.details["file"] == PROFILE_REPORT


def test_all_matches_the_public_names() -> None:
    package = importlib.import_module("alphaops.scoring")
    public = {
        n for n, v in vars(package).items() if not n.startswith("_") and not inspect.ismodule(v)
    }
    public.discard("annotations")
    assert set(package.__all__) == public
