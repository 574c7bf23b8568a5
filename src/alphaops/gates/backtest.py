"""A vectorised, cost-aware backtest of a model's actions, and the backtest gate.

The action at bar ``t`` (decided at its close) sets the position: ``long_flat`` holds +1 on
BUY and 0 otherwise, ``long_short`` also holds -1 on SELL. Where it fills follows the market
(``BacktestPolicy.fill``): with ``close`` fills it is held from the close of ``t`` to the close
of the next bar; with ``next_open`` fills from the open of ``t + 1`` to the open of ``t + 2``,
so the overnight or weekend gap after the decision is not booked at a price nobody could trade.
``auto`` (the default) fills at the next open where the series' calendar has session gaps
(equities, FX) and at the close on 24/7 markets, where the next open is the same instant.
Every change of position costs ``(fee_bps + slippage_bps) / 10,000`` per unit traded. Returns
are per bar; Sharpe and Sortino are annualised with the calendar's bars per year (365 days
around the clock, 260 FX days, 252 NYSE sessions …). PSR and DSR use per-bar Sharpe ratios;
the DSR's trials are the candidates the registry holds for the model.

>>> import numpy as np
>>> close = np.array([100.0, 110.0, 99.0, 108.9])
>>> r = simulate(close, np.array([1, 1, 0, 0]), cost=0.0, periods_per_year=1)
>>> r.net_returns.round(4).tolist(), round(r.metrics["total_return"], 4)
([0.1, -0.1, 0.0], -0.01)
>>> r.metrics["trades"], r.metrics["hit_rate"]
(1.0, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.stats import kurtosis as _kurtosis
from scipy.stats import skew as _skew

from alphaops.core.timeframes import Timeframe
from alphaops.data.calendars import Calendar, Fill
from alphaops.data.candles import Candles
from alphaops.gates.policy import BacktestPolicy
from alphaops.gates.results import Check, Comparison, GateOutcome, check, info
from alphaops.gates.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)
from alphaops.scoring import Scores

__all__ = [
    "BacktestResult",
    "backtest",
    "backtest_gate",
    "buy_and_hold",
    "periods_per_year",
    "simulate",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Per-bar positions, net returns and equity of one strategy, with its metrics."""

    name: str
    timestamps_ms: npt.NDArray[np.int64]
    positions: FloatArray
    net_returns: FloatArray
    equity: FloatArray
    metrics: dict[str, float] = field(default_factory=dict)
    fill: Fill = "close"

    @property
    def drawdown(self) -> FloatArray:
        """Return the drawdown per bar (0 at a new high, 0.2 for 20% below the peak)."""
        peak = np.maximum.accumulate(np.concatenate([[1.0], self.equity]))[1:]
        return np.asarray(1.0 - self.equity / peak)


def simulate(
    close: FloatArray,
    positions: npt.ArrayLike,
    *,
    cost: float,
    periods_per_year: float,
    trials: int = 1,
    trial_variance: float | None = None,
    name: str = "strategy",
    timestamps_ms: npt.NDArray[np.int64] | None = None,
) -> BacktestResult:
    """Run positions over closes: ``positions[i]`` is held from ``close[i]`` to ``close[i+1]``.

    The last position is never held (there is no next close). ``trial_variance`` is the
    variance of per-bar Sharpe ratios across trials for the DSR; by default the variance of
    the Sharpe estimator of an unskilled strategy over the same bars, ``1 / (n - 1)``.
    """
    prices = np.asarray(close, dtype=np.float64)
    held = np.asarray(positions, dtype=np.float64)[:-1]
    market = prices[1:] / prices[:-1] - 1.0
    change = np.abs(np.diff(np.concatenate([[0.0], held])))
    gross = held * market
    net = gross - cost * change
    equity = np.asarray(np.cumprod(1.0 + net), dtype=np.float64)
    n = int(net.size)
    stamps = (
        np.arange(n, dtype=np.int64)
        if timestamps_ms is None
        else timestamps_ms[:n].astype(np.int64)
    )
    result = BacktestResult(name, stamps, held, net, equity)
    result.metrics.update(
        _metrics(
            result, market, cost, periods_per_year, trials, trial_variance, change_sum=change.sum()
        )
    )
    result.metrics.update(_cost_metrics(gross, net, change, cost))
    return result


