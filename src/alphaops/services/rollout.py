"""Rollout use cases: start, advance, pause, resume, abort, and apply an interval's analysis.

The decisions come from the pure state machine in :mod:`alphaops.rollout`; the registry stores
them by compare-and-swap together with their alias moves (challenger set at start, removed on
rollback; promoted to champion, old champion kept as ``previous``, when the last step passes).
Going live is fail-closed through the same gate clearance as ``registry promote``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import NotFoundError, UsageError, VersionConflictError
from alphaops.registry import ModelKey, Registry, RolloutEvent, RolloutRecord, parse_ref
from alphaops.registry._rollouts import AliasEffect
from alphaops.rollout import (
    AnalysisPolicy,
    IntervalStats,
    Phase,
    RolloutState,
    Step,
    Trigger,
    Verdict,
    judge,
    parse_steps,
)
from alphaops.services._common import open_configured_registry
from alphaops.services.registry import RegistryLocation

__all__ = [
    "AnalysisOutcome",
    "RolloutController",
    "controller",
    "event_to_dict",
    "rollout_to_dict",
    "state_of",
]


def state_of(record: RolloutRecord) -> RolloutState:
    """Return the state-machine view of a stored rollout."""
    return RolloutState(
        rollout_id=record.id,
        steps=record.steps,
        max_failures=record.max_failures,
        phase=Phase(record.phase),
        step=record.step,
        failures=record.failures,
        paused_from=None if record.paused_from is None else Phase(record.paused_from),
        reason=record.reason,
    )


@dataclass(frozen=True)
class AnalysisOutcome:
    """What one interval's analysis decided and where the rollout is now."""

    verdict: Verdict
    detail: str
    rollout: RolloutRecord


