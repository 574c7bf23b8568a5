"""PSR/DSR against the literature, and the vectorised backtest against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from tests.gates.conftest import CLASSES, Market

from alphaops.gates import (
    BacktestPolicy,
    GateOutcome,
    Scores,
    backtest,
    backtest_gate,
    buy_and_hold,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    simulate,
)


def test_dsr_reproduces_the_numerical_example_of_bailey_and_lopez_de_prado_2014() -> None:
    # "The Deflated Sharpe Ratio" (J. Portfolio Management, 2014), numerical example: N = 100
    # trials, V[SR] = 1/2 annualised, best annualised SR = 2.5 over T = 1,250 daily returns
    # (250 a year), skewness -3, kurtosis 10  ->  SR0 = 0.1132 per day, DSR = 0.9004.
    daily_variance = 0.5 / 250
    assert expected_max_sharpe(100, daily_variance) == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(
        2.5 / math.sqrt(250), 1250, trials=100, variance=daily_variance, skew=-3, kurtosis=10
    )
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_psr_is_the_dsr_against_the_expected_maximum_sharpe() -> None:
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    psr = probabilistic_sharpe_ratio(
        2.5 / math.sqrt(250), 1250, benchmark=sr0, skew=-3, kurtosis=10
    )
    assert psr == pytest.approx(0.9004, abs=5e-5)


def test_psr_under_normal_returns_reduces_to_the_textbook_z_test() -> None:
    # Bailey & López de Prado 2012, eq. for PSR with skew 0, kurtosis 3.
    sr, n = 0.05, 500
    expected = norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 + sr**2 / 2))
    assert probabilistic_sharpe_ratio(sr, n) == pytest.approx(expected, rel=1e-12)


def test_negative_skew_and_fat_tails_lower_the_psr_of_a_positive_sharpe() -> None:
    normal = probabilistic_sharpe_ratio(0.1, 250)
    assert probabilistic_sharpe_ratio(0.1, 250, skew=-2, kurtosis=9) < normal


def test_more_trials_raise_the_bar_and_lower_the_dsr() -> None:
    values = [deflated_sharpe_ratio(0.1, 1000, trials=n, variance=0.001) for n in (1, 10, 1000)]
    assert values[0] > values[1] > values[2]
    assert values[0] == probabilistic_sharpe_ratio(0.1, 1000)


def test_psr_that_cannot_be_evaluated_is_nan() -> None:
    assert math.isnan(probabilistic_sharpe_ratio(0.1, 1))
    assert math.isnan(probabilistic_sharpe_ratio(float("nan"), 100))


def test_costs_are_charged_on_every_change_of_position() -> None:
    close = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    r = simulate(close, [1, 0, -1, -1, 0], cost=0.001, periods_per_year=1)
    # entry +1 (1 unit), exit to 0 (1 unit), short -1 (1 unit), hold: 3 units traded
    assert r.net_returns.tolist() == pytest.approx([-0.001, -0.001, -0.001, 0.0])
    assert r.metrics["turnover"] == pytest.approx(3 / 4)
    assert r.metrics["trades"] == 2


def test_max_drawdown_and_hit_rate_on_a_known_path() -> None:
    close = np.array([100.0, 120.0, 90.0, 99.0, 110.0])
    r = simulate(close, [1, 1, 1, 1, 0], cost=0.0, periods_per_year=1)
    assert r.metrics["max_drawdown"] == pytest.approx(0.25)
    assert r.metrics["total_return"] == pytest.approx(0.10)
    assert r.metrics["hit_rate"] == 1.0


def test_long_short_shorts_on_sell_while_long_flat_stays_out(market: Market) -> None:
    candles = market.candles
    n = 300
    stamps = candles.timestamps_ms[-n - 1 : -1]
    sells = np.tile(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), (n, 1))
    scores = Scores(stamps, sells, CLASSES)
    flat = backtest(candles, scores, BacktestPolicy(mode="long_flat"))
    short = backtest(candles, scores, BacktestPolicy(mode="long_short", fee_bps=0, slippage_bps=0))
    hold = buy_and_hold(candles, stamps, BacktestPolicy(fee_bps=0, slippage_bps=0))
    assert flat.metrics["exposure"] == 0.0
    assert short.metrics["exposure"] == 1.0
    np.testing.assert_allclose(short.net_returns, -hold.net_returns)


def test_a_strategy_that_never_moves_fails_the_backtest_gate_as_unevaluable(
    market: Market,
) -> None:
    n = 300
    stamps = market.candles.timestamps_ms[-n - 1 : -1]
    holds = np.tile(np.array([[0.1, 0.8, 0.1]], dtype=np.float32), (n, 1))
    result = backtest(market.candles, Scores(stamps, holds, CLASSES))
    outcome = backtest_gate(result)
    assert not outcome.passed
    # it never moves: no Sharpe, no PSR/DSR, and it earns no more than staying flat
    assert [c.name for c in outcome.failed] == ["sharpe_defined", "beats_flat", "psr", "dsr"]


def _gate(net: list[float], policy: BacktestPolicy | None = None) -> GateOutcome:
    close = np.cumprod(np.concatenate([[100.0], 1.0 + np.asarray(net)]))
    result = simulate(close, np.ones(close.size), cost=0.0, periods_per_year=8760)
    return backtest_gate(result, policy=policy, min_bars=10)


def test_a_strategy_that_loses_after_costs_fails_beats_flat_even_with_a_fine_gross_return() -> None:
    close = 100.0 * np.cumprod(np.r_[1.0, np.tile([1.002, 0.999], 150)])
    positions = np.tile([1.0, 0.0], 151)[: close.size]  # long on every up bar, then out
    gross = simulate(close, positions, cost=0.0, periods_per_year=8760)
    net = simulate(close, positions, cost=0.0015, periods_per_year=8760)
    assert gross.metrics["total_return"] > 0.3
    assert net.metrics["gross_return"] == pytest.approx(gross.metrics["total_return"])
    assert net.metrics["units_traded"] == 300
    assert net.metrics["cost_paid"] == pytest.approx(300 * 0.0015)
    assert net.metrics["total_return"] < 0
    outcome = backtest_gate(net)
    assert "beats_flat" in [c.name for c in outcome.failed]
    assert "gross +" in next(c for c in outcome.checks if c.name == "beats_flat").explanation


def test_psr_and_dsr_floors_are_enforced_by_default_and_can_be_reported_only() -> None:
    rng = np.random.default_rng(0)
    weak = list(rng.normal(0.0002, 0.01, 400))  # positive, but far from significant
    outcome = _gate(weak)
    assert outcome.value("beats_flat") is not None
    assert {c.name for c in outcome.failed} >= {"psr"}
    relaxed = _gate(weak, BacktestPolicy(min_psr=None, min_dsr=None, min_net_return=None))
    assert relaxed.passed == (outcome.value("max_drawdown") <= 0.5)  # type: ignore[operator]
    assert {c.name: c.comparison for c in relaxed.checks if c.name in ("psr", "dsr")} == {
        "psr": None,
        "dsr": None,
    }
    assert BacktestPolicy().min_psr == 0.9
    assert BacktestPolicy().min_dsr == 0.5
    assert BacktestPolicy().min_net_return == 0.0


def test_dsr_is_the_psr_against_sr0_of_the_registry_trials() -> None:
    rng = np.random.default_rng(1)
    net = rng.normal(0.002, 0.01, 500)
    close = np.cumprod(np.concatenate([[100.0], 1.0 + net]))
    one = simulate(close, np.ones(close.size), cost=0.0, periods_per_year=8760)
    many = simulate(close, np.ones(close.size), cost=0.0, periods_per_year=8760, trials=50)
    n = 500
    assert one.metrics["sr0"] == 0.0
    assert one.metrics["dsr"] == one.metrics["psr"]
    sr0 = expected_max_sharpe(50, 1 / (n - 1))
    assert many.metrics["sr0_per_bar"] == pytest.approx(sr0)
    assert many.metrics["sr0"] == pytest.approx(sr0 * math.sqrt(8760))
    assert many.metrics["dsr"] == pytest.approx(
        probabilistic_sharpe_ratio(
            many.metrics["sharpe_per_bar"],
            n,
            benchmark=sr0,
            skew=many.metrics["skew"],
            kurtosis=many.metrics["kurtosis"],
        )
    )
    assert many.metrics["dsr"] < many.metrics["psr"]
    explanation = next(c for c in backtest_gate(many).checks if c.name == "dsr").explanation
    assert "over 50 trials" in explanation
    assert f"SR0 = {many.metrics['sr0']:.3g} ann." in explanation