def _cost_metrics(
    gross: FloatArray, net: FloatArray, change: FloatArray, cost: float
) -> dict[str, float]:
    # What trading cost: the compounded return before costs (``total_return`` is after), the
    # units traded, and the costs charged (summed per bar, as fractions of equity).
    n = net.size
    nan = float("nan")
    return {
        "gross_return": float(np.prod(1.0 + gross) - 1.0) if n else nan,
        "units_traded": float(change.sum()),
        "cost_paid": float(cost * change.sum()),
    }


def _metrics(
    r: BacktestResult,
    market: FloatArray,
    cost: float,
    periods_per_year: float,
    trials: int,
    trial_variance: float | None,
    *,
    change_sum: float,
) -> dict[str, float]:
    net, n = r.net_returns, r.net_returns.size
    nan = float("nan")
    std = float(np.std(net, ddof=1)) if n > 1 else nan
    sharpe = float(np.mean(net)) / std if n > 1 and std > 0 else nan
    downside = float(np.sqrt(np.mean(np.minimum(net, 0.0) ** 2))) if n else nan
    sortino = float(np.mean(net)) / downside if n and downside > 0 else nan
    skew = float(_skew(net)) if n > 2 and std > 0 else nan
    kurt = float(_kurtosis(net, fisher=False)) if n > 3 and std > 0 else nan
    variance = trial_variance if trial_variance is not None else (1.0 / (n - 1) if n > 1 else nan)
    trade_returns = _trade_returns(r.positions, market, cost)
    annual = math.sqrt(periods_per_year)
    sr0 = expected_max_sharpe(trials, variance)
    return {
        "bars": float(n),
        "total_return": float(r.equity[-1] - 1.0) if n else nan,
        "sharpe": sharpe * annual,
        "sortino": sortino * annual,
        "sharpe_per_bar": sharpe,
        "max_drawdown": float(r.drawdown.max()) if n else nan,
        "turnover": float(change_sum / n) if n else nan,
        "trades": float(trade_returns.size),
        "hit_rate": float(np.mean(trade_returns > 0)) if trade_returns.size else nan,
        "exposure": float(np.mean(r.positions != 0)) if n else nan,
        "skew": skew,
        "kurtosis": kurt,
        "psr": probabilistic_sharpe_ratio(sharpe, n, skew=skew, kurtosis=kurt),
        "dsr": deflated_sharpe_ratio(
            sharpe, n, trials=trials, variance=variance, skew=skew, kurtosis=kurt
        ),
        "trials": float(trials),
        "trial_variance": variance,
        "sr0_per_bar": sr0,
        "sr0": sr0 * annual,
    }


def _trade_returns(positions: FloatArray, market: FloatArray, cost: float) -> FloatArray:
    # A trade is a run of bars holding the same non-zero position; it pays entry and exit.
    starts = np.flatnonzero(
        (positions != 0) & (positions != np.concatenate([[0.0], positions[:-1]]))
    )
    out = []
    for start in starts:
        end = start
        while end + 1 < positions.size and positions[end + 1] == positions[start]:
            end += 1
        side = positions[start]
        gross = np.prod(1.0 + side * market[start : end + 1]) - 1.0
        out.append(gross - 2 * cost * abs(side))
    return np.asarray(out, dtype=np.float64)


def _positions(actions: npt.NDArray[np.int8], mode: str) -> FloatArray:
    a = actions.astype(np.float64)
    return a if mode == "long_short" else np.maximum(a, 0.0)


