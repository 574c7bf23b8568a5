"""Autopilot use cases: what ``alphaops autopilot …`` (and the HTTP API) call."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alphaops.autopilot import Autopilot, AutopilotLog, AutopilotPolicy, ModelStatus, Run
from alphaops.autopilot import load_policy as _load_policy
from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import CancelledError
from alphaops.registry.refs import ModelKey, parse_key
from alphaops.services._common import open_configured_registry

__all__ = [
    "autopilot_check",
    "autopilot_history",
    "autopilot_status",
    "load_policy",
    "run_autopilot",
    "run_to_dict",
    "status_to_dict",
]


def load_policy(path: Path) -> AutopilotPolicy:
    """Read and validate an autopilot policy file."""
    return _load_policy(path)


def autopilot_check(
    config: AlphaOpsConfig,
    policy: AutopilotPolicy,
    *,
    now: datetime | None = None,
    executor: str = "process",
) -> list[Run]:
    """Run one pass of the autopilot now (for cron users, drills and tests)."""
    with Autopilot(config, policy, executor=executor) as pilot:
        return pilot.check(now)


def autopilot_status(
    config: AlphaOpsConfig, policy: AutopilotPolicy, *, now: datetime | None = None
) -> list[ModelStatus]:
    """Return where every model of ``policy`` stands."""
    with open_configured_registry(config, create=False) as registry:
        pilot = Autopilot(config, policy, registry=registry, executor="sequential")
        return pilot.status(now)


def autopilot_history(
    config: AlphaOpsConfig, key: str | None = None, *, last: int | None = 20
) -> list[Run]:
    """Return the autopilot's runs (of one model), oldest first."""
    with open_configured_registry(config, create=False) as registry:
        parsed: ModelKey | None = None if key is None else registry.require_model(parse_key(key))
        return AutopilotLog(registry).runs(parsed, last=last)


def run_autopilot(
    config: AlphaOpsConfig,
    policy: AutopilotPolicy,
    *,
    executor: str = "process",
    ray_address: str | None = None,
    on_runs: Any = None,
    on_error: Any = None,
    until: float | None = None,
) -> None:
    """Run the autopilot until Ctrl-C or SIGTERM (or ``until`` seconds, for drills).

    A signal lets the running step end (a training under way is cancelled, its run logged
    ``cancelled``), then raises :class:`CancelledError` (exit 130, or 143 for SIGTERM).
    """
    from alphaops.autopilot.service import AutopilotThread
    from alphaops.training._control import interrupts_cancel

    thread = AutopilotThread(
        config,
        policy,
        executor=executor,
        ray_address=ray_address,
        on_runs=on_runs,
        on_error=on_error,
    )
    started = time.monotonic()
    token = thread.pilot.cancel
    with interrupts_cancel(token):
        thread.start()
        try:
            while not token.cancelled and (until is None or time.monotonic() - started < until):
                time.sleep(0.2)
        finally:
            thread.stop()
    if token.cancelled:
        raise CancelledError(
            "the autopilot stopped; the running step ended cleanly",
            fix="start it again: it resumes from the registry and the journal",
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def run_to_dict(run: Run) -> dict[str, Any]:
    """Return a run as JSON-ready data."""
    return {
        "run_id": run.run_id,
        "model": str(run.key),
        "kind": run.kind,
        "state": run.state,
        "version": run.version,
        "started": _iso(run.started),
        "reason": run.reason,
        "outcome": run.outcome,
        "steps": [
            {
                "at": _iso(s.at),
                "step": s.step,
                "version": s.version,
                "rollout_id": s.rollout_id,
                "reason": s.reason,
                "detail": s.detail,
            }
            for s in run.steps
        ],
    }


def status_to_dict(status: ModelStatus) -> dict[str, Any]:
    """Return a model's status as JSON-ready data."""
    return {
        "model": str(status.key),
        "healthy": status.healthy,
        "champion": status.champion,
        "next_scheduled": _iso(status.next_scheduled),
        "cooldown_until": _iso(status.cooldown_until),
        "alarm": status.alarm,
        "last_run": None if status.last_run is None else run_to_dict(status.last_run),
    }
