"""Replay recorded candles through a live predictor while a challenger is rolled out.

This is what a bot does, bar by bar: ask the :class:`~alphaops.runtime.LivePredictor` for a
decision on the latest bar (routing key: the bar's open time), tell it the bar's realised
outcome (:meth:`~alphaops.runtime.LivePredictor.record_outcome`; a replay knows it at once),
and, at the end of every analysis interval, let the rollout controller judge what the
predictor counted of the challenger (error rate, latency p99, agreement with the champion, hit
rate) and move the rollout on: shadow → canary percentages → live, or pause, or roll back.
A bot does the same on the clock with :class:`~alphaops.services.monitor.RolloutMonitor`.

Every decision is journaled (:class:`~alphaops.journal.Journal`), and a simulated trader fills
the acted decisions the way the backtest gate trades (``long_flat``: long while the decision
is BUY, flat otherwise) at the bar's close, paying the gate's fee: the journal then holds the
decisions, fills and round trips of each version, as a live bot's would.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from alphaops.core.config import AlphaOpsConfig
from alphaops.data import Candles
from alphaops.features import LabelRule, make_labels
from alphaops.journal import Journal
from alphaops.registry import RolloutRecord
from alphaops.rollout import AnalysisPolicy, IntervalStats
from alphaops.runtime import Bar, LivePredictor, Prediction, bars_of
from alphaops.services._common import open_configured_registry
from alphaops.services.rollout import RolloutController

__all__ = ["ReplayInterval", "ReplayResult", "replay_rollout"]

# Bars of history that warm the predictor up before the first replayed bar: more than any
# default warm-up.
WARMUP_BARS = 1024
NOTIONAL = 1_000.0
"""Quote currency the simulated trader puts into each position."""
FEE = 0.0010
"""The simulated trader's fee per unit of notional traded (the gate's default 10 bps)."""


class _Trader:
    # Fills the acted decisions like the backtest gate's long_flat rule, at the bar's close.
    def __init__(self, journal: Journal, step_ms: int, book: str) -> None:
        self.journal = journal
        self.book = book
        self.step_ms = step_ms
        self.qty = 0.0
        self.fills = 0
        self.trips = 0

    def on_decision(self, prediction: Prediction, bar: Bar) -> None:
        want_long = prediction.action == 1
        if want_long == (self.qty > 0) or prediction.decision_id is None:
            return
        qty = NOTIONAL / bar.close if want_long else self.qty
        result = self.journal.record_fill(
            client_order_id=prediction.client_order_id(),
            side="buy" if want_long else "sell",
            qty=qty,
            price=bar.close,
            fee=qty * bar.close * FEE,
            at=bar.timestamp_ms + self.step_ms,
            book=self.book,
            exchange_trade_id=f"replay-{prediction.decision_id}",
        )
        self.qty = qty if want_long else 0.0
        self.fills += 1
        self.trips += result.round_trip is not None


@dataclass(frozen=True)
class ReplayInterval:
    """One analysis interval: the rollout phase, who served the bars, and the verdict."""

    phase: str
    percentage: int
    first_bar: str
    bars: int
    served: dict[str, int]
    challenger_predictions: int
    agreement: float
    hit_rate: float | None
    verdict: str = "—"
    detail: str = ""
    phase_after: str = ""


@dataclass(frozen=True)
class ReplayResult:
    """The whole replay: intervals in order and the final phase of the rollout."""

    challenger: str
    intervals: list[ReplayInterval] = field(default_factory=list)
    final_phase: str = ""
    decisions: int = 0
    """Decisions journaled (acted and shadow)."""
    fills: int = 0
    round_trips: int = 0

    @property
    def served(self) -> dict[str, int]:
        """Return how many bars each version served (``SYMBOL/TYPE/N``), over the replay."""
        total: Counter[str] = Counter()
        for interval in self.intervals:
            total.update(interval.served)
        return dict(total)


def replay_rollout(
    config: AlphaOpsConfig,
    challenger: str,
    candles: Candles,
    *,
    start_ms: int,
    label: LabelRule,
    steps: str = "shadow,10,50,100",
    min_predictions: int = 20,
    bars_after_live: int = 24,
) -> ReplayResult:
    """Start a rollout of ``challenger`` and replay ``candles`` from ``start_ms`` through a
    live predictor until the rollout ends (live or rolled back) or the bars run out.

    Each interval is long enough for the challenger to serve about ``min_predictions`` bars
    at the step's percentage (in shadow it sees every bar). The hit rate counts a non-flat
    action as a hit when the realised forward return over the label horizon has its sign.
    """
    policy = AnalysisPolicy(min_predictions=min_predictions)
    bar = int(np.searchsorted(candles.timestamps_ms, start_ms))
    outcome = _realised_returns(candles, label)
    intervals: list[ReplayInterval] = []
    with open_configured_registry(config, create=False) as registry:
        controller = RolloutController(registry, actor="quickstart")
        record = controller.start(
            challenger,
            steps=steps,
            interval_s=float(candles.timeframe.seconds),
            max_failures=2,
            reason="quickstart: replay the holdout through a live predictor",
        )
        key = record.key
        journal = Journal(registry)
        # Each replay is its own paper account: replaying the same bars again (a second
        # quickstart) must not append fills older than the last one of an earlier replay.
        trader = _Trader(journal, candles.timeframe.seconds * 1000, f"replay-{record.id}")
        with journal, LivePredictor(registry, key, start=False, journal=journal) as live:
            # The history before the first replayed bar warms the features up, as a bot does
            # at start; then bars arrive one at a time through the streaming entry.
            history = candles.frame.iloc[max(0, bar - WARMUP_BARS) : bar]
            live.warm_up(
                Candles.from_frame(history, symbol=candles.symbol, timeframe=candles.timeframe)
            )
            bars = bars_of(candles)
            # An interval lasts until the challenger has answered min_predictions bars (in
            # shadow it answers every bar; at 10% about one bar in ten), so every analysis
            # has the evidence it needs; a failed interval is repeated at the same step.
            while record.active and record.phase != "paused" and bar < len(candles):
                stats, interval, bar = _interval(
                    live, trader, candles, bars, bar, min_predictions, outcome, record
                )
                assert interval is not None  # bar < len(candles)
                analysis = controller.analyse(key, stats, policy)
                record = analysis.rollout
                live.poll()  # a bot follows the move within one polling interval
                intervals.append(
                    replace(
                        interval,
                        verdict=analysis.verdict.value,
                        detail=analysis.detail,
                        phase_after=record.phase,
                    )
                )
            if record.phase == "live":  # a day of bars served by the new champion
                _, interval, bar = _interval(
                    live, trader, candles, bars, bar, 0, outcome, record, count=bars_after_live
                )
                if interval is not None:
                    intervals.append(replace(interval, detail="served after the promotion"))
            elif record.active:  # the bars ran out or an analysis paused it: leave it clean
                record = controller.abort(key, reason="quickstart: the replay ended first")
            journal.flush()
            decisions = journal.count_decisions(key)
    return ReplayResult(challenger, intervals, record.phase, decisions, trader.fills, trader.trips)


def _realised_returns(candles: Candles, label: LabelRule) -> dict[int, float]:
    frame = make_labels(candles, label).frame
    stamps = frame["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return dict(zip(stamps.tolist(), frame["forward_return"].tolist(), strict=True))


def _interval(
    live: LivePredictor,
    trader: _Trader,
    candles: Candles,
    bars: list[Bar],
    start: int,
    answers: int,
    outcome: dict[int, float],
    record: RolloutRecord,
    *,
    count: int | None = None,
) -> tuple[IntervalStats, ReplayInterval | None, int]:
    # Replay from bar ``start`` until the challenger has answered ``answers`` bars (or, with
    # ``count``, for exactly that many bars), or the candles run out. The live predictor
    # counts what the challenger did (served or in shadow); its stats are this interval's.
    end = len(bars) if count is None else min(start + count, len(bars))
    served: Counter[str] = Counter()
    stop = start
    while stop < end and (count is not None or live.peek_interval_stats().predictions < answers):
        i = stop
        stop += 1
        ts = bars[i].timestamp_ms
        prediction = live.on_bar(bars[i], routing_key=ts)
        served[prediction.ref] += 1
        trader.on_decision(prediction, bars[i])
        if ts in outcome:  # known at once in a replay; a bot records it when it is realised
            live.record_outcome(ts, outcome[ts])
    stats = live.take_interval_stats()
    if stop <= start:
        return stats, None, start
    interval = ReplayInterval(
        phase=record.phase,
        percentage=record.percentage,
        first_bar=candles.frame["timestamp"].iloc[start].isoformat(),
        bars=stop - start,
        served=dict(served),
        challenger_predictions=stats.predictions,
        agreement=stats.agreement,
        hit_rate=stats.hit_rate,
    )
    return stats, interval, stop