class RolloutController:
    """Drive the rollouts stored in ``registry`` (one active rollout per SYMBOL/TYPE)."""

    def __init__(self, registry: Registry, *, actor: str | None = None) -> None:
        self.registry = registry
        self.actor = actor

    def start(
        self,
        ref: str,
        *,
        steps: str | tuple[Step, ...] = "shadow,10,50,100",
        interval_s: float = 3600.0,
        max_failures: int = 3,
        reason: str = "rollout",
        force: bool = False,
        rollout_id: str | None = None,
    ) -> RolloutRecord:
        """Make ``ref`` the challenger and start its rollout at the first step.

        A rollout with canary steps needs the version's gates to have passed (or ``force``
        with a reason, audited); a shadow-only rollout does not. See
        :meth:`~alphaops.registry.Registry.create_rollout`.

        >>> import tempfile, pathlib
        >>> from alphaops.registry import open_registry
        >>> from alphaops.registry.testing import build_tiny_bundle, publish_cleared
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> reg = open_registry(tmp / "home")
        >>> for seed in (1, 2):
        ...     _ = publish_cleared(reg, build_tiny_bundle(tmp / f"b{seed}", seed=seed))
        >>> _ = reg.promote("BTCUSDT/logreg/1", expect=None, reason="first")
        >>> r = RolloutController(reg).start("BTCUSDT/logreg/2", steps="shadow,10,100")
        >>> r.phase, r.percentage, reg.aliases("BTCUSDT/logreg")["challenger"]
        ('shadow', 0, 2)
        >>> reg.close()
        """
        if interval_s <= 0:
            raise UsageError(f"interval {interval_s}s must be positive", fix="pass e.g. 1h")
        parsed = parse_ref(ref)
        version = self.registry.resolve(parsed).version
        plan = parse_steps(steps) if isinstance(steps, str) else steps
        first = RolloutState.start("new", steps=plan, max_failures=max_failures).fire(
            Trigger.ADVANCE
        )
        return self.registry.create_rollout(
            parsed.key,
            version,
            steps=plan,
            phase=first.phase.value,
            step=first.step,
            percentage=first.percentage,
            interval_s=interval_s,
            max_failures=max_failures,
            reason=reason,
            actor=self.actor,
            force=force,
            rollout_id=rollout_id,
        )

    def status(self, key: ModelKey | str | None = None) -> list[RolloutRecord]:
        """Return the active rollouts (of one model, or all)."""
        return self.registry.list_rollouts(key, active_only=True)

    def active(self, key: ModelKey | str) -> RolloutRecord:
        """Return the active rollout of ``key``; :class:`NotFoundError` if there is none."""
        found = self.registry.active_rollout(key)
        if found is None:
            raise NotFoundError(
                f"{key} has no active rollout",
                fix=f"start one: alphaops rollout start {key}/N --steps shadow,10,50,100",
            )
        return found

    def advance(self, key: ModelKey | str, *, reason: str = "advanced by hand") -> RolloutRecord:
        """Move to the next step; past the last step promote the challenger (gates first)."""
        return self._fire(self.active(key), Trigger.ADVANCE, reason)

    def pause(self, key: ModelKey | str, *, reason: str = "paused by hand") -> RolloutRecord:
        """Hold the rollout where it is (routing stays as it was; nothing is promoted)."""
        return self._fire(self.active(key), Trigger.PAUSE, reason)

    def resume(self, key: ModelKey | str, *, reason: str = "resumed by hand") -> RolloutRecord:
        """Continue a paused rollout at the phase it was paused in."""
        return self._fire(self.active(key), Trigger.RESUME, reason)

    def abort(self, key: ModelKey | str, *, reason: str) -> RolloutRecord:
        """Roll back: remove the challenger (audited); the champion never changed."""
        return self._fire(self.active(key), Trigger.ABORT, reason)

    def analyse(
        self,
        key: ModelKey | str,
        stats: IntervalStats,
        policy: AnalysisPolicy | None = None,
        *,
        expect: RolloutRecord | None = None,
    ) -> AnalysisOutcome:
        """Judge one interval: pass advances (the last step promotes), inconclusive pauses,
        the ``max_failures``-th failure rolls back.

        ``expect`` is the rollout as it was when the interval was measured: if it has moved
        since (another step, phase or failure count), the stats describe another interval and
        :class:`~alphaops.core.errors.VersionConflictError` is raised instead.
        """
        record = self.active(key)
        if expect is not None and _position(record) != _position(expect):
            raise VersionConflictError(
                f"rollout {record.id} of {record.key} is {record.phase} at step {record.step} "
                f"with {record.failures} failures, not the measured {expect.phase} at step "
                f"{expect.step} with {expect.failures} (id {expect.id})",
                fix="measure a new interval on the rollout as it is now",
            )
        verdict, detail = judge(stats, policy or AnalysisPolicy())
        state = state_of(record)
        nxt = state.after_analysis(verdict, detail=detail)
        trigger = {
            Verdict.PASS: Trigger.ADVANCE,
            Verdict.INCONCLUSIVE: Trigger.PAUSE,
            Verdict.FAIL: Trigger.FAIL,
        }[verdict]
        analysis = {"verdict": verdict.value, "detail": detail, "stats": asdict(stats)}
        done = self._apply(record, state, nxt, trigger, nxt.reason or detail, analysis)
        return AnalysisOutcome(verdict, detail, done)

    def _fire(self, record: RolloutRecord, trigger: Trigger, reason: str) -> RolloutRecord:
        state = state_of(record)
        return self._apply(record, state, state.fire(trigger, reason=reason), trigger, reason, None)

    def _apply(
        self,
        record: RolloutRecord,
        state: RolloutState,
        nxt: RolloutState,
        trigger: Trigger,
        reason: str,
        analysis: dict[str, Any] | None,
    ) -> RolloutRecord:
        effect: AliasEffect = "none"
        if nxt.phase == Phase.ROLLED_BACK:
            effect = "remove_challenger"
        elif nxt.phase == Phase.LIVE:
            # Fail closed exactly like `registry promote`: the registry refuses an uncleared
            # challenger inside the same transaction (GateFailedError), from its own gate log.
            effect = "promote_challenger"
        return self.registry.transition_rollout(
            record.id,
            expect=(state.phase.value, state.step, state.failures),
            phase=nxt.phase.value,
            step=nxt.step,
            paused_from=None if nxt.paused_from is None else nxt.paused_from.value,
            percentage=nxt.percentage,
            failures=nxt.failures,
            trigger=trigger.value,
            reason=reason or trigger.value,
            analysis=analysis,
            effect=effect,
            actor=self.actor,
        )


def _position(record: RolloutRecord) -> tuple[str, str, int, int]:
    return record.id, record.phase, record.step, record.failures


@contextmanager
def controller(
    config: AlphaOpsConfig, where: RegistryLocation | None = None
) -> Iterator[RolloutController]:
    """Open the configured registry and yield a controller over it (closed afterwards)."""
    where = where or RegistryLocation()
    with open_configured_registry(
        config, database_url=where.database_url, artifacts=where.artifacts, create=False
    ) as registry:  # a rollout needs published versions: never a new, empty registry
        yield RolloutController(registry)


def rollout_to_dict(record: RolloutRecord) -> dict[str, Any]:
    """Return a JSON-ready rollout (what ``--json`` prints)."""
    return {
        "id": record.id,
        "model": str(record.key),
        "challenger": record.challenger_version,
        "champion_at_start": record.champion_version,
        "steps": ["shadow" if s is None else s for s in record.steps],
        "step": record.step,
        "phase": record.phase,
        "paused_from": record.paused_from,
        "percentage": record.percentage,
        "shadow": record.shadow,
        "interval_s": record.interval_s,
        "max_failures": record.max_failures,
        "failures": record.failures,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "created_by": record.created_by,
        "reason": record.reason,
    }


def event_to_dict(event: RolloutEvent) -> dict[str, Any]:
    """Return a JSON-ready rollout event."""
    return {
        "at": event.at.isoformat(),
        "actor": event.actor,
        "trigger": event.trigger,
        "from": event.from_phase,
        "to": event.to_phase,
        "percentage": event.percentage,
        "failures": event.failures,
        "analysis": event.analysis,
        "reason": event.reason,
    }
