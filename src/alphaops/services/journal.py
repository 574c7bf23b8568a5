"""Live performance and drift of a model, read from the journal (``alphaops journal stats``,
``alphaops monitor``).

Performance is measured per version and role the way the version's backtest gate measured
it (same costs, same position rule; see :mod:`alphaops.monitoring.performance`) and set beside
the gate's figures. Drift compares the inputs and outputs of the version's journaled
decisions with the reference profile its bundle recorded at training; the inputs are the
journaled input rows when the journal stores them, else recomputed from the stored candles
(the same features, bit for bit). With ``record=True`` a warning or alarm is journaled as a
monitor event, and an alarm is raised in the registry, which pauses the model's rollout and
blocks its promotion until someone acknowledges it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import InsufficientDataError, IntegrityError, NotFoundError, UsageError
from alphaops.core.timeframes import Timeframe
from alphaops.data import CandleStore
from alphaops.data.candles import Candles
from alphaops.gates.backtest import periods_per_year
from alphaops.gates.policy import BacktestPolicy
from alphaops.gates.records import GateRecord, GateRecordStore
from alphaops.journal import Decision, Journal
from alphaops.monitoring import FeatureDrift, OutcomeDrift, PredictionDrift
from alphaops.monitoring.drift import DriftReport
from alphaops.monitoring.performance import (
    DecisionStats,
    Divergence,
    TradeStats,
    decision_stats,
    divergence,
    trade_stats,
)
from alphaops.registry import Alarm, Manifest, ModelKey, Registry, parse_key
from alphaops.registry.refs import CHAMPION, parse_ref
from alphaops.scoring import InputContract, profile_of
from alphaops.services._common import open_configured_registry
from alphaops.services.data import open_store

__all__ = [
    "MonitorReport",
    "PerformanceReport",
    "VersionPerformance",
    "drift_of",
    "live_performance",
    "monitor_model",
    "performance_of",
]


@dataclass(frozen=True)
class VersionPerformance:
    """One version in one role: its decisions' paper figures, its trades, its backtest."""

    ref: str
    version: int
    role: str
    decisions: DecisionStats
    trades: TradeStats
    backtest: dict[str, float] | None
    """The backtest gate's figures of the version's newest gate run (``None``: never gated)."""
    divergence: Divergence | None
    equity_ms: list[int] = field(default_factory=list, repr=False)
    equity: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready figures (the equity curve left out)."""
        keep = ("total_return", "sharpe", "max_drawdown", "hit_rate", "trades", "bars", "psr")
        return {
            "ref": self.ref,
            "version": self.version,
            "role": self.role,
            "decisions": self.decisions.to_dict(),
            "trades": self.trades.to_dict(),
            "backtest": None
            if self.backtest is None
            else {k: _json_float(self.backtest.get(k)) for k in keep},
            "divergence": None if self.divergence is None else self.divergence.to_dict(),
        }


@dataclass(frozen=True)
class PerformanceReport:
    """Live performance of every version (and role) of a model over the journal."""

    key: str
    timeframe: str
    rows: list[VersionPerformance]
    unscored: int = 0
    """Decisions without a bar time (ready feature rows) or outside the stored candles."""

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return {
            "key": self.key,
            "timeframe": self.timeframe,
            "unscored_decisions": self.unscored,
            "versions": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class MonitorReport:
    """Drift of one version's inputs, predictions and outcomes, and its live performance."""

    ref: str
    features: DriftReport
    predictions: DriftReport
    outcome_drift: bool
    win_rate: float
    trades: int
    decisions: int
    """This version's decisions compared (its prediction distribution)."""
    bars: int
    """Bars of the model's recent decisions (any version) whose inputs were compared."""
    source: str
    """Where the input rows came from: ``journal`` or ``candles``."""
    performance: list[VersionPerformance]
    alarm: Alarm | None = None

    @property
    def worst(self) -> str:
        """Return the worst status: ``alarm``, ``warn``, ``ok`` or ``insufficient``."""
        statuses = {self.features.worst, self.predictions.worst}
        if self.outcome_drift:
            statuses.add("alarm")
        for status in ("alarm", "warn", "ok"):
            if status in statuses:
                return status
        return "insufficient"

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return {
            "ref": self.ref,
            "status": self.worst,
            "decisions": self.decisions,
            "bars": self.bars,
            "input_source": self.source,
            "features": self.features.to_dict(),
            "predictions": self.predictions.to_dict(),
            "outcomes": {
                "trades": self.trades,
                "win_rate": _json_float(self.win_rate),
                "drift_detected": self.outcome_drift,
            },
            "performance": [r.to_dict() for r in self.performance],
            "alarm": None if self.alarm is None else self.alarm.id,
        }


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@contextmanager
def _opened(config: AlphaOpsConfig) -> Iterator[tuple[Registry, Journal, CandleStore]]:
    with open_configured_registry(config, create=False) as registry, Journal(registry) as journal:
        yield registry, journal, open_store(config, create=False)


