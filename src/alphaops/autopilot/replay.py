"""Lifecycle replay: the whole control plane over stored candles, on a simulated clock.

Bar by bar from ``start`` to ``end``, for every model of the policy:

* the :class:`~alphaops.autopilot.Autopilot` checks every ``check_every`` of simulated time —
  scheduled and emergency retrains train **only on candles before the simulated now**, pass
  the gates or not, and start rollouts (the first champion is promoted);
* a :class:`~alphaops.runtime.LivePredictor` serves each closed bar, routing canary traffic
  and shadowing as a bot would, and journals every decision;
* a simulated trader fills each decision at the **next bar's open** (long while the decision
  is BUY, flat otherwise), paying the fee and slippage, and journals the fills, so the
  journal's round trips feed the emergency triggers;
* a rollout's interval ends once the challenger answered ``min_predictions`` bars; the
  controller then advances it, rolls it back or pauses it (every move audited), exactly as a
  bot's :class:`~alphaops.services.monitor.RolloutMonitor` does on the clock;
* each bar's realised outcome is told to the predictor ``horizon`` bars later, when it is known.

Fault switches inject a training crash at chosen moments and a data gap. The result holds
the equity and drawdown of what was served, against the first champion never retrained and
buy-and-hold, and counts of retrains, promotions, rollbacks and blocked candidates.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaops.autopilot._log import Run
from alphaops.autopilot.engine import Autopilot
from alphaops.autopilot.policy import AutopilotPolicy, ModelPolicy
from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import AlphaOpsError, CancelledError, TrainingError, UsageError
from alphaops.data import Candles
from alphaops.registry.refs import CHAMPION, ModelKey

__all__ = ["Faults", "LifecycleResult", "ModelReplay", "replay_lifecycle"]

WARMUP_BARS = 1024


@dataclass(frozen=True)
class Faults:
    """Failures to inject into a replay."""

    training_crash_at: tuple[datetime, ...] = ()
    """The first retrain at or after each of these moments crashes in training."""
    data_gap: tuple[datetime, datetime] | None = None
    """Candles in ``[start, end)`` are missing, for training and for the live feed."""


@dataclass
class _Source:
    # The store as the replay sees it: the injected gap removed.
    store: Any
    gap: tuple[int, int] | None

    def load(self, symbol: str, timeframe: str) -> Candles:
        candles: Candles = self.store.load(symbol, timeframe)
        if self.gap is None:
            return candles
        stamps = candles.timestamps_ms
        keep = (stamps < self.gap[0]) | (stamps >= self.gap[1])
        return Candles.from_frame(
            candles.frame.loc[keep].reset_index(drop=True),
            symbol=candles.symbol,
            timeframe=candles.timeframe,
        )


@dataclass
class ModelReplay:
    """What one model did over the replay."""

    key: ModelKey
    timestamps_ms: npt.NDArray[np.int64]
    equity: npt.NDArray[np.float64]
    """Value of 1.0 invested at each bar's open: what the served decisions earned after costs
    (the backtest gate's kernel, next-open fills)."""
    first_champion: npt.NDArray[np.float64] | None
    """The same for the first champion never retrained (``None``: there was none)."""
    buy_and_hold: npt.NDArray[np.float64]
    served: dict[str, int]
    """Bars served per version (``SYMBOL/TYPE/N``), canary included."""
    trades: int
    gap_bars: int = 0
    """Bars the predictor could not serve (a data gap, then warming up again)."""

    @staticmethod
    def drawdown(curve: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the drawdown below the running peak, bar by bar (0 .. 1)."""
        return np.asarray(1.0 - curve / np.maximum.accumulate(curve), dtype=np.float64)


@dataclass
class LifecycleResult:
    """Everything a replay did."""

    start: datetime
    end: datetime
    models: list[ModelReplay]
    runs: list[Run]
    promotions: int
    rollbacks: int
    seconds: float
    bars: int
    counts: dict[str, int] = field(default_factory=dict)
    """Runs by final state (promoted, rollout_started, blocked, failed, safe_action …)."""
    drift_alarms: int = 0
    """Drift alarms the weekly drift checks raised."""

    @property
    def retrains(self) -> int:
        """Return how many retrains the autopilot started."""
        return len(self.runs)


def _ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def equity_of(
    actions: npt.NDArray[np.int64], opens: npt.NDArray[np.float64], *, cost: float
) -> tuple[npt.NDArray[np.float64], int]:
    """Return the equity of acting on ``actions`` at the next bar's open, bar by bar (marked
    at each bar's open), and the number of trades, with the backtest gate's own kernel
    (:func:`~alphaops.gates.backtest.simulate`): long while the action is BUY (+1), flat
    otherwise, paying ``cost`` (fee + slippage) per unit traded. The position decided on bar
    ``i`` is held from bar ``i + 1``'s open to bar ``i + 2``'s.

    >>> eq, trades = equity_of(np.array([1, 1, 0, 0]), np.array([10., 10, 11, 12]), cost=0.0)
    >>> eq.round(3).tolist(), trades
    ([1.0, 1.0, 1.1, 1.2], 1)
    """
    from alphaops.gates.backtest import simulate

    held = np.concatenate([[0.0], (np.asarray(actions)[:-1] == 1).astype(np.float64)])
    result = simulate(opens, held, cost=cost, periods_per_year=1.0)
    equity = np.concatenate([[1.0], result.equity])
    return np.asarray(equity, dtype=np.float64), int(result.metrics["trades"])


class _Model:
    # One model's live side: predictor, journal trader, rollout judge, outcomes, served actions.
    def __init__(self, replay: _Replay, model: ModelPolicy, candles: Candles) -> None:
        self.replay = replay
        self.policy = model
        self.key = model.key
        self.candles = candles
        self.live: Any = None
        self.step_ms = candles.timeframe.seconds * 1000
        self.index = {int(t): i for i, t in enumerate(candles.timestamps_ms.tolist())}
        closes = candles.frame["close"].to_numpy(np.float64)
        horizon = model.job.label.horizon
        self.forward = np.full(len(closes), np.nan)
        self.forward[:-horizon] = closes[horizon:] / closes[:-horizon] - 1.0
        self.horizon = horizon
        self.actions: dict[int, int] = {}
        self.served: Counter[str] = Counter()
        self.pending: deque[int] = deque()
        self.qty = 0.0
        self.last_decision: Any = None
        self.trades = 0
        self.gap_bars = 0
        self.needs_warmup = True
        registry = replay.pilot.registry
        known = self.key in registry.list_models()
        self.initial_champion = registry.aliases(self.key).get(CHAMPION) if known else None

    def ensure_live(self, before_ms: int) -> None:
        from alphaops.runtime import LivePredictor

        registry = self.replay.pilot.registry
        if self.live is None:
            if registry.aliases(self.key).get(CHAMPION) is None:
                return
            self.live = LivePredictor(registry, self.key, start=False, journal=self.replay.journal)
        else:
            self.live.poll()
        if self.needs_warmup:
            self._warm_up(before_ms)

    def _warm_up(self, before_ms: int) -> None:
        source = self.replay.source.load(self.key.symbol, self.policy.job.timeframe)
        stamps = source.timestamps_ms
        stop = int(np.searchsorted(stamps, before_ms))
        history = source.frame.iloc[max(0, stop - WARMUP_BARS) : stop]
        if len(history) and stop and stamps[stop - 1] != before_ms - self.step_ms:
            return  # the bar before is missing (a gap): wait for fresh history
        try:
            self.live.warm_up(
                Candles.from_frame(history, symbol=source.symbol, timeframe=source.timeframe)
            )
            self.needs_warmup = False
        except AlphaOpsError:
            self.needs_warmup = True

    def on_bar(self, bar: Any) -> None:
        from alphaops.runtime import Bar

        assert isinstance(bar, Bar)
        i = self.index[bar.timestamp_ms]
        self._fill(bar)  # the decision of the previous bar fills at this bar's open
        if self.live is None or self.needs_warmup:
            self.gap_bars += self.live is not None
            self.actions[bar.timestamp_ms] = 0
            if self.live is not None:
                self._warm_up(bar.timestamp_ms + self.step_ms)
            return
        try:
            prediction = self.live.on_bar(bar, routing_key=bar.timestamp_ms)
        except AlphaOpsError:  # a gap in the feed: warm up again on the bars after it
            self.needs_warmup = True
            self.gap_bars += 1
            self.actions[bar.timestamp_ms] = 0
            return
        self.actions[bar.timestamp_ms] = prediction.action
        self.served[prediction.ref] += 1
        self.last_decision = prediction
        self.pending.append(i)
        while self.pending and self.pending[0] + self.horizon <= i:
            done = self.pending.popleft()
            if np.isfinite(self.forward[done]):
                self.live.record_outcome(int(self.candles.timestamps_ms[done]), self.forward[done])

    def _fill(self, bar: Any) -> None:
        decision = self.last_decision
        if decision is None or decision.decision_id is None:
            return
        want = decision.action == 1
        if want == (self.qty > 0):
            return
        price = bar.open * (1 + self.replay.slippage if want else 1 - self.replay.slippage)
        qty = self.replay.notional / price if want else self.qty
        self.replay.journal.record_fill(
            client_order_id=decision.client_order_id(),
            side="buy" if want else "sell",
            qty=qty,
            price=price,
            fee=qty * price * self.replay.fee,
            at=_utc(bar.timestamp_ms),
            book="lifecycle-replay",
            exchange_trade_id=f"replay-{decision.decision_id}",
        )
        self.qty = qty if want else 0.0
        self.trades += not want
        self.last_decision = None

    def judge_rollout(self) -> None:
        from alphaops.rollout import AnalysisPolicy
        from alphaops.services.rollout import RolloutController

        if self.live is None:
            return
        registry = self.replay.pilot.registry
        record = registry.active_rollout(self.key)
        if record is None or record.phase not in ("shadow", "canary"):
            return
        if self.live.peek_interval_stats().predictions < self.replay.min_predictions:
            return
        # Latency is not simulated: a replay judges what the models decided, not how fast.
        policy = AnalysisPolicy(min_predictions=self.replay.min_predictions, max_latency_p99_s=60.0)
        outcome = RolloutController(registry, actor="replay").analyse(
            self.key, self.live.take_interval_stats(), policy, expect=record
        )
        self.replay.moves[outcome.rollout.phase] += outcome.rollout.phase in (
            "live",
            "rolled_back",
        )
        self.live.poll()


class _Replay:
    def __init__(
        self,
        pilot: Autopilot,
        journal: Any,
        source: _Source,
        *,
        fee: float,
        slippage: float,
        min_predictions: int,
    ) -> None:
        self.pilot = pilot
        self.journal = journal
        self.source = source
        self.fee = fee
        self.slippage = slippage
        self.notional = 1_000.0
        self.min_predictions = min_predictions
        self.moves: Counter[str] = Counter()
        self.drift_alarms = 0


def replay_lifecycle(
    config: AlphaOpsConfig,
    policy: AutopilotPolicy,
    *,
    start: datetime,
    end: datetime,
    faults: Faults | None = None,
    fee: float = 0.001,
    slippage: float = 0.0005,
    min_predictions: int = 20,
    drift_every: timedelta | None = timedelta(days=7),
    drift_window: int = 500,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> LifecycleResult:
    """Replay ``[start, end)`` with the autopilot on; see the module docstring.

    Run it on a fresh home holding the candles: it trains, publishes and journals there.
    Every ``drift_every`` of simulated time (``None``: never) each served model's last
    ``drift_window`` decisions are checked for drift against its training profile, as
    ``alphaops monitor --record`` does; an alarm pauses its rollout and fires the emergency
    trigger.
    ``progress(done, total)`` is called every few hundred bars; ``cancelled()`` is checked
    as often, and a replay that is asked to stop raises
    :class:`~alphaops.core.errors.CancelledError`.
    """
    from alphaops.journal import Journal
    from alphaops.runtime import bars_of
    from alphaops.services._common import open_configured_registry
    from alphaops.services.data import open_store

    faults = faults or Faults()
    # A replay reads the store only: a policy that downloads fresh candles live does not here.
    policy = policy.model_copy(
        update={"models": tuple(m.model_copy(update={"refresh": "store"}) for m in policy.models)}
    )
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if not start < end:
        raise UsageError(f"replay window {start:%F}..{end:%F} is empty", fix="pass --from < --to")
    gap = None if faults.data_gap is None else (_ms(faults.data_gap[0]), _ms(faults.data_gap[1]))
    source = _Source(open_store(config), gap)
    crashes = sorted(faults.training_crash_at)
    counter = [0]

    def fault(job: Any) -> None:
        if crashes and crashes[0] <= clock[0]:
            crashes.pop(0)
            raise TrainingError(f"injected training crash ({job.registry_symbol}/{job.model})")

    def rollout_ids(key: ModelKey) -> str:
        counter[0] += 1
        return f"replay-{counter[0]}"

    clock = [start]
    began = time.perf_counter()
    registry = open_configured_registry(config)
    models: list[_Model] = []
    try:
        known = set(registry.list_models())
        taken = sorted(str(m.key) for m in policy.models if m.key in known)
        if taken:
            # A replay writes versions, rollouts, a journal and autopilot runs; on top of an
            # earlier replay's (or a live registry's) they would mix and change its course.
            raise UsageError(
                f"this home's registry already holds {', '.join(taken)}: a replay needs a "
                "registry of its own",
                fix="pass a new --home (e.g. --home replay-2); the candles are imported there",
            )
        pilot = Autopilot(
            config,
            policy,
            registry=registry,
            candles=source,
            executor="sequential",
            actor="autopilot",
            fault=fault,
            rollout_ids=rollout_ids,
        )
        journal = Journal(registry, actor="replay")
        replay = _Replay(
            pilot, journal, source, fee=fee, slippage=slippage, min_predictions=min_predictions
        )
        for model in policy.models:
            candles = source.load(model.key.symbol, model.job.timeframe)
            models.append(_Model(replay, model, candles))
        timeline = sorted(
            {
                int(t)
                for m in models
                for t in m.candles.timestamps_ms
                if _ms(start) <= int(t) < _ms(end)
            }
        )
        if not timeline:
            raise UsageError(
                f"no stored candle of the policy's models in {start:%F}..{end:%F}",
                fix="import the candles first, or choose another window",
            )
        bars = {m.key: {b.timestamp_ms: b for b in bars_of(m.candles)} for m in models}
        step = timedelta(seconds=policy.check_every)
        next_check = start
        next_drift = start + drift_every if drift_every is not None else None
        with journal:
            for done, t in enumerate(timeline):
                if done % 200 == 0:
                    if cancelled():
                        raise CancelledError("the replay was stopped", fix="run it again")
                    if progress is not None:
                        progress(done, len(timeline))
                now = _utc(t)  # the bar opening now: every bar before it is closed
                if next_drift is not None and drift_every is not None and now >= next_drift:
                    journal.flush()
                    for m in models:
                        replay.drift_alarms += _check_drift(m, journal, source, drift_window)
                    while next_drift <= now:
                        next_drift += drift_every
                if now >= next_check:
                    clock[0] = now
                    pilot.check(now)
                    while next_check <= now:
                        next_check += step
                for m in models:
                    bar = bars[m.key].get(t)
                    if bar is None:
                        continue
                    m.ensure_live(t)
                    m.on_bar(bar)
                    m.judge_rollout()
            journal.flush()
            if progress is not None:
                progress(len(timeline), len(timeline))
        result = [_result(m, registry, start, end, fee + slippage) for m in models]
        runs = [r for r in pilot.log.runs() if start <= r.started < end]
    finally:
        for m in models:  # stopped or not: the predictors' helper processes end with it
            if m.live is not None:
                m.live.close()
        registry.close()
    counts = Counter(r.state for r in runs)
    promotions = counts.get("promoted", 0) + replay.moves["live"]
    return LifecycleResult(
        start,
        end,
        result,
        runs,
        promotions,
        replay.moves["rolled_back"],
        time.perf_counter() - began,
        len(timeline),
        dict(counts),
        replay.drift_alarms,
    )


def _check_drift(m: _Model, journal: Any, source: _Source, window: int) -> int:
    # What `alphaops monitor --record` does for the served champion; return 1 on a new alarm.
    from alphaops.services.journal import drift_of

    registry = m.replay.pilot.registry
    # The champion is watched while it serves alone: during a rollout it is being replaced,
    # and an alarm on it would pause the very candidate meant to answer it.
    if m.live is None or registry.active_rollout(m.key) is not None:
        return 0
    before = len(registry.alarms(m.key))
    try:
        drift_of(registry, journal, source.store, str(m.key), window=window, record=True)
    except AlphaOpsError:  # too few decisions of the new champion yet
        return 0
    return len(registry.alarms(m.key)) - before


def _result(m: _Model, registry: Any, start: datetime, end: datetime, cost: float) -> ModelReplay:
    from alphaops.scoring import BundlePredictor

    frame = m.candles.frame
    stamps = m.candles.timestamps_ms
    inside = (stamps >= _ms(start)) & (stamps < _ms(end))
    opens = frame["open"].to_numpy(np.float64)[inside]
    window = stamps[inside]
    served = np.array([m.actions.get(int(t), 0) for t in window], dtype=np.int64)
    equity, trips = equity_of(served, opens, cost=cost)
    hold, _ = equity_of(np.ones(len(window), dtype=np.int64), opens, cost=cost)
    first = _first_champion(m, registry)
    baseline = None
    if first is not None:
        scores = BundlePredictor.from_registry(registry, first).score(m.candles)
        actions = dict(zip(scores.timestamps_ms.tolist(), scores.actions.tolist(), strict=True))
        chosen = np.array([actions.get(int(t), 0) for t in window], dtype=np.int64)
        baseline, _ = equity_of(chosen, opens, cost=cost)
    return ModelReplay(m.key, window, equity, baseline, hold, dict(m.served), trips, m.gap_bars)


def _first_champion(m: _Model, registry: Any) -> str | None:
    # The champion serving when the replay began, else the first one promoted during it.
    if m.initial_champion is not None:
        return f"{m.key}/{m.initial_champion}"
    if m.key not in registry.list_models():
        return None
    promoted = [
        r for r in registry.history(m.key) if r.alias == CHAMPION and r.to_version is not None
    ]
    return f"{m.key}/{promoted[0].to_version}" if promoted else None