def _fill_prices(
    candles: Candles, stamps: npt.NDArray[np.int64], fill: Fill
) -> tuple[FloatArray, FloatArray]:
    """Return the price at which each scored bar's decision fills, and the next such price.

    ``close``: the close of each scored bar, then that of the bar after the last one.
    ``next_open``: the open of the bar after each scored bar (a decision on the last candle
    cannot fill and is dropped), then the open after that. The tail is empty when the candles
    end first.
    """
    index = np.searchsorted(candles.timestamps_ms, stamps)
    n = len(candles)
    if fill == "close":
        prices = candles.frame["close"].to_numpy(np.float64)
        at = index
    else:
        prices = candles.frame["open"].to_numpy(np.float64)
        at = index + 1
        at = at[at < n]
    nxt = int(at[-1]) + 1 if at.size else n
    return prices[at], prices[nxt : nxt + 1]


def _run(
    candles: Candles,
    stamps: npt.NDArray[np.int64],
    positions: FloatArray,
    policy: BacktestPolicy,
    *,
    name: str,
    trials: int = 1,
    trial_variance: float | None = None,
) -> BacktestResult:
    fill = candles.calendar.resolve_fill(policy.fill)
    fills, tail = _fill_prices(candles, stamps, fill)
    held = positions[: fills.size]
    # With the next fill price known, the last decision's position is held too.
    prices = np.concatenate([fills, tail])
    held = np.concatenate([held, [0.0]]) if tail.size else held
    result = simulate(
        prices,
        held,
        cost=(policy.fee_bps + policy.slippage_bps) / 10_000,
        periods_per_year=periods_per_year(candles.timeframe, candles.calendar),
        trials=trials,
        trial_variance=trial_variance,
        name=name,
        timestamps_ms=stamps,
    )
    result.metrics["periods_per_year"] = periods_per_year(candles.timeframe, candles.calendar)
    return BacktestResult(
        result.name,
        result.timestamps_ms,
        result.positions,
        result.net_returns,
        result.equity,
        result.metrics,
        fill,
    )


def backtest(
    candles: Candles,
    scores: Scores,
    policy: BacktestPolicy | None = None,
    *,
    trials: int = 1,
    trial_variance: float | None = None,
    name: str = "candidate",
) -> BacktestResult:
    """Backtest the actions of ``scores`` on ``candles`` under ``policy`` (fills per
    ``policy.fill`` and the candles' calendar, see the module docstring)."""
    policy = policy or BacktestPolicy()
    positions = _positions(scores.actions, policy.mode)
    return _run(
        candles,
        scores.timestamps_ms,
        positions,
        policy,
        name=name,
        trials=trials,
        trial_variance=trial_variance,
    )


def buy_and_hold(
    candles: Candles, timestamps_ms: npt.NDArray[np.int64], policy: BacktestPolicy | None = None
) -> BacktestResult:
    """Backtest holding +1 over the same bars (one entry cost, the same fills)."""
    policy = policy or BacktestPolicy()
    held = np.ones(timestamps_ms.size)
    return _run(candles, timestamps_ms, held, policy, name="buy_and_hold")


def periods_per_year(timeframe: Timeframe, calendar: str | Calendar | None = None) -> float:
    """Return the bars in a year of ``timeframe`` on ``calendar`` (default ``24/7``): the
    annualisation of every Sharpe the gates and live performance report.

    >>> periods_per_year(Timeframe.parse("1d"), "XNYS"), periods_per_year(Timeframe.parse("1h"))
    (252.0, 8760.0)
    """
    return Calendar.parse(calendar).periods_per_year(timeframe)