def live_performance(
    config: AlphaOpsConfig,
    ref: str,
    *,
    since: int | None = None,
    until: int | None = None,
    last: int | None = None,
) -> PerformanceReport:
    """Return the live performance of ``ref`` (``SYMBOL/TYPE``, or one version ``…/N``)."""
    with _opened(config) as (registry, journal, store):
        return performance_of(registry, journal, store, ref, since=since, until=until, last=last)


def _key_and_version(registry: Registry, ref: str) -> tuple[ModelKey, int | None]:
    if ref.count("/") == 1 and "@" not in ref:
        return parse_key(ref), None
    found = registry.resolve(parse_ref(ref))
    return found.key, found.version


def performance_of(
    registry: Registry,
    journal: Journal,
    store: CandleStore,
    ref: str,
    *,
    since: int | None = None,
    until: int | None = None,
    last: int | None = None,
) -> PerformanceReport:
    """Return the live performance of ``ref`` from a journal and the candles of ``store``.

    ``since``/``until`` bound decision times and trade close times (epoch ms); ``last``
    keeps the last N trades of each version and role.
    """
    key, only = _key_and_version(registry, ref)
    decisions = journal.decisions(key, version=only, since=since, until=until)
    if not decisions:
        raise NotFoundError(
            f"the journal holds no decision of {ref}",
            fix="serve it with LivePredictor(..., journal=Journal(registry)) first",
        )
    groups: dict[tuple[int, str], list[Decision]] = defaultdict(list)
    for d in decisions:
        groups[(d.version, d.role)].append(d)
    manifests = {v: registry.get(key, v).manifest for v in {v for v, _ in groups}}
    first = manifests[min(manifests)]
    timeframe = Timeframe.parse(first.data.timeframe)
    candles = _candles(store, first, decisions)
    gates = GateRecordStore(registry)
    rows: list[VersionPerformance] = []
    unscored = 0
    for (version, role), group in sorted(groups.items()):
        manifest = manifests[version]
        record = _gate_record(gates, f"{key}/{version}")
        policy = (
            BacktestPolicy.model_validate(record.policy.get("backtest", {}))
            if record
            else BacktestPolicy()
        )
        backtest = None
        if record is not None and any(g.gate == "backtest" for g in record.gates):
            backtest = dict(record.gate("backtest").data.get("candidate", {}))
        actions, nxt, fwd, stamps, missed = _outcomes(group, candles, manifest.label.horizon)
        unscored += missed
        stats, equity = decision_stats(
            actions, nxt, fwd,
            cost=(policy.fee_bps + policy.slippage_bps) / 10_000, mode=policy.mode,
            periods_per_year=periods_per_year(timeframe, candles.calendar),
        )  # fmt: skip
        trips = journal.round_trips(
            key, version=version, role=role, since=since, until=until, last=last
        )
        rows.append(
            VersionPerformance(
                ref=f"{key}/{version}",
                version=version,
                role=role,
                decisions=stats,
                trades=trade_stats(trips),
                backtest=backtest,
                divergence=None if backtest is None else divergence(stats, backtest),
                equity_ms=stamps[np.isfinite(nxt)].tolist(),
                equity=equity.tolist(),
            )
        )
    return PerformanceReport(str(key), str(timeframe), rows, unscored)


