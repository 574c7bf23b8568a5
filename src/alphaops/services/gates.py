"""Gate use cases: what ``alphaops gate …``, ``alphaops scoreboard`` and a gated promote call.

Candles come from the home's store (or are passed in), models from the home's registry. Gate
records and their reports go into the registry's append-only gate log (through
:class:`~alphaops.gates.records.GateRecordStore`), so they live wherever the registry does:
SQLite or PostgreSQL, a local folder or S3. Human-readable copies of the reports also go to
``<home>/reports/safety/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import UsageError
from alphaops.core.home import AlphaOpsHome
from alphaops.core.names import normalize_symbol
from alphaops.data.candles import Candles
from alphaops.gates import BundlePredictor, GateOutcome, GatePolicy
from alphaops.gates.records import (
    GateClearance,
    GateRecordStore,
    ensure_gates_passed,
    ensure_policy,
    policy_of,
)
from alphaops.gates.report import render_html, render_markdown, report_name
from alphaops.gates.runner import GateRun, evaluation_candles, run_gates, run_quality
from alphaops.gates.scoreboard import (
    Scoreboard,
    ScoreboardEntry,
    build_scoreboard,
    render_scoreboard,
)
from alphaops.registry import GatePolicyRecord, ModelVersion, Registry
from alphaops.registry import GateRun as RecordedGateRun
from alphaops.registry.refs import CHALLENGER, CHAMPION
from alphaops.services._common import open_configured_registry
from alphaops.services.data import open_store

__all__ = [
    "DEMO_POLICY",
    "GateRunSummary",
    "apply_demo_policy",
    "check_promotion",
    "demo_policy",
    "gate_policy_history",
    "gate_quality",
    "gate_run",
    "parse_window",
    "safety_dir",
    "scoreboard",
    "set_gate_policy",
]

AUTO = "auto"


def safety_dir(config: AlphaOpsConfig) -> Path:
    """Return ``<home>/reports/safety`` (created)."""
    folder = AlphaOpsHome(config.home).ensure().reports_dir / "safety"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def parse_window(text: str | None) -> tuple[int | None, int | None]:
    """Parse ``START..END`` (UTC dates or times; either side may be empty) into ms bounds.

    >>> parse_window("2025-01-01..2025-02-01")
    (1735689600000, 1738368000000)
    >>> parse_window("2025-01-01.."), parse_window(None)
    ((1735689600000, None), (None, None))
    """
    if not text:
        return None, None
    if ".." not in text:
        raise UsageError(
            f"--window {text!r} is not START..END", fix="write e.g. 2025-01-01..2025-03-01"
        )
    start, _, end = text.partition("..")

    def ms(part: str) -> int | None:
        if not part.strip():
            return None
        try:
            stamp = pd.Timestamp(part.strip())
        except ValueError as exc:
            raise UsageError(
                f"--window bound {part!r} is not a date", fix="write e.g. 2025-01-01"
            ) from exc
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return int(stamp.value // 1_000_000)

    return ms(start), ms(end)


def _candles(config: AlphaOpsConfig, version: ModelVersion) -> Candles:
    m = version.manifest
    return open_store(config).load(m.symbol, m.data.timeframe)


def gate_quality(
    config: AlphaOpsConfig,
    ref: str,
    *,
    window: str | None = None,
    policy: GatePolicy | None = None,
    candles: Candles | None = None,
) -> tuple[ModelVersion, GateOutcome]:
    """Run the quality gate on ``ref`` over the window; return the version and outcome."""
    start, end = parse_window(window)
    with open_configured_registry(config, create=False) as registry:
        version = registry.resolve(ref)
        predictor = BundlePredictor(registry.load(version.ref))
        policy = policy or _read_policy(registry)
    outcome, _ = run_quality(
        predictor,
        candles if candles is not None else _candles(config, version),
        policy=policy,
        window_start_ms=start,
        window_end_ms=end,
    )
    return version, outcome


@dataclass(frozen=True, eq=False)
class GateRunSummary:
    """A gate run, its entry in the registry's gate log and the reports written for people."""

    version: ModelVersion
    run: GateRun
    recorded: RecordedGateRun
    reports: dict[str, Path]
    cleared: bool
    """Whether this run clears the version for live traffic (promotion, a live rollout)."""
    clearance: str
    """``gates passed``, or why the run does not clear it (failed, another policy, in-sample)."""
    policy_in_force: bool
    """Whether the run was judged under the registry's gate policy in force."""

    @property
    def passed(self) -> bool:
        """Return whether every gate passed."""
        return self.run.passed


