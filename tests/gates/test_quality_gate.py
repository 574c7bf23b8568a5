"""The quality gate on real BTCUSDT data: planted defects fail, a sound LightGBM passes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.gates.conftest import CLASSES, Market

from alphaops.core.errors import IntegrityError
from alphaops.gates import BundlePredictor, QualityPolicy, Scores, quality_gate
from alphaops.registry import Bundle


def _oos(bundle: Bundle, market: Market) -> Scores:
    return BundlePredictor(bundle).score(market.candles, start_ms=market.window_start_ms)


def test_sound_lightgbm_trained_on_real_btcusdt_passes_the_quality_gate(
    sound_bundle: Bundle, market: Market
) -> None:
    scores = _oos(sound_bundle, market)
    outcome = quality_gate(scores)
    assert len(scores) > 1400
    assert outcome.passed, [c.explanation for c in outcome.failed]
    assert (outcome.value("majority_share") or 1.0) < 0.70
    assert (outcome.value("confidence_std") or 0.0) > 0.05


def test_predictor_scores_only_out_of_sample_bars_in_the_bundle_class_order(
    sound_bundle: Bundle, market: Market
) -> None:
    scores = _oos(sound_bundle, market)
    assert scores.classes == CLASSES
    assert scores.timestamps_ms[0] == market.window_start_ms
    assert np.all(np.diff(scores.timestamps_ms) > 0)
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_predictor_matches_the_bundle_reference_outputs(sound_bundle: Bundle) -> None:
    predictor = BundlePredictor(sound_bundle)
    got = predictor.predict_proba(sound_bundle.reference_inputs())
    np.testing.assert_allclose(got, sound_bundle.predict(sound_bundle.reference_inputs()))


@pytest.mark.parametrize(
    ("kind", "failing"),
    [
        ("constant", {"constant_output", "confidence_std", "confidence_p10_p90"}),
        ("majority", {"majority_share"}),
        ("dead_zone", {"hold_dead_zone", "majority_share"}),
    ],
)
def test_planted_degenerate_model_fails_the_quality_gate_on_the_named_checks(
    planted: Callable[[str], Bundle], market: Market, kind: str, failing: set[str]
) -> None:
    outcome = quality_gate(_oos(planted(kind), market))
    assert not outcome.passed
    assert failing <= {c.name for c in outcome.failed}
    for failed in outcome.failed:
        assert "must be" in failed.explanation


def test_every_quality_check_reports_value_threshold_verdict_and_explanation(
    planted: Callable[[str], Bundle], market: Market
) -> None:
    outcome = quality_gate(_oos(planted("majority"), market))
    names = [c.name for c in outcome.checks]
    assert names == [
        "majority_share",
        "confidence_std",
        "confidence_p10_p90",
        "constant_output",
        "hold_dead_zone",
    ]
    for c in outcome.checks:
        assert c.value is not None
        assert c.threshold is not None
        assert c.verdict in ("PASS", "FAIL")
        assert c.explanation


def test_too_few_bars_make_every_quality_check_fail_as_unevaluable(
    sound_bundle: Bundle, market: Market
) -> None:
    scores = _oos(sound_bundle, market)
    outcome = quality_gate(scores.select(np.arange(len(scores)) < 50))
    assert not outcome.passed
    assert len(outcome.failed) == len(outcome.checks)
    assert all("cannot be evaluated" in c.explanation for c in outcome.checks)


def test_non_finite_probabilities_fail_the_quality_gate() -> None:
    probs = np.full((300, 3), np.nan, dtype=np.float32)
    outcome = quality_gate(Scores(np.arange(300, dtype=np.int64), probs, CLASSES))
    assert not outcome.passed
    assert "NaN" in outcome.checks[0].explanation


def test_thresholds_are_configurable_through_the_frozen_policy(
    planted: Callable[[str], Bundle], market: Market
) -> None:
    scores = _oos(planted("majority"), market)
    lenient = QualityPolicy(max_majority_share=1.0)
    assert quality_gate(scores, lenient).value("majority_share") == pytest.approx(
        quality_gate(scores).value("majority_share")
    )
    assert "majority_share" not in {c.name for c in quality_gate(scores, lenient).failed}


def test_a_bundle_without_its_feature_spec_is_refused_naming_the_file(
    sound_bundle: Bundle, tmp_path: Path
) -> None:
    # A manifest without its feature spec and a folder without reports/training.json (where
    # bundles published before the manifest field kept it): the features are unknown.
    manifest = sound_bundle.manifest.model_copy(update={"feature_spec": None})
    missing = Bundle(path=tmp_path, manifest=manifest)
    with pytest.raises(IntegrityError, match=r"no feature spec .*training\.json"):
        BundlePredictor(missing)