def _gate_record(gates: GateRecordStore, ref: str) -> GateRecord | None:
    # A run recorded by other means than the gates (e.g. an import) has no backtest figures.
    try:
        return gates.latest(ref)
    except IntegrityError:
        return None


def _candles(store: CandleStore, manifest: Manifest, decisions: Sequence[Decision]) -> Candles:
    try:
        return store.load(manifest.symbol, manifest.data.timeframe)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no stored {manifest.symbol} {manifest.data.timeframe} candles to score "
            f"{len(decisions)} journaled decisions against",
            fix=f"alphaops data download {manifest.symbol} --timeframe {manifest.data.timeframe} "
            "(or data import) covering the journaled period",
        ) from exc


def _outcomes(
    group: Sequence[Decision], candles: Candles, horizon: int
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    int,
]:
    # One decision per bar (the newest), in bar order; the market's next-bar and horizon
    # returns from the stored closes (NaN when that future is not stored yet).
    latest: dict[int, Decision] = {}
    for d in group:
        if d.bar_time is not None:
            latest[int(d.bar_time.timestamp() * 1000)] = d
    stamps = np.array(sorted(latest), dtype=np.int64)
    times = candles.timestamps_ms
    close = candles.frame["close"].to_numpy(np.float64)
    index = np.searchsorted(times, stamps)
    inside = (index < times.size) & (times[np.minimum(index, times.size - 1)] == stamps)
    missed = len(group) - int(inside.sum())
    stamps, index = stamps[inside], index[inside]

    def ahead(h: int) -> npt.NDArray[np.float64]:
        # The h-th next stored bar, as the backtest gate and the labels count (a weekend or
        # a missing candle in between is held through).
        out = np.full(index.size, np.nan)
        ok = index + h < times.size
        out[ok] = close[index[ok] + h] / close[index[ok]] - 1.0
        return out

    actions = np.array([latest[int(s)].action for s in stamps], dtype=np.float64)
    return actions, ahead(1), ahead(horizon), stamps, missed


def monitor_model(
    config: AlphaOpsConfig, ref: str, *, window: int = 1000, record: bool = False
) -> MonitorReport:
    """Return the drift and performance of ``ref`` (``SYMBOL/TYPE`` means its champion)."""
    with _opened(config) as (registry, journal, store):
        return drift_of(registry, journal, store, ref, window=window, record=record)


def drift_of(
    registry: Registry,
    journal: Journal,
    store: CandleStore,
    ref: str,
    *,
    window: int = 1000,
    record: bool = False,
) -> MonitorReport:
    """Return the drift of the version ``ref`` names (``SYMBOL/TYPE``: the champion).

    Feature drift compares the inputs of the last ``window`` bars the model decided (whichever
    version served them: it is the market the champion faces now) with the version's training
    profile; prediction drift compares the version's own last ``window`` answers.
    """
    if window < 1:
        raise UsageError(f"window={window}", fix="pass a positive number of decisions")
    if ref.count("/") == 1 and "@" not in ref:
        ref = f"{ref}@{CHAMPION}"
    found = registry.resolve(parse_ref(ref))
    key, version = found.key, found.version
    bundle = registry.load(f"{key}/{version}")
    profile = profile_of(bundle)
    if profile is None:
        raise NotFoundError(
            f"{key}/{version} was trained before bundles carried a drift reference profile",
            fix="retrain it (alphaops train …): new bundles carry reports/drift_reference.json",
        )
    # Inputs: the market the model is asked about now, i.e. the last ``window`` bars any
    # version of the model decided; predictions: this version's own answers.
    # A bar has at most two non-fallback decisions (the acting one and a shadow's); only the
    # newest are read, never the whole journal.
    recent = journal.decisions(key, last=3 * window)
    bars = _one_per_bar([d for d in recent if d.role != "fallback"])[-window:]
    own = [d for d in journal.decisions(key, version=version, last=window) if d.role != "fallback"]
    if not own:
        raise NotFoundError(
            f"the journal holds no decision of {key}/{version}",
            fix="serve it with LivePredictor(..., journal=Journal(registry)) first",
        )
    rows, source = _input_rows(bars, bundle, store, version)
    features = FeatureDrift(profile, window=window)
    features.update_many(rows)
    predictions = PredictionDrift(profile, window=window)
    predictions.update(np.array([d.probabilities for d in own], dtype=np.float64))
    outcomes = OutcomeDrift()
    trips = journal.round_trips(key, version=version)
    for trip in trips:
        outcomes.update(trip.net_pnl > 0)
    performance = performance_of(registry, journal, store, f"{key}/{version}")
    report = MonitorReport(
        ref=f"{key}/{version}",
        features=features.report(),
        predictions=predictions.report(),
        outcome_drift=outcomes.drift_detected,
        win_rate=outcomes.win_rate if trips else float("nan"),
        trades=len(trips),
        decisions=len(own),
        bars=len(rows),
        source=source,
        performance=performance.rows,
    )
    if record and report.worst in ("warn", "alarm"):
        return _record(registry, journal, report, key, version)
    return report