def gate_run(
    config: AlphaOpsConfig,
    ref: str,
    *,
    champion: str | None = AUTO,
    window: str | None = None,
    policy: GatePolicy | None = None,
    candles: Candles | None = None,
) -> GateRunSummary:
    """Run every gate on ``ref``, record the result for the version, write and attach reports.

    ``champion`` is a reference, ``"auto"`` (the key's current champion unless that is the
    candidate itself) or ``None`` (absolute thresholds only). Without ``policy`` the gates
    judge under the registry's gate policy in force (its defaults on the first run); a run
    under another policy is recorded, but does not clear the version for live traffic.
    """
    start, end = parse_window(window)
    with open_configured_registry(config, create=False) as registry:
        in_force = ensure_policy(registry)
        policy = policy or in_force
        version = registry.resolve(ref)
        predictor = BundlePredictor(registry.load(version.ref))
        champion_version = _champion(registry, version, champion)
        rival = BundlePredictor(registry.load(champion_version.ref)) if champion_version else None
        trials = len(registry.list_versions(version.key))
    run = run_gates(
        predictor,
        candles if candles is not None else _candles(config, version),
        version=version.version,
        manifest_sha256=version.manifest_sha256,
        champion=rival,
        champion_ref=champion_version.ref if champion_version else None,
        policy=policy,
        window_start_ms=start,
        window_end_ms=end,
        trials=trials,
    )
    markdown = render_markdown(run)
    page = render_html(run, markdown)
    folder = safety_dir(config)
    reports = {
        "md": folder / report_name(run.record, "md"),
        "html": folder / report_name(run.record, "html"),
    }
    reports["md"].write_text(markdown, encoding="utf-8")
    reports["html"].write_text(page, encoding="utf-8")
    with open_configured_registry(config, create=False) as registry:
        recorded = GateRecordStore(registry).save(
            run.record,
            {reports["md"].name: markdown.encode(), reports["html"].name: page.encode()},
        )
        # Forced only to be told why not instead of raising: nothing moves, nothing is audited.
        judged = registry.clearance(version.ref, force=True, reason="gate run")
    return GateRunSummary(
        version,
        run,
        recorded,
        reports,
        cleared=judged.passed,
        clearance=judged.why,
        policy_in_force=policy.policy_hash == in_force.policy_hash,
    )


def _read_policy(registry: Registry) -> GatePolicy:
    # Read-only: the policy in force, or the defaults a first gate run would set.
    current = registry.gate_policy()
    return GatePolicy() if current is None else policy_of(current)


DEMO_POLICY = "gates-demo.yaml"
"""The bundled sample's gate policy (also docs/examples/gates-demo.yaml): two months of sample
bars cannot show a significant edge after costs, so it reports the profitability floors instead
of enforcing them and keeps every degenerate-output and lookahead check (see its comment)."""


def demo_policy() -> GatePolicy:
    """Return the bundled sample's demo gate policy (see :data:`DEMO_POLICY`)."""
    from importlib import resources

    return GatePolicy.from_file(
        Path(str(resources.files("alphaops") / "sample_data" / DEMO_POLICY))
    )


def apply_demo_policy(config: AlphaOpsConfig, *, reason: str) -> GatePolicyRecord:
    """Make the demo policy the registry's, with ``reason``, only if its gates never ran.

    A registry that has a policy (alphaops' defaults, set by its first gate run, or one a
    person set) keeps it and is returned unchanged: a demonstration never relaxes the gates of
    a registry in use.
    """
    with open_configured_registry(config) as registry:
        current = registry.gate_policy()
        if current is not None:
            return current
        return registry.set_gate_policy(demo_policy().to_dict(), reason=reason)


def set_gate_policy(config: AlphaOpsConfig, policy: GatePolicy, *, reason: str) -> GatePolicyRecord:
    """Make ``policy`` the registry's gate policy in force (audited with ``reason``)."""
    with open_configured_registry(config, create=False) as registry:
        return registry.set_gate_policy(policy.to_dict(), reason=reason)


