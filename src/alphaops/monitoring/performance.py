"""Live performance of a model version, measured the way its backtest gate measured it.

Two views, per version and role:

- **Decisions** (every journaled decision, shadow ones included): the paper strategy the
  backtest gate simulates — the action at a bar's close sets the position held to the next
  close (``long_flat`` holds +1 on BUY, ``long_short`` also -1 on SELL), each change of
  position pays the gate's costs — and the hit rate of non-HOLD decisions against the
  realised forward return over the label horizon.
- **Trades** (round trips from reported fills): trades, win rate, expectancy, profit factor,
  fees, drawdown and a per-trade Sharpe.

:func:`divergence` sets the paper strategy beside the backtest gate's figures for that
version: the Sharpe gap and a z-score of the live mean bar return against the backtest's.

>>> import numpy as np
>>> p = paper_returns(np.array([1, 1, 0, -1]), np.array([0.01, -0.02, 0.03, -0.01]),
...     cost=0.001, mode="long_short")
>>> p.round(4).tolist()
[0.009, -0.02, -0.001, 0.009]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from alphaops.journal import RoundTrip

__all__ = [
    "DecisionStats",
    "Divergence",
    "TradeStats",
    "decision_stats",
    "divergence",
    "paper_returns",
    "trade_stats",
]

FloatArray = npt.NDArray[np.float64]
Mode = Literal["long_flat", "long_short"]
_NAN = float("nan")


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: undefined figures become null.
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()
    }


@dataclass(frozen=True)
class TradeStats:
    """Realised round trips of one version and role (``net_pnl`` in quote currency)."""

    trades: int
    win_rate: float
    expectancy: float
    """Mean net PnL per trade."""
    mean_return: float
    """Mean net return per trade (net PnL over entry notional)."""
    profit_factor: float
    """Gross wins over gross losses (inf without a loss, nan without a trade)."""
    net_pnl: float
    fees: float
    funding: float
    max_drawdown: float
    """Of the equity compounded from the trades' net returns (0.2 = 20% below its peak)."""
    sharpe: float
    """Per trade: mean over standard deviation of net returns (not annualised)."""

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready figures (undefined ones as null)."""
        return _clean(asdict(self))


def trade_stats(trips: Sequence[RoundTrip]) -> TradeStats:
    """Return the statistics of ``trips`` (ordered by close time)."""
    n = len(trips)
    if n == 0:
        return TradeStats(0, _NAN, _NAN, _NAN, _NAN, 0.0, 0.0, 0.0, _NAN, _NAN)
    pnl = np.array([t.net_pnl for t in trips])
    returns = np.array([t.net_return for t in trips])
    wins, losses = pnl[pnl > 0].sum(), -pnl[pnl < 0].sum()
    factor = float(wins / losses) if losses > 0 else (math.inf if wins > 0 else _NAN)
    equity = np.asarray(np.cumprod(1.0 + returns), dtype=np.float64)
    std = float(returns.std(ddof=1)) if n > 1 else _NAN
    return TradeStats(
        trades=n,
        win_rate=float((pnl > 0).mean()),
        expectancy=float(pnl.mean()),
        mean_return=float(returns.mean()),
        profit_factor=factor,
        net_pnl=float(pnl.sum()),
        fees=float(sum(t.fees for t in trips)),
        funding=float(sum(t.funding for t in trips)),
        max_drawdown=_max_drawdown(equity),
        sharpe=float(returns.mean()) / std if n > 1 and std > 0 else _NAN,
    )


def _max_drawdown(equity: FloatArray) -> float:
    if equity.size == 0:
        return _NAN
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float((1.0 - equity / peak).max())


def paper_returns(
    actions: npt.ArrayLike, next_returns: npt.ArrayLike, *, cost: float, mode: Mode
) -> FloatArray:
    """Return the net return of holding each decision's position to the next close.

    ``next_returns[i]`` is the market's return from decision ``i``'s bar close to the next;
    every change of position (from the previous decision's) pays ``cost`` per unit, as in
    the backtest gate.
    """
    acts = np.asarray(actions, dtype=np.float64)
    held = acts if mode == "long_short" else np.maximum(acts, 0.0)
    change = np.abs(np.diff(np.concatenate([[0.0], held])))
    return np.asarray(held * np.asarray(next_returns, dtype=np.float64) - cost * change)


@dataclass(frozen=True)
class DecisionStats:
    """What one version's decisions would have earned on the bars they decided."""

    decisions: int
    scored: int
    """Non-HOLD decisions whose forward return is known."""
    hit_rate: float
    """Share of scored decisions whose action had the sign of the forward return."""
    bars: int
    """Decisions with a known next-bar return (the paper strategy's bars)."""
    total_return: float
    mean_return: float
    """Mean net paper return per bar."""
    std_return: float
    sharpe: float
    """Annualised like the backtest gate's (bars per year of the timeframe)."""
    max_drawdown: float
    actions: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready figures (undefined ones as null)."""
        return _clean(asdict(self))


def decision_stats(
    actions: npt.ArrayLike,
    next_returns: npt.ArrayLike,
    forward_returns: npt.ArrayLike,
    *,
    cost: float,
    mode: Mode,
    periods_per_year: float,
) -> tuple[DecisionStats, FloatArray]:
    """Return the decision statistics and the paper equity curve.

    ``actions`` are the decisions in bar order; ``next_returns`` their next-bar market
    returns and ``forward_returns`` their returns over the label horizon (NaN where the
    future is not known yet: such decisions are left out).
    """
    acts = np.asarray(actions, dtype=np.float64)
    nxt = np.asarray(next_returns, dtype=np.float64)
    fwd = np.asarray(forward_returns, dtype=np.float64)
    scored = (acts != 0) & np.isfinite(fwd)
    hits = np.sign(acts[scored]) == np.sign(fwd[scored])
    known = np.isfinite(nxt)
    net = paper_returns(acts[known], nxt[known], cost=cost, mode=mode)
    equity = np.asarray(np.cumprod(1.0 + net), dtype=np.float64)
    n = int(net.size)
    std = float(net.std(ddof=1)) if n > 1 else _NAN
    mean = float(net.mean()) if n else _NAN
    names = {-1: "SELL", 0: "HOLD", 1: "BUY"}
    counts = {names[int(a)]: int((acts == a).sum()) for a in (-1, 0, 1)}
    return (
        DecisionStats(
            decisions=int(acts.size),
            scored=int(scored.sum()),
            hit_rate=float(hits.mean()) if hits.size else _NAN,
            bars=n,
            total_return=float(equity[-1] - 1.0) if n else _NAN,
            mean_return=mean,
            std_return=std,
            sharpe=mean / std * math.sqrt(periods_per_year) if n > 1 and std > 0 else _NAN,
            max_drawdown=_max_drawdown(equity),
            actions=counts,
        ),
        equity,
    )


@dataclass(frozen=True)
class Divergence:
    """Live paper figures beside the backtest gate's, for one version."""

    backtest_sharpe: float
    live_sharpe: float
    sharpe_gap: float
    """Live minus backtest annualised Sharpe."""
    backtest_mean_return: float
    """The backtest's geometric mean net return per bar."""
    live_mean_return: float
    z: float
    """(live mean - backtest mean) / standard error of the live mean: below -2 the live
    strategy earns clearly less than the backtest promised."""
    backtest_bars: int
    live_bars: int

    @property
    def verdict(self) -> str:
        """Return ``consistent``, ``worse``, ``better`` or ``unknown`` (|z| of 2 decides)."""
        if not math.isfinite(self.z):
            return "unknown"
        return "worse" if self.z < -2 else "better" if self.z > 2 else "consistent"

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready figures with the verdict."""
        return _clean(asdict(self)) | {"verdict": self.verdict}


def _figure(value: float | None) -> float:
    return _NAN if value is None else float(value)


def divergence(live: DecisionStats, backtest: Mapping[str, float | None]) -> Divergence:
    """Compare a version's live paper strategy with its backtest gate's metrics."""
    # A figure the gate could not define (a strategy that never moves) is recorded as null.
    bt_bars = int(backtest.get("bars") or 0)
    total = _figure(backtest.get("total_return"))
    bt_mean = (1.0 + total) ** (1.0 / bt_bars) - 1.0 if bt_bars and total > -1 else _NAN
    bt_sharpe = _figure(backtest.get("sharpe"))
    error = live.std_return / math.sqrt(live.bars) if live.bars > 1 else _NAN
    z = (live.mean_return - bt_mean) / error if error and math.isfinite(error) else _NAN
    return Divergence(
        backtest_sharpe=bt_sharpe,
        live_sharpe=live.sharpe,
        sharpe_gap=live.sharpe - bt_sharpe,
        backtest_mean_return=bt_mean,
        live_mean_return=live.mean_return,
        z=z,
        backtest_bars=bt_bars,
        live_bars=live.bars,
    )
