"""The decision rule: argmax at zero, the band, the edge over cost, the minimum hold, bar by bar
equal to batch, and the rule a real training job records in its bundle."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tests.training.conftest import BARS, make_job

from alphaops.core.errors import SpecError
from alphaops.data.candles import Candles
from alphaops.inference import ACTION_OF_CLASS
from alphaops.scoring import (
    ARGMAX,
    BundlePredictor,
    Decider,
    DecisionRule,
    Scores,
    decide,
    decision_rule_of,
)
from alphaops.training import TrainingJob, train_job
from alphaops.training.data import prepare_data
from alphaops.training.executor import TrainedBundle, write_trained_bundle

TERNARY = ("SELL", "HOLD", "BUY")
BINARY = ("LOSS", "WIN")


def probabilities(n_classes: int) -> st.SearchStrategy[np.ndarray]:
    raw = arrays(np.float32, st.tuples(st.integers(0, 60), st.just(n_classes)),
                 elements=st.floats(0.0625, 1.0, width=32))  # fmt: skip
    return raw.map(lambda a: (a / a.sum(axis=1, keepdims=True)).astype(np.float32))


rules = st.builds(
    DecisionRule,
    min_confidence=st.sampled_from([0.0, 0.4, 0.5, 0.6]),
    min_hold_bars=st.integers(0, 6),
    min_edge_over_cost=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    typical_move=st.sampled_from([0.002, 0.006, 0.02]),
)


def runs(actions: np.ndarray) -> list[tuple[int, int, int]]:
    """Return ``(side, start, length)`` of each run of one position."""
    out, start = [], 0
    for i in range(1, actions.size + 1):
        if i == actions.size or actions[i] != actions[start]:
            out.append((int(actions[start]), start, i - start))
            start = i
    return out


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([TERNARY, BINARY]).flatmap(lambda c: st.tuples(st.just(c), probabilities(len(c)))), rules)  # fmt: skip
def test_feeding_bars_one_by_one_gives_exactly_the_batch_actions(
    case: tuple[tuple[str, ...], np.ndarray], rule: DecisionRule
) -> None:
    classes, p = case
    decider = Decider(classes, rule)
    one_by_one = [decider.update(row) for row in p]
    assert one_by_one == decide(p, classes, rule).tolist()
    assert decider.position == (one_by_one[-1] if one_by_one else 0)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([TERNARY, BINARY]).flatmap(lambda c: st.tuples(st.just(c), probabilities(len(c)))))  # fmt: skip
def test_the_rule_of_zeros_is_plain_argmax(case: tuple[tuple[str, ...], np.ndarray]) -> None:
    classes, p = case
    scores = Scores(np.arange(len(p), dtype=np.int64), p, classes)
    expected = np.array([ACTION_OF_CLASS[classes[i]] for i in np.argmax(p, axis=1)], np.int8)
    assert decide(p, classes, DecisionRule()).tolist() == expected.tolist()
    assert scores.actions.tolist() == scores.predicted_actions.tolist() == expected.tolist()
    assert DecisionRule().is_argmax
    assert DecisionRule(min_hold_bars=1).is_argmax


@settings(max_examples=150, deadline=None)
@given(probabilities(3), rules)
def test_a_position_is_held_at_least_min_hold_bars_and_entered_only_on_a_sure_paying_signal(
    p: np.ndarray, rule: DecisionRule
) -> None:
    actions = decide(p, TERNARY, rule)
    assert set(actions.tolist()) <= {-1, 0, 1}
    for side, start, length in runs(actions):
        if side != 0 and start + length < actions.size:  # not cut by the end of the data
            assert length >= rule.min_hold_bars
        if side != 0:  # the bar that entered it signalled that side, confidently, with edge
            row = p[start]
            best = int(np.argmax(row))
            assert TERNARY[best] == ("BUY" if side == 1 else "SELL")
            assert row[best] >= rule.min_confidence
            edge = side * (float(row[2]) - float(row[0])) * (rule.typical_move or 0.0)
            if rule.min_edge_over_cost > 0:
                assert edge >= rule.min_edge_over_cost * rule.cost


def test_no_signal_keeps_the_position_until_the_holding_period_ends_then_goes_flat() -> None:
    buy, hold, sell = [0.1, 0.2, 0.7], [0.2, 0.6, 0.2], [0.7, 0.2, 0.1]
    p = np.array([buy, hold, sell, hold, hold, buy, hold, buy, hold, hold, hold, hold])
    rule = DecisionRule(min_hold_bars=3)
    # BUY held 3 bars (the SELL inside is ignored), then flat; a fresh BUY renews the period.
    assert decide(p, TERNARY, rule).tolist() == [1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    # After the holding period an opposite signal reverses the position at once.
    p2 = np.array([buy, hold, hold, sell, hold])
    assert decide(p2, TERNARY, DecisionRule(min_hold_bars=2)).tolist() == [1, 1, 0, -1, -1]
    assert decide(p2, TERNARY, DecisionRule(min_hold_bars=3)).tolist() == [1, 1, 1, -1, -1]


def test_the_edge_must_pay_the_round_trip_cost() -> None:
    # p_BUY - p_SELL = 0.5: at a 100 bps typical move the edge is 50 bps.
    p = np.array([[0.1, 0.3, 0.6]])
    at = {m: DecisionRule(min_edge_over_cost=m, typical_move=0.01) for m in (1.0, 5 / 3, 2.0)}
    assert [decide(p, TERNARY, r).tolist() for r in at.values()] == [[1], [1], [0]]
    # Binary: p_WIN - p_LOSS = 0.2 -> 20 bps of a 100 bps move, below 30 bps.
    assert decide(np.array([[0.4, 0.6]]), BINARY, at[1.0]).tolist() == [0]
    assert decide(np.array([[0.2, 0.8]]), BINARY, at[1.0]).tolist() == [1]


def test_an_edge_check_without_a_typical_move_is_refused() -> None:
    rule = DecisionRule(min_edge_over_cost=1.0)
    with pytest.raises(SpecError, match="typical move"):
        decide(np.array([[0.1, 0.3, 0.6]]), TERNARY, rule)
    with pytest.raises(SpecError, match="typical move"):
        Decider(TERNARY, rule)
    with pytest.raises(SpecError, match="min_confidence"):
        DecisionRule(min_confidence=1.5)


def test_a_job_measures_the_typical_move_itself_and_defaults_to_trading_less() -> None:
    job = make_job("lightgbm", "ternary")
    rule = job.decision_rule
    assert (rule.min_confidence, rule.min_hold_bars, rule.min_edge_over_cost) == (0.5, 4, 1.0)
    assert make_job("lightgbm", "binary").decision_rule.min_confidence == 0.55
    argmax = make_job("lightgbm", decision=DecisionRule())
    assert argmax.decision_rule.is_argmax
    assert TrainingJob.from_dict(argmax.to_dict()).config_hash == argmax.config_hash
    assert argmax.config_hash != job.config_hash
    with pytest.raises(SpecError, match="typical_move"):
        make_job("lightgbm", decision=DecisionRule(typical_move=0.01))


# -- the rule in a real bundle ------------------------------------------------------------


@pytest.fixture(scope="module")
def btc(load_real: Callable[[str, str], Candles]) -> Candles:
    return load_real("BTCUSDT", "1h").tail(BARS)


@pytest.fixture(scope="module")
def trained(btc: Candles) -> Callable[[str], TrainedBundle]:
    return cache(lambda task: train_job(make_job("lightgbm", task), {"BTCUSDT": btc}))


def test_training_records_the_rule_with_the_move_of_its_training_rows_only(
    trained: Callable[[str], TrainedBundle], btc: Candles, tmp_path: Path
) -> None:
    bundle = write_trained_bundle(trained("ternary"), tmp_path / "b")
    rule = decision_rule_of(bundle.manifest)
    job = make_job("lightgbm", "ternary")
    assert rule == job.decision_rule.with_typical_move(rule.typical_move or 0.0)
    data = prepare_data(job, {"BTCUSDT": btc})
    assert data.train_forward_returns is not None
    trading = data.y_train != 1  # BUY and SELL rows
    expected = float(np.abs(data.train_forward_returns[trading]).mean())
    assert rule.typical_move == pytest.approx(expected, rel=1e-12)
    # Validation bars never count: change every price from the validation start on.
    frame = btc.frame.copy()
    later = (btc.timestamps_ms >= data.val_start_ms).tolist()
    for column in ("open", "high", "low", "close"):
        frame.loc[later, column] *= np.linspace(1.0, 3.0, sum(later))
    changed = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")
    again = prepare_data(job, {"BTCUSDT": changed})
    assert again.train_forward_returns is not None
    moved = float(np.abs(again.train_forward_returns[again.y_train != 1]).mean())
    assert moved == expected
    report = (bundle.path / "reports" / "training.json").read_text()
    assert '"decision"' in report
    assert "hold >= 4 bars" in report


def test_the_bundles_rule_sets_the_scores_actions_and_argmax_stays_the_prediction(
    trained: Callable[[str], TrainedBundle], btc: Candles, tmp_path: Path
) -> None:
    predictor = BundlePredictor(write_trained_bundle(trained("ternary"), tmp_path / "b"))
    scores = predictor.score(btc)
    assert scores.decision == predictor.decision
    assert not predictor.decision.is_argmax
    assert (
        scores.actions.tolist()
        == decide(scores.probabilities, scores.classes, predictor.decision).tolist()
    )
    plain = scores.with_decision(None)
    assert plain.actions.tolist() == scores.predicted_actions.tolist()
    assert np.array_equal(plain.predicted, scores.predicted)
    turnover = {
        n: np.abs(np.diff(s.actions)).sum() for n, s in (("rule", scores), ("argmax", plain))
    }
    assert turnover["rule"] < turnover["argmax"]


def test_a_bundle_without_a_rule_keeps_trading_argmax(
    trained: Callable[[str], TrainedBundle], btc: Candles, tmp_path: Path
) -> None:
    old = trained("binary")
    manifest = {k: v for k, v in old.manifest.items() if k != "decision"}
    bundle = write_trained_bundle(dataclasses.replace(old, manifest=manifest), tmp_path / "old")
    assert bundle.manifest.decision is None
    assert '"decision": null' in (bundle.path / "manifest.json").read_text()
    predictor = BundlePredictor(bundle)
    assert predictor.decision == ARGMAX
    scores = predictor.score(btc)
    assert scores.actions.tolist() == scores.predicted_actions.tolist()


def test_an_unusable_rule_in_a_manifest_is_refused(
    trained: Callable[[str], TrainedBundle], tmp_path: Path
) -> None:
    old = trained("ternary")
    broken = old.manifest | {"decision": {"min_edge_over_cost": 1.0}}
    bundle = write_trained_bundle(dataclasses.replace(old, manifest=broken), tmp_path / "b")
    with pytest.raises(SpecError, match="typical move"):
        BundlePredictor(bundle)
