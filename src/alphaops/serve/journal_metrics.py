"""Live win rate and drift gauges read from the journal at scrape time.

:class:`JournalCollector` sets beside each other, per model, the win rate of the champion's
journaled round trips and the win rate its backtest gate measured (``hit_rate``: the share of
the gate's simulated trades that won), and reports the newest drift finding the monitor
journaled (``alphaops monitor --record``) for each kind. Reading the journal is cached: it is
re-read when the registry's generation moved (a promotion changes which version is champion)
or when ``refresh_s`` has passed (new fills arrive without moving anything), never on every
scrape.

>>> DRIFT_SEVERITY["alarm"], DRIFT_SEVERITY["warn"], DRIFT_SEVERITY["info"]
(2.0, 1.0, 0.0)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alphaops.core.errors import IntegrityError
from alphaops.gates.records import GateRecordStore
from alphaops.journal import Journal
from alphaops.monitoring.performance import trade_stats
from alphaops.registry import ModelKey, Registry
from alphaops.registry.refs import CHAMPION

__all__ = ["DRIFT_KINDS", "DRIFT_SEVERITY", "JournalCollector"]

DRIFT_KINDS = ("feature_drift", "prediction_drift", "outcome_drift")
"""The monitor event kinds reported (the ``kind`` label of the drift gauges)."""

DRIFT_SEVERITY = {"info": 0.0, "warn": 1.0, "alarm": 2.0}
"""Value of ``alphaops_drift_status`` for the severity of the newest finding."""


@dataclass(frozen=True)
class _ModelFigures:
    version: int | None
    trades: int
    live: float
    expected: float
    drift: dict[str, tuple[float, float]]  # kind -> (severity, epoch seconds)


class JournalCollector(Collector):
    """Scrape-time gauges of live performance and drift from ``registry``'s journal.

    ``models`` lists the models to report (e.g. ``registry.list_models``); ``refresh_s`` bounds
    how stale the figures may be while the registry's generation stays the same.
    """

    def __init__(
        self,
        registry: Registry,
        models: Callable[[], Iterable[ModelKey]],
        *,
        refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._journal = Journal(registry)  # reads only: its writer never starts
        self._gates = GateRecordStore(registry)
        self._models = models
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[str, _ModelFigures] = {}
        self._generation: int | None = None
        self._read_at = -math.inf
        self.reads = 0
        """How many times the journal was read (not served from the cache)."""

    def describe(self) -> Iterable[Any]:
        return []  # collected lazily: never read the database at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            figures = self._figures()
        live = GaugeMetricFamily(
            "alphaops_live_win_rate",
            "Share of the champion's journaled round trips that won (absent without a trade).",
            labels=["model"],
        )
        expected = GaugeMetricFamily(
            "alphaops_expected_win_rate",
            "Win rate the backtest gate measured for the champion (share of winning trades).",
            labels=["model"],
        )
        trades = GaugeMetricFamily(
            "alphaops_live_round_trips",
            "Journaled round trips of the champion (the sample behind its live win rate).",
            labels=["model"],
        )
        status = GaugeMetricFamily(
            "alphaops_drift_status",
            "Severity of the newest journaled drift finding of that kind: 0 info, 1 warn, "
            "2 alarm (a finding stays until a newer check is journaled).",
            labels=["model", "kind"],
        )
        checked = GaugeMetricFamily(
            "alphaops_drift_last_finding_timestamp_seconds",
            "When the newest journaled drift finding of that kind was made (Unix time).",
            labels=["model", "kind"],
        )
        for name, f in sorted(figures.items()):
            trades.add_metric([name], f.trades)
            if not math.isnan(f.live):
                live.add_metric([name], f.live)
            if not math.isnan(f.expected):
                expected.add_metric([name], f.expected)
            for kind, (severity, at) in sorted(f.drift.items()):
                status.add_metric([name, kind], severity)
                checked.add_metric([name, kind], at)
        yield from (live, expected, trades, status, checked)

    def _figures(self) -> dict[str, _ModelFigures]:
        generation = self._registry.generation()
        now = self._clock()
        if generation == self._generation and now - self._read_at < self._refresh_s:
            return self._cached
        self._cached = {str(key): self._read(key) for key in self._models()}
        self._generation, self._read_at = generation, now
        self.reads += 1
        return self._cached

    def _read(self, key: ModelKey) -> _ModelFigures:
        drift: dict[str, tuple[float, float]] = {}
        for kind in DRIFT_KINDS:
            events = self._journal.events(key, kind=kind)
            if events:
                newest = events[-1]
                drift[kind] = (DRIFT_SEVERITY[newest.severity], newest.at.timestamp())
        version = self._registry.aliases(key).get(CHAMPION)
        if version is None:
            return _ModelFigures(None, 0, math.nan, math.nan, drift)
        stats = trade_stats(self._journal.round_trips(key, version=version))
        return _ModelFigures(
            version, stats.trades, stats.win_rate, self._expected(f"{key}/{version}"), drift
        )

    def _expected(self, ref: str) -> float:
        try:
            record = self._gates.latest(ref)
        except IntegrityError:  # recorded by other means than the gates (e.g. an import)
            return math.nan
        if record is None or not any(g.gate == "backtest" for g in record.gates):
            return math.nan
        value = record.gate("backtest").data.get("candidate", {}).get("hit_rate")
        return float(value) if isinstance(value, int | float) else math.nan