def backtest_gate(
    candidate: BacktestResult,
    *,
    champion: BacktestResult | None = None,
    benchmark: BacktestResult | None = None,
    policy: BacktestPolicy | None = None,
    min_bars: int = 100,
) -> GateOutcome:
    """Judge the candidate's backtest: drawdown, a defined Sharpe, a net return above staying
    flat, PSR(0) and DSR floors (absolute, with or without a champion), and the Sharpe against
    the champion's. A floor set to ``None`` in the policy is reported only."""
    policy = policy or BacktestPolicy()
    m = candidate.metrics
    bars = int(m.get("bars", 0))
    note = "" if bars >= min_bars else f"only {bars} bars (need {min_bars})"

    def value(name: str) -> float | None:
        return m.get(name) if not note else None

    checks: list[Check] = [
        check(
            "max_drawdown",
            value("max_drawdown"),
            "<=",
            policy.max_drawdown,
            "max drawdown",
            note=note,
        ),
        check(
            "sharpe_defined",
            value("sharpe"),
            ">",
            -math.inf,
            "annualised Sharpe (undefined when the strategy never moves)",
            note=note,
        ),
        _floor(
            "beats_flat",
            value("total_return"),
            ">",
            policy.min_net_return,
            _net_return_why(m, benchmark),
            note=note,
        ),
    ]
    if champion is not None:
        mine, theirs = value("sharpe"), champion.metrics.get("sharpe")
        if theirs is not None and not math.isfinite(theirs):
            theirs = 0.0  # a champion that never trades earns nothing: compare with 0
        delta = None if mine is None or theirs is None else mine - theirs
        shown = "n/a" if theirs is None else f"{theirs:.3g}"
        checks.append(
            check(
                "sharpe_vs_champion",
                delta,
                ">=",
                -policy.sharpe_tolerance,
                f"annualised Sharpe minus the champion's ({shown})",
                note=note,
            )
        )
    else:
        checks.append(info("champion", None, "no champion: absolute thresholds only"))
    trials = int(m.get("trials", 1))
    sr0 = m.get("sr0", float("nan"))
    checks += [
        _floor(
            "psr",
            value("psr"),
            ">=",
            policy.min_psr,
            "Probabilistic Sharpe Ratio PSR(0), the probability that the true Sharpe is "
            f"above 0 (Sharpe {_ann(m.get('sharpe'))} ann.)",
            note=note,
        ),
        _floor(
            "dsr",
            value("dsr"),
            ">=",
            policy.min_dsr,
            f"Deflated Sharpe Ratio over {trials} trials: PSR against SR0 = {_ann(sr0)} ann., "
            f"the best Sharpe expected of {trials} unskilled trials",
            note=note,
        ),
    ]
    data = {
        "candidate": m,
        "champion": champion.metrics if champion is not None else {},
        "buy_and_hold": benchmark.metrics if benchmark is not None else {},
    }
    per_year = m.get("periods_per_year")
    annualised = "" if per_year is None else f", {per_year:g} bars a year"
    summary = (
        f"{bars} bars, costs {policy.fee_bps + policy.slippage_bps:g} bps per unit traded, "
        f"{policy.mode}, fills at the {candidate.fill.replace('_', ' ')}{annualised}"
    )
    return GateOutcome.of("backtest", checks, summary=summary, data=data)


def _floor(
    name: str,
    value: float | None,
    comparison: Comparison,
    floor: float | None,
    what: str,
    *,
    note: str,
) -> Check:
    # A floor the policy sets to None is reported, not gated.
    if floor is None:
        return info(name, value, what)
    return check(name, value, comparison, floor, what, note=note)


def _ann(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2%}"


def _net_return_why(m: dict[str, float], benchmark: BacktestResult | None) -> str:
    held = (
        "" if benchmark is None else f", buy-and-hold {_pct(benchmark.metrics.get('total_return'))}"
    )
    return (
        f"net total return after costs (gross {_pct(m.get('gross_return'))}, "
        f"costs {_pct(m.get('cost_paid'))} over {m.get('units_traded', float('nan')):.0f} units "
        f"traded{held}); staying flat earns 0"
    )
