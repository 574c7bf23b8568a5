"""Validation vs the champion and the lookahead audit, on real BTCUSDT data."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from tests.gates.conftest import FEATURES, Market

from alphaops.data.candles import Candles
from alphaops.features import FeaturePipeline
from alphaops.gates import (
    BundlePredictor,
    GateOutcome,
    LookaheadPolicy,
    label_rule_of,
    lookahead_audit,
    validation_gate,
)
from alphaops.registry import Bundle


def _validate(bundle: Bundle, market: Market, champion: Bundle | None = None) -> GateOutcome:
    mine = BundlePredictor(bundle).score(market.candles, start_ms=market.window_start_ms)
    theirs = (
        BundlePredictor(champion).score(market.candles, start_ms=market.window_start_ms)
        if champion
        else None
    )
    return validation_gate(mine, market.candles, label_rule_of(bundle.manifest), champion=theirs)


def test_without_a_champion_only_absolute_thresholds_apply_and_it_is_said(
    sound_bundle: Bundle, market: Market
) -> None:
    outcome = _validate(sound_bundle, market)
    assert outcome.passed, [c.explanation for c in outcome.failed]
    assert "no champion" in outcome.summary
    assert not any(c.name.endswith("_vs_champion") for c in outcome.checks)
    assert (outcome.value("log_loss") or 9.0) < 1.0986  # better than a uniform guess (ln 3)


def test_a_model_compared_with_itself_as_champion_passes_every_tolerance(
    sound_bundle: Bundle, market: Market
) -> None:
    outcome = _validate(sound_bundle, market, champion=sound_bundle)
    assert outcome.passed
    assert outcome.value("log_loss_vs_champion") == 0.0


def test_planted_random_model_fails_validation_on_log_loss_and_against_the_champion(
    planted: Callable[[str], Bundle], sound_bundle: Bundle, market: Market
) -> None:
    outcome = _validate(planted("random"), market, champion=sound_bundle)
    failed = {c.name for c in outcome.failed}
    assert {"log_loss", "brier", "log_loss_vs_champion"} <= failed


def test_sound_model_passes_the_lookahead_audit_bit_for_bit(
    sound_bundle: Bundle, market: Market
) -> None:
    predictor = BundlePredictor(sound_bundle)
    batch = predictor.score(market.candles, start_ms=market.window_start_ms)
    outcome = lookahead_audit(predictor, market.candles, batch)
    assert outcome.passed
    assert outcome.value("max_probability_difference") == 0.0


class CenteredVolatility:
    """A leaky feature source: it smooths every feature with the next bar (a lookahead bug)."""

    def __init__(self) -> None:
        self.inner = FeaturePipeline(FEATURES)
        self.names = self.inner.names
        self.warmup_bars = self.inner.warmup_bars

    def transform(self, candles: Candles) -> pd.DataFrame:
        frame = self.inner.transform(candles)
        cols = list(self.names)
        frame[cols] = (frame[cols] + frame[cols].shift(-1).fillna(frame[cols])) / 2
        return frame


def test_a_feature_that_peeks_at_the_next_bar_fails_the_lookahead_audit(
    sound_bundle: Bundle, market: Market
) -> None:
    predictor = BundlePredictor(sound_bundle, features=CenteredVolatility())
    batch = predictor.score(market.candles, start_ms=market.window_start_ms)
    # A batch-only source is cut bar by bar (~20 ms a bar): every 10th bar keeps this short.
    outcome = lookahead_audit(predictor, market.candles, batch, LookaheadPolicy(stride=10))
    assert not outcome.passed
    assert (outcome.value("mismatched_bars") or 0.0) >= 1
    assert "differs at" in outcome.checks[0].explanation
