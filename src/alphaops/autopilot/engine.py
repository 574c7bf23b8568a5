"""The autopilot: retrain on schedule and in emergencies, always through gates and a rollout.

:meth:`Autopilot.check` is one pass at a moment ``now``: close runs a crash cut short, find
the models that are due (their schedule passed, or an emergency trigger fired ``consecutive``
times), drop those in cooldown, with a rollout in progress, or over the budget, and retrain
the rest (at most ``max_concurrent`` at once). A retrain:

1. loads the candles **before** ``now`` (nothing later is ever seen), keeps the last
   ``gate_bars`` out of training and trains on the bars before them;
2. publishes the candidate and runs every gate on those held-out bars, against the champion;
3. if it passed: starts a rollout (shadow → canary, from the policy) that the bot's
   :class:`~alphaops.services.monitor.RolloutMonitor` finishes or rolls back; with no champion
   yet, the first passing version is promoted;
4. if it did not pass, the champion stays; after an emergency, the policy's safe action runs:
   ``keep`` (an alarm says so), ``fallback`` (retrain the simpler model type the bot falls back
   to) or ``hold`` (an ``autopilot_hold`` alarm: bots serve HOLD until it is acknowledged).

Every step is appended to the autopilot log (:class:`~alphaops.autopilot.AutopilotLog`); the
schedule, cooldown and budget are read back from it, so a restarted autopilot resumes.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from alphaops.autopilot._log import AutopilotLog, Run, RunKind
from alphaops.autopilot.policy import AutopilotPolicy, ModelPolicy
from alphaops.autopilot.triggers import Hysteresis, breaches, read_live_record
from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import AlphaOpsError, InsufficientDataError
from alphaops.data import Candles
from alphaops.data.download import OHLCVExchange
from alphaops.journal import Journal
from alphaops.registry import Registry
from alphaops.registry.refs import CHAMPION, ModelKey
from alphaops.training import CancelToken, TrainingJob

__all__ = ["Autopilot", "CandleSource", "Firing", "ModelStatus"]

_DAY = timedelta(days=1)


class CandleSource(Protocol):
    """Where retrains read candles from (the home's store by default)."""

    def load(self, symbol: str, timeframe: str) -> Candles:
        """Return every stored candle of ``symbol`` at ``timeframe``."""
        ...


@dataclass(frozen=True)
class Firing:
    """A retrain the autopilot decided to start."""

    model: ModelPolicy
    kind: RunKind
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelStatus:
    """Where one model of the policy stands, for ``autopilot status``."""

    key: ModelKey
    champion: int | None
    last_run: Run | None
    next_scheduled: datetime | None
    cooldown_until: datetime | None
    alarm: str | None
    """An open autopilot alarm (no candidate passed an emergency, or holding)."""

    @property
    def healthy(self) -> bool:
        """Return False when the autopilot needs a person (say so loudly)."""
        return self.alarm is None and not (
            self.last_run is not None
            and self.last_run.kind == "emergency"
            and self.last_run.state in ("blocked", "failed", "safe_action")
        )


_HOST = socket.gethostname()
STALE_AFTER = timedelta(hours=6)
"""An open run of an autopilot on another host is taken for dead after this long idle."""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


class Autopilot:
    """Retrain the models of ``policy`` in the home of ``config``; see the module docstring.

    ``candles`` is where data comes from (default: the home's store); ``executor`` runs the
    training (``"process"``: a child process, so a bot that embeds the autopilot keeps its hot
    path; ``"thread"``/``"sequential"`` in tests; ``"ray"`` with ``ray_address``).
    ``fault`` injects failures for replays and drills: it is called with each job before
    training and may raise. ``rollout_ids`` names the rollouts it starts (a replay names them
    so that canary routing is the same on every run; default: random ids). ``exchange``
    serves models with ``refresh: download`` (default: a ccxt client of the policy's or the
    config's exchange).
    """

    def __init__(
        self,
        config: AlphaOpsConfig,
        policy: AutopilotPolicy,
        *,
        registry: Registry | None = None,
        candles: CandleSource | None = None,
        executor: str = "process",
        ray_address: str | None = None,
        actor: str = "autopilot",
        fault: Callable[[TrainingJob], None] | None = None,
        rollout_ids: Callable[[ModelKey], str] | None = None,
        exchange: OHLCVExchange | None = None,
    ) -> None:
        from alphaops.services._common import open_configured_registry
        from alphaops.services.data import open_store

        self.config = config
        self.policy = policy
        self._owns_registry = registry is None
        self.registry = registry if registry is not None else open_configured_registry(config)
        self.candles = candles if candles is not None else open_store(config)
        self.executor = executor
        self.ray_address = ray_address
        self.actor = actor
        self.fault = fault
        self.rollout_ids = rollout_ids
        self.exchange = exchange
        self.log = AutopilotLog(self.registry, actor=actor)
        self.journal = Journal(self.registry, actor=actor)
        self.hysteresis = Hysteresis()
        self.cancel = CancelToken()
        self._running: set[str] = set()  # run ids this autopilot is running right now

    def close(self) -> None:
        """Close the registry it opened."""
        if self._owns_registry:
            self.registry.close()

    def __enter__(self) -> Autopilot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- deciding -------------------------------------------------------------------------

    def recover(self, now: datetime) -> list[Run]:
        """Close the runs a crash cut short (no final step) as ``abandoned``; return them.

        Their published candidates stay candidates; the model is due again at once if its
        schedule says so, so nothing is lost and nothing is done twice.
        """
        closed = []
        for run in self.log.open_runs():
            if not self._cut_short(run):
                continue
            self.log.append(
                run.run_id,
                run.key,
                run.kind,
                "abandoned",
                at=now,
                reason=f"the autopilot stopped during '{run.state}'",
                version=run.version,
            )
            closed.append(run)
        return closed

    def _cut_short(self, run: Run) -> bool:
        # An open run is another autopilot's work in progress while its process lives: on
        # this host, while its pid does; on another host, until its newest step is older
        # than STALE_AFTER (that host's autopilot died). Ours are open only while running.
        owner = run.steps[0].detail
        if run.run_id in self._running:
            return False
        if owner.get("host") == _HOST:
            pid = int(owner.get("pid", 0))
            return pid == os.getpid() or not _alive(pid)
        if owner.get("host") is None:
            return True
        return datetime.now(UTC) - run.steps[-1].recorded_at > STALE_AFTER

    def due(self, now: datetime) -> list[Firing]:
        """Return the retrains to start at ``now`` (cooldown, rollouts and budget applied)."""
        now = _utc(now)
        runs = self.log.runs()
        firings = []
        for model in self.policy.models:
            firing = self._firing(model, now, [r for r in runs if r.key == model.key])
            if firing is not None and self._may_start(model, now, runs, firing.kind):
                firings.append(firing)
        return self._within_budget(firings, now, runs)

    def _firing(self, model: ModelPolicy, now: datetime, runs: list[Run]) -> Firing | None:
        key = model.key
        if self.registry.aliases(key).get(CHAMPION) is None and not any(
            r.state in ("rollout_started", "promoted") for r in runs
        ):
            emergency = None
        else:
            last_emergency = max(
                (r.started for r in runs if r.kind == "emergency" and not r.cut_short),
                default=None,
            )
            answered = frozenset(
                int(i)
                for r in runs
                if r.kind == "emergency"
                for i in r.steps[0].detail.get("alarm_ids", [])
            )
            record = read_live_record(
                self.registry,
                self.journal,
                key,
                model.triggers,
                now=now,
                since=last_emergency,
                answered=answered,
            )
            found = breaches(model.triggers, record)
            fires = self.hysteresis.update(str(key), found, model.triggers.consecutive)
            emergency = (
                Firing(model, "emergency", "; ".join(found), {"alarm_ids": list(record.alarm_ids)})
                if fires
                else None
            )
        if emergency is not None:
            return emergency
        due_at = self.next_scheduled(model, now, runs)
        if due_at is None:
            # The first version: its fire time anchors the schedule from now on.
            return Firing(
                model, "scheduled", f"{key} has no version yet", {"due_at": now.isoformat()}
            )
        if due_at <= now:
            return Firing(
                model,
                "scheduled",
                f"scheduled for {due_at:%Y-%m-%d %H:%M} UTC",
                {"due_at": due_at.isoformat()},
            )
        return None

    def next_scheduled(
        self, model: ModelPolicy, now: datetime, runs: list[Run] | None = None
    ) -> datetime | None:
        """Return when ``model`` is next due on schedule (``None``: it has no version yet).

        Missed times coalesce: after a long stop the model is due once, not once per miss.
        """
        runs = runs if runs is not None else self.log.runs(model.key)
        # A run cut short (a crash, a stop) did not serve its time: the model is due again.
        served = [
            r.due_at
            for r in runs
            if r.kind == "scheduled" and r.due_at is not None and not r.cut_short
        ]
        if served:
            anchor = max(served)
        else:
            versions = self.registry.list_versions(model.key) if self._known(model.key) else []
            if not versions:
                return None
            anchor = _utc(versions[-1].created_at)
        due = model.schedule.next_after(anchor)
        while (following := model.schedule.next_after(due)) <= now:
            due = following
        return due

    def _known(self, key: ModelKey) -> bool:
        return key in self.registry.list_models()

    def _may_start(self, model: ModelPolicy, now: datetime, runs: list[Run], kind: str) -> bool:
        key = model.key
        if any(r.key == key and not r.finished for r in runs):
            return False
        active = self.registry.list_rollouts(key, active_only=True) if self._known(key) else []
        # The bot is judging a candidate: let it finish first. Only an emergency supersedes a
        # rollout that an alarm (or a person) paused: that retrain aborts it, audited.
        if active and not (kind == "emergency" and active[0].phase == "paused"):
            return False
        until = self.cooldown_until(model, runs)
        return until is None or now >= until

    def cooldown_until(self, model: ModelPolicy, runs: list[Run]) -> datetime | None:
        """Return when ``model``'s cooldown ends (``None``: not cooling down)."""
        last = max(
            (r.started for r in runs if r.key == model.key and not r.cut_short),
            default=None,
        )
        return None if last is None else last + timedelta(seconds=model.cooldown)

    def _within_budget(self, firings: list[Firing], now: datetime, runs: list[Run]) -> list[Firing]:
        recent = [r for r in runs if now - r.started < _DAY]
        budget = self.policy.budget
        left = budget.retrains_per_day - len(recent)
        spent = sum(r.training_seconds for r in recent)
        if spent >= budget.training_minutes_per_day * 60:
            left = 0
        # Emergencies first, then the longest overdue.
        ordered = sorted(firings, key=lambda f: (f.kind != "emergency", str(f.model.key)))
        return ordered[: max(left, 0)]

    # -- acting ---------------------------------------------------------------------------

    def check(self, now: datetime | None = None) -> list[Run]:
        """Run one pass at ``now`` (default: the wall clock): recover, decide, retrain."""
        now = _utc(now or datetime.now(UTC))
        self.recover(now)
        firings = self.due(now)
        if not firings or self.cancel.cancelled:
            return []
        if self.policy.max_concurrent == 1 or len(firings) == 1:
            return [self.retrain(f, now) for f in firings]
        with ThreadPoolExecutor(self.policy.max_concurrent, "autopilot") as pool:
            return list(pool.map(lambda f: self.retrain(f, now), firings))

    def retrain(self, firing: Firing, now: datetime) -> Run:
        """Run one retrain to its end (see the module docstring); return its run."""
        from alphaops.autopilot._retrain import Retrain

        now = _utc(now)
        run_id = self.log.new_run_id()
        self.hysteresis.reset(str(firing.model.key))
        self._running.add(run_id)
        try:
            return Retrain(self, firing, run_id, now).run()
        finally:
            self._running.discard(run_id)

    # -- reading --------------------------------------------------------------------------

    def status(self, now: datetime | None = None) -> list[ModelStatus]:
        """Return where every model of the policy stands."""
        now = _utc(now or datetime.now(UTC))
        runs = self.log.runs()
        result = []
        for model in self.policy.models:
            mine = [r for r in runs if r.key == model.key]
            known = self._known(model.key)
            champion = self.registry.aliases(model.key).get(CHAMPION) if known else None
            alarms = [a for a in self.registry.alarms(model.key, open_only=True)] if known else []
            own = [a for a in alarms if a.kind.startswith("autopilot_")]
            until = self.cooldown_until(model, mine)
            result.append(
                ModelStatus(
                    model.key,
                    champion,
                    mine[-1] if mine else None,
                    self.next_scheduled(model, now, mine),
                    until if until is not None and until > now else None,
                    own[-1].summary if own else None,
                )
            )
        return result

    # -- data -----------------------------------------------------------------------------

    def candles_before(self, job: TrainingJob, now: datetime) -> dict[str, Candles]:
        """Return each of ``job``'s symbols' candles strictly before ``now``."""
        cutoff = np.datetime64(int(_utc(now).timestamp() * 1000), "ms").astype(np.int64)
        data = {}
        for symbol in job.symbols:
            candles = self.candles.load(symbol, job.timeframe)
            keep = int(np.searchsorted(candles.timestamps_ms, cutoff, side="left"))
            if keep == 0:
                raise InsufficientDataError(
                    f"no {symbol} {job.timeframe} candle before {now:%Y-%m-%d %H:%M} UTC",
                    fix=f"import or download {symbol} {job.timeframe} candles first",
                )
            data[symbol] = Candles.from_frame(
                candles.frame.iloc[:keep], symbol=candles.symbol, timeframe=candles.timeframe
            )
        return data

    def windows(
        self, model: ModelPolicy, data: Mapping[str, Candles]
    ) -> tuple[int, int, int | None]:
        """Return (gate start, gate end, training start) in ms for ``model`` on ``data``."""
        stamps = data[model.job.symbols[0]].timestamps_ms
        if len(stamps) <= model.gate_bars + 64:
            raise InsufficientDataError(
                f"{len(stamps)} bars before now: too few to hold out {model.gate_bars} for the "
                "gates and train on the rest",
                fix="lower gate_bars in the policy, or import more history",
            )
        gate_start = int(stamps[-model.gate_bars])
        gate_end = int(stamps[-1]) + 1
        train_start = None
        if model.train_bars is not None:
            first = max(0, len(stamps) - model.gate_bars - model.train_bars)
            train_start = int(stamps[first])
        return gate_start, gate_end, train_start


def elapsed(since: float) -> float:
    """Return the seconds since ``since`` (a ``time.perf_counter()`` reading)."""
    return time.perf_counter() - since


def describe(exc: AlphaOpsError) -> dict[str, Any]:
    """Return an error as log detail."""
    return {"error": exc.code, "message": exc.message, "fix": exc.fix}