def gate_policy_history(config: AlphaOpsConfig) -> list[GatePolicyRecord]:
    """Return every setting of the registry's gate policy, oldest first (the newest is in
    force); empty when the gates never ran and nobody set one (the defaults then apply)."""
    with open_configured_registry(config, create=False) as registry:
        return registry.gate_policy_history()


def _champion(
    registry: Registry, candidate: ModelVersion, champion: str | None
) -> ModelVersion | None:
    if champion is None:
        return None
    if champion != AUTO:
        return registry.resolve(champion)
    current = registry.aliases(candidate.key).get(CHAMPION)
    if current is None or current == candidate.version:
        return None
    return registry.get(candidate.key, current)


def check_promotion(
    config: AlphaOpsConfig, ref: str, *, force: bool = False, reason: str | None = None
) -> GateClearance:
    """Return the clearance to promote ``ref``; raise ``GateFailedError`` when refused."""
    with open_configured_registry(config, create=False) as registry:
        return clearance(registry, registry.resolve(ref), force=force, reason=reason)


def clearance(
    registry: Registry, version: ModelVersion, *, force: bool, reason: str | None
) -> GateClearance:
    """Return the gate clearance of ``version``; raise ``GateFailedError`` when refused."""
    return ensure_gates_passed(
        GateRecordStore(registry),
        version.key,
        version.version,
        manifest_sha256=version.manifest_sha256,
        force=force,
        reason=reason,
    )


def scoreboard(
    config: AlphaOpsConfig,
    symbol: str,
    *,
    window: str | None = None,
    bars: int = 1500,
    per_model: int = 5,
    policy: GatePolicy | None = None,
    candles: Candles | None = None,
) -> tuple[Scoreboard, Path]:
    """Score every model of ``symbol`` on one window; write ``scoreboard_latest.md``.

    Shown per model type: the champion, the challenger and the newest ``per_model``
    candidates. The window defaults to the last ``bars`` bars of the data.
    """
    start, end = parse_window(window)
    entries: list[ScoreboardEntry] = []
    symbol = normalize_symbol(symbol)
    with open_configured_registry(config, create=False) as registry:
        keys = [k for k in registry.list_models() if k.symbol == symbol]
        if not keys:
            raise UsageError(
                f"the registry holds no model of {symbol}",
                fix="train one first: alphaops train --symbols " + symbol,
            )
        chosen: list[tuple[ModelVersion, str]] = []
        for key in keys:
            aliases = registry.aliases(key)
            versions = registry.list_versions(key)
            for v in versions:
                role = (
                    "champion"
                    if aliases.get(CHAMPION) == v.version
                    else "challenger"
                    if aliases.get(CHALLENGER) == v.version
                    else "candidate"
                )
                newest = v.version in [x.version for x in versions[-per_model:]]
                if role != "candidate" or newest:
                    chosen.append((v, role))
        policy = policy or _read_policy(registry)
        predictors = {v.ref: BundlePredictor(registry.load(v.ref)) for v, _ in chosen}
        store = GateRecordStore(registry)
        records = {v.ref: store.latest(v) for v, _ in chosen}
    first = chosen[0][0]
    data = candles if candles is not None else _candles(config, first)
    stamps = data.timestamps_ms
    if start is None:
        start = int(stamps[max(0, len(stamps) - bars)])
    warmup = max(p.warmup_bars for p in predictors.values())
    context = evaluation_candles(data, start_ms=start, end_ms=end, warmup_bars=warmup)
    for v, role in chosen:
        scores = predictors[v.ref].score(context, start_ms=start)
        entries.append(ScoreboardEntry(v.ref, role, scores, records[v.ref], v.manifest_sha256))
    last = int(context.timestamps_ms[-1])
    when = [pd.Timestamp(t, unit="ms", tz="UTC").isoformat() for t in (start, last)]
    board = build_scoreboard(
        symbol,
        entries,
        window=f"{when[0]} → {when[1]}",
        policy=policy.scoreboard,
    )
    path = safety_dir(config) / "scoreboard_latest.md"
    path.write_text(render_scoreboard(board), encoding="utf-8")
    return board, path