def _one_per_bar(decisions: Sequence[Decision]) -> list[Decision]:
    # The newest decision of every decided bar, in bar order (rows without a bar kept last).
    latest = {d.bar_time: d for d in decisions if d.bar_time is not None}
    return [latest[t] for t in sorted(latest)]


def _input_rows(
    decisions: Sequence[Decision], bundle: Any, store: CandleStore, version: int
) -> tuple[npt.NDArray[np.float64], str]:
    # Stored input rows are used when every one of them is this version's (same features);
    # otherwise the version's features are recomputed from the stored candles.
    if decisions and all(d.input_row is not None and d.version == version for d in decisions):
        return np.array([d.input_row for d in decisions], dtype=np.float64), "journal"
    contract = InputContract.from_bundle(bundle)
    candles = _candles(store, bundle.manifest, decisions)
    stamps = np.array(
        [int(d.bar_time.timestamp() * 1000) for d in decisions if d.bar_time is not None],
        dtype=np.int64,
    )
    features = contract.features(candles)
    index = np.searchsorted(candles.timestamps_ms, stamps)
    ok = (index < len(candles)) & (
        candles.timestamps_ms[np.minimum(index, len(candles) - 1)] == stamps
    )
    if not ok.any():
        raise InsufficientDataError(
            f"none of the {len(decisions)} decisions' bars is in the stored "
            f"{candles.symbol} {candles.timeframe} candles",
            fix="download the candles of the journaled period, or journal inputs "
            "(JournalConfig(store_inputs=True))",
        )
    # In the model's input dtype, as the live path journals them.
    rows = features[index[ok]].astype(contract.dtype).astype(np.float64)
    return rows, "candles"


def _record(
    registry: Registry, journal: Journal, report: MonitorReport, key: ModelKey, version: int
) -> MonitorReport:
    worst = report.worst
    drifted = [r.name for r in report.features.rows if r.status == worst]
    drifted += [r.name for r in report.predictions.rows if r.status == worst]
    if report.outcome_drift:
        drifted.append("win rate")
    summary = f"{worst} on {', '.join(drifted)}"
    kind = (
        "feature_drift"
        if any(r.status == worst for r in report.features.rows)
        else (
            "prediction_drift"
            if any(r.status == worst for r in report.predictions.rows)
            else "outcome_drift"
        )
    )
    detail = report.to_dict() | {"summary": summary}
    journal.record_event(
        key, kind, "alarm" if worst == "alarm" else "warn", detail, version=version
    )
    if worst != "alarm":
        return report
    already = [a for a in registry.alarms(key, open_only=True) if a.kind == kind]
    alarm = (
        already[-1]
        if already
        else registry.raise_alarm(
            key, kind=kind, detail={"summary": summary, "status": worst}, version=version
        )
    )
    return replace(report, alarm=alarm)
