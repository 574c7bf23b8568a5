"""Prometheus metrics of models and training, for ``alphaops serve`` and for any bot.

Everything is registered on a :class:`prometheus_client.CollectorRegistry` the caller owns
(never the process-global default), so two servers or tests in one process never share
counters. A bot that does not run ``alphaops serve`` exports the same metrics with
:func:`write_textfile` (node_exporter's textfile collector) or its own ``/metrics``.

Labels are bounded: ``model`` is ``SYMBOL/TYPE`` of a served model, ``role`` one of three,
``alias`` one of champion/challenger/previous, ``phase`` one of the rollout phases,
``implementation`` a model family; never a routing key, order id or version hash.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> metrics = TrainingMetrics(CollectorRegistry())
>>> metrics.started("lightgbm")
>>> metrics.finished("lightgbm", "published", seconds=2.5)
>>> b'training_requests_total{implementation="lightgbm",status="published"} 1.0' in (
...     generate_latest(metrics.registry))
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import write_to_textfile as _write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from alphaops.registry import ModelKey, Registry
from alphaops.registry.refs import CHALLENGER, CHAMPION, PREVIOUS
from alphaops.rollout import Phase

if TYPE_CHECKING:
    from alphaops.runtime import Prediction, RuntimeEvent

__all__ = [
    "LATENCY_BUCKETS",
    "ModelMetrics",
    "RegistryCollector",
    "TrainingMetrics",
    "write_textfile",
]

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
"""Prediction latency buckets (seconds): an ONNX prediction takes ~0.1–10 ms."""

_ROLES = ("champion", "challenger", "fallback")
_ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)


class ModelMetrics:
    """What served models do: predictions, latency, swaps, refused versions, fallbacks.

    Call :meth:`observe` after each prediction and pass :meth:`event_hook` as a
    ``LivePredictor``'s ``on_event``. Live win rates and drift come from the journal
    (:class:`~alphaops.serve.journal_metrics.JournalCollector`).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.predictions = Counter(
            "alphaops_predictions",
            "Predictions served, by model, version and role (champion/challenger/fallback).",
            ["model", "version", "role"],
            registry=registry,
        )
        self.latency = Histogram(
            "alphaops_prediction_latency_seconds",
            "Time to compute one prediction (input checks and ONNX inference).",
            ["model", "role"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.prediction_errors = Counter(
            "alphaops_prediction_errors",
            "Prediction requests refused or failed, by model and error code.",
            ["model", "code"],
            registry=registry,
        )
        self.swaps = Counter(
            "alphaops_model_swaps",
            "Hot swaps: a new version published to the serving slot.",
            ["model"],
            registry=registry,
        )
        self.refused = Counter(
            "alphaops_model_refused_versions",
            "Versions the runtime refused to serve (failed verification or incompatible).",
            ["model"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "alphaops_model_fallbacks",
            "Predictions served by a fallback model because the serving model failed.",
            ["model"],
            registry=registry,
        )
        self.serving = Gauge(
            "alphaops_model_serving_version",
            "The champion version the runtime serves now.",
            ["model"],
            registry=registry,
        )

    def observe(self, model: str, prediction: Prediction, seconds: float) -> None:
        """Count one prediction and its latency."""
        self.predictions.labels(model, str(prediction.version), prediction.role).inc()
        self.latency.labels(model, prediction.role).observe(seconds)

    def error(self, model: str, code: str) -> None:
        """Count one refused or failed prediction request (``code``: the alphaops error code)."""
        self.prediction_errors.labels(model, code).inc()

    def event_hook(self, model: str) -> Callable[[RuntimeEvent], None]:
        """Return an ``on_event`` callback for the ``LivePredictor`` of ``model``."""
        swaps, refused, fallbacks = (
            self.swaps.labels(model),
            self.refused.labels(model),
            self.fallbacks.labels(model),
        )
        serving = self.serving.labels(model)

        def on_event(event: RuntimeEvent) -> None:
            if event.kind == "swapped":
                swaps.inc()
                if event.version is not None:
                    serving.set(event.version)
            elif event.kind == "loaded" and event.version is not None:
                serving.set(event.version)
            elif event.kind == "refused":
                refused.inc()
            elif event.kind == "fallback":
                fallbacks.inc()

        return on_event


class RegistryCollector(Collector):
    """Read the registry at scrape time: aliases, rollout phase and percentage, generation,
    open drift alarms (a handful of indexed reads per model per scrape)."""

    def __init__(self, registry: Registry, models: Callable[[], Iterable[ModelKey]]) -> None:
        self._registry = registry
        self._models = models
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Any]:
        return []  # collected lazily: never read the database at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            yield from self._collect()

    def _collect(self) -> Iterator[GaugeMetricFamily]:
        reg = self._registry
        generation = GaugeMetricFamily(
            "alphaops_registry_generation", "Registry-wide generation (grows with every move)."
        )
        generation.add_metric([], reg.generation())
        alias = GaugeMetricFamily(
            "alphaops_alias_version", "Version an alias points at.", labels=["model", "alias"]
        )
        phase = GaugeMetricFamily(
            "alphaops_rollout_phase",
            "1 for the phase the model's newest rollout is in, 0 for the others.",
            labels=["model", "phase"],
        )
        percentage = GaugeMetricFamily(
            "alphaops_rollout_percentage",
            "Canary percentage of the active rollout (0 in shadow or without a rollout).",
            labels=["model"],
        )
        alarms = GaugeMetricFamily(
            "alphaops_drift_alarms_open",
            "Unacknowledged drift alarms (each blocks promotion and pauses rollouts).",
            labels=["model"],
        )
        active = {str(r.key): r for r in reg.list_rollouts(active_only=True)}
        for key in self._models():
            name = str(key)
            found = reg.aliases(key)
            for a in _ALIASES:
                if a in found:
                    alias.add_metric([name, a], found[a])
            rollout = active.get(name)
            for p in Phase:
                phase.add_metric([name, p.value], 1.0 if rollout and rollout.phase == p else 0.0)
            percentage.add_metric([name], 0 if rollout is None else rollout.percentage)
            alarms.add_metric([name], len(reg.alarms(key, open_only=True)))
        yield from (generation, alias, phase, percentage, alarms)
        yield from self._autopilot()

    def _autopilot(self) -> Iterator[Any]:
        # What the autopilot did, from its log: runs by model, kind and how they ended, and
        # a 1 where it needs a person (an emergency found no passing candidate, or holding).
        from alphaops.autopilot import AutopilotLog
        from alphaops.registry import HOLD_ALARM

        runs = CounterMetricFamily(
            "alphaops_autopilot_runs",
            "Autopilot retrains by model, kind and where they stand.",
            labels=["model", "kind", "state"],
        )
        attention = GaugeMetricFamily(
            "alphaops_autopilot_needs_attention",
            "1 when the autopilot's newest emergency retrain of the model found no passing "
            "candidate or bots are holding.",
            labels=["model"],
        )
        holding = GaugeMetricFamily(
            "alphaops_autopilot_holding",
            "1 while bots serving the model act HOLD (an open autopilot_hold alarm).",
            labels=["model"],
        )
        counted: dict[tuple[str, str, str], int] = {}
        newest: dict[str, Any] = {}
        for run in AutopilotLog(self._registry).runs():
            label: tuple[str, str, str] = (str(run.key), str(run.kind), run.state)
            counted[label] = counted.get(label, 0) + 1
            newest[str(run.key)] = run
        for label, n in sorted(counted.items()):
            runs.add_metric(list(label), n)
        for key in self._models():
            name = str(key)
            opened = self._registry.alarms(key, open_only=True)
            held = any(a.kind == HOLD_ALARM for a in opened)
            last = newest.get(name)
            failed = (
                last is not None
                and last.kind == "emergency"
                and last.state in ("blocked", "failed", "safe_action")
            )
            ours = any(a.kind.startswith("autopilot_") for a in opened)
            attention.add_metric([name], 1.0 if failed or ours else 0.0)
            holding.add_metric([name], 1.0 if held else 0.0)
        yield from (runs, attention, holding)


class TrainingMetrics:
    """Training requests, durations, active sessions, progress cadence, cancellation latency.

    The names are the ones teams migrating a training stack already alert on. Wire it into
    ``train_models`` with the callbacks of :meth:`sinks` (``alphaops train
    --metrics-textfile`` does).
    """

    def __init__(self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.monotonic):
        self.registry = registry
        self._clock = clock
        self._lock = threading.Lock()
        self._last_update: dict[int, float] = {}
        self._cancel_at: float | None = None
        self.requests = Counter(
            "training_requests",
            "Training requests finished, by implementation (model family) and status.",
            ["implementation", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "training_duration_seconds",
            "Wall time of one training request.",
            ["implementation"],
            buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=registry,
        )
        self.active = Gauge(
            "active_training_sessions",
            "Training sessions running now.",
            ["implementation"],
            registry=registry,
        )
        self.progress_interval = Histogram(
            "progress_update_interval_seconds",
            "Time between two progress updates of one training session.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.cancellation = Histogram(
            "cancellation_latency_seconds",
            "Time from a cancellation request to the session having stopped.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    def started(self, implementation: str) -> None:
        """Count a session as active."""
        self.active.labels(implementation).inc()

    def progress(self, session: int) -> None:
        """Record one progress update of session ``session`` (observes the gap since the last)."""
        now = self._clock()
        with self._lock:
            last = self._last_update.get(session)
            self._last_update[session] = now
        if last is not None:
            self.progress_interval.observe(now - last)

    def progress_sink(self) -> Callable[[int, Any], None]:
        """Return a ``ProgressSink`` for ``train_models`` (``(job index, update)``)."""
        return lambda index, _update: self.progress(index)

    def cancel_requested(self) -> None:
        """Mark when cancellation was asked for (sessions stopping after it observe latency)."""
        self._cancel_at = self._clock()

    def finished(self, implementation: str, status: str, *, seconds: float) -> None:
        """Record a finished session: its status (published, trained, failed, cancelled)."""
        self.active.labels(implementation).dec()
        self.requests.labels(implementation, status).inc()
        self.duration.labels(implementation).observe(seconds)
        if status == "cancelled" and self._cancel_at is not None:
            self.cancellation.observe(max(0.0, self._clock() - self._cancel_at))

    def on_done(self, outcome: Any) -> None:
        """``on_done`` callback for ``train_models``: record the :class:`JobOutcome`."""
        with self._lock:
            self._last_update.pop(outcome.index, None)
        self.finished(outcome.job.model, outcome.status, seconds=outcome.seconds)

    def sinks(
        self, jobs: Sequence[Any], cancel: Any = None
    ) -> tuple[Callable[[int, Any], None], Callable[[Any], None]]:
        """Return ``(progress, on_done)`` callbacks for ``train_models`` over ``jobs``.

        A job counts as active from its first progress update (or its end) until it is done;
        a cancelled job's latency runs from ``cancel``'s (a ``CancelToken``) first ``cancel()``,
        so the clock must be ``time.monotonic`` (the default).
        """
        running: set[int] = set()

        def begin(index: int) -> None:
            with self._lock:
                new = index not in running
                running.add(index)
            if new:
                self.started(jobs[index].model)

        def progress(index: int, _update: Any) -> None:
            begin(index)
            self.progress(index)

        def on_done(outcome: Any) -> None:
            begin(outcome.index)
            at = None if cancel is None else cancel.cancelled_at
            if at is not None and self._cancel_at is None:
                self._cancel_at = at
            self.on_done(outcome)

        return progress, on_done


def write_textfile(registry: CollectorRegistry, path: Path) -> None:
    """Write the metrics atomically for node_exporter's textfile collector (``*.prom``)."""
    _write_to_textfile(str(path), registry)
