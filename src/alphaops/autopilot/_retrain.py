"""One retrain, step by step: train → publish → gates → rollout (or the safe action).

Each step is appended to the autopilot log as it happens; any error ends the run with a
``failed`` step (the champion never changes because of a failure).
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any, cast

from alphaops.autopilot._log import Run
from alphaops.core.errors import AlphaOpsError, CancelledError
from alphaops.registry._alarms import HOLD_ALARM
from alphaops.registry.refs import CHAMPION, ModelKey
from alphaops.training import TrainingJob

if TYPE_CHECKING:
    from datetime import datetime

    from alphaops.autopilot.engine import Autopilot, Firing
    from alphaops.data import Candles

__all__ = ["Retrain"]


class Retrain:
    """The steps of run ``run_id`` of ``firing`` at ``now``, driven by ``pilot``."""

    def __init__(self, pilot: Autopilot, firing: Firing, run_id: str, now: datetime) -> None:
        self.pilot = pilot
        self.firing = firing
        self.model = firing.model
        self.run_id = run_id
        self.now = now

    def step(self, name: str, reason: str = "", **fields: Any) -> None:
        """Append one step of this run."""
        self.pilot.log.append(
            self.run_id,
            self.model.key,
            self.firing.kind,
            name,
            at=self.now,
            reason=reason,
            version=fields.pop("version", None),
            rollout_id=fields.pop("rollout_id", None),
            detail=fields,
        )

    def run(self) -> Run:
        """Run every step; return the run as logged."""
        # Who runs it: a restarted autopilot closes it only if this process is gone.
        owner = {"host": socket.gethostname(), "pid": os.getpid()}
        self.step("fired", self.firing.reason, **self.firing.detail, **owner)
        try:
            self._run()
        except _Stop:
            pass
        except CancelledError as exc:
            self.step("cancelled", exc.message)
        except AlphaOpsError as exc:
            self.step("failed", exc.message, error=exc.code, fix=exc.fix)
        except Exception as exc:  # a bug: end the run visibly, then let the caller see it
            self.step("failed", f"internal error: {exc!r}", error="alphaops_error")
            raise
        (run,) = [r for r in self.pilot.log.runs(self.model.key) if r.run_id == self.run_id]
        return run

    def _run(self) -> None:
        if self.firing.kind == "emergency":
            self._supersede_paused_rollout()
        if self.model.refresh == "download":
            self._refresh()
        data = self.pilot.candles_before(self.model.job, self.now)
        gate_start, gate_end, train_start = self.pilot.windows(self.model, data)
        passed, ref = self._train_and_gate(self.model.job, data, gate_start, gate_end, train_start)
        self._stop_if_cancelled(ref)
        if passed:
            self._deploy(self.model.key, ref)
            return
        why = f"{ref} did not pass its gates; the champion stays"
        if self.firing.kind != "emergency":
            self.step("blocked", why, version=_version(ref))
            return
        self._safe_action(why, data, gate_start, gate_end, train_start)

    def _refresh(self) -> None:
        # Fetch what the store lacks of the window this retrain reads, up to its moment.
        from datetime import timedelta

        from alphaops.core.timeframes import Timeframe
        from alphaops.services.data import download_data

        job = self.model.job
        bars = (self.model.train_bars or 8760) + self.model.gate_bars + 64
        since = self.now - timedelta(seconds=bars * Timeframe.parse(job.timeframe).seconds)
        results = download_data(
            self.pilot.config,
            list(job.symbols),
            job.timeframe,
            since=since.isoformat(),
            until=self.now.isoformat(),
            exchange_id=self.model.exchange,
            exchange=self.pilot.exchange,
        )
        added = sum(r.added for r in results)
        self.step(
            "refreshed",
            f"{added} new candle(s) from {results[0].exchange}" if results else "nothing to fetch",
            added=added,
            requests=sum(r.requests for r in results),
        )

    def _supersede_paused_rollout(self) -> None:
        from alphaops.services.rollout import RolloutController

        registry = self.pilot.registry
        key = self.model.key
        if key not in registry.list_models():
            return
        for record in registry.list_rollouts(key, active_only=True):
            if record.phase != "paused":
                continue
            reason = f"autopilot: an emergency retrain supersedes it ({self.firing.reason})"
            RolloutController(registry, actor=self.pilot.actor).abort(key, reason=reason)
            self.step(
                "rollout_aborted",
                f"the paused rollout of v{record.challenger_version} was aborted",
                version=record.challenger_version,
                rollout_id=record.id,
            )

    def _stop_if_cancelled(self, ref: str) -> None:
        if self.pilot.cancel.cancelled:
            raise CancelledError(f"the autopilot was stopped; {ref} stays a candidate")

    def _train_and_gate(
        self,
        job: TrainingJob,
        data: dict[str, Candles],
        gate_start: int,
        gate_end: int,
        train_start: int | None,
    ) -> tuple[bool, str]:
        from alphaops.services.gates import gate_run
        from alphaops.services.training import train_models

        fields = job.to_dict() | {"start": _iso(train_start), "end": _iso(gate_start)}
        job = TrainingJob.from_dict(fields)
        if self.pilot.fault is not None:
            self.pilot.fault(job)
        started = time.perf_counter()
        summary = train_models(
            self.pilot.config,
            [job],
            executor=cast(Any, self.pilot.executor),
            max_workers=1,
            ray_address=self.pilot.ray_address,
            candles=data,
            cancel=self.pilot.cancel,
        )
        seconds = round(time.perf_counter() - started, 3)
        (outcome,) = summary.outcomes
        if outcome.status == "cancelled":
            raise CancelledError(f"training of {job.registry_symbol}/{job.model} was cancelled")
        if outcome.ref is None:
            error = outcome.error or {}
            self.step(
                "failed",
                f"training {job.registry_symbol}/{job.model} failed: "
                + str(error.get("message", "unknown error")),
                training_seconds=seconds,
                error=error.get("error", "training_failed"),
            )
            raise _Stop
        self.step(
            "published",
            f"trained on {_iso(train_start) or 'all history'} .. {_iso(gate_start)}",
            version=outcome.version,
            ref=outcome.ref,
            training_seconds=seconds,
            metrics=outcome.metrics,
        )
        window = f"{_iso(gate_start)}..{_iso(gate_end)}"
        self._stop_if_cancelled(outcome.ref)
        try:
            gates = gate_run(
                self.pilot.config,
                outcome.ref,
                window=window,
                candles=data[job.symbols[0]],
            )
        except AlphaOpsError as exc:  # a gate that cannot be evaluated is a failure
            self.step(
                "gated",
                f"gates could not run: {exc.message}",
                version=outcome.version,
                passed=False,
                window=window,
            )
            return False, outcome.ref
        failed = list(gates.run.record.failed_checks)
        self.step(
            "gated",
            "passed every gate" if gates.passed else "failed " + ", ".join(failed),
            version=outcome.version,
            passed=gates.passed,
            failed=failed,
            window=window,
        )
        return gates.passed, outcome.ref

    def _deploy(self, key: ModelKey, ref: str) -> None:
        from alphaops.services.rollout import RolloutController

        registry = self.pilot.registry
        version = _version(ref)
        champion = registry.aliases(key).get(CHAMPION)
        self._acknowledge(key, ref)
        if champion is None:
            registry.promote(
                ref,
                expect=None,
                reason=f"autopilot: first version of {key} to pass every gate",
                actor=self.pilot.actor,
            )
            self.step("promoted", f"{ref} is the first champion of {key}", version=version)
            return
        policy = self.model.rollout
        record = RolloutController(registry, actor=self.pilot.actor).start(
            ref,
            steps=policy.steps,
            interval_s=policy.interval,
            max_failures=policy.max_failures,
            reason=f"autopilot {self.firing.kind} retrain: {self.firing.reason}",
            rollout_id=None if self.pilot.rollout_ids is None else self.pilot.rollout_ids(key),
        )
        self.step(
            "rollout_started",
            f"{ref} rolls out ({policy.steps}) against champion v{champion}",
            version=version,
            rollout_id=record.id,
        )

    def _acknowledge(self, key: ModelKey, ref: str) -> None:
        # A passing retrain answers the alarms that fired it (drift) and the autopilot's own
        # earlier ones (no candidate, hold); the acknowledgement is audited like a person's.
        registry = self.pilot.registry
        opened = registry.alarms(key, open_only=True)
        ours = [a for a in opened if a.kind.startswith("autopilot_")]
        if not opened or (len(ours) < len(opened) and not self.model.acknowledge_drift):
            return
        registry.acknowledge_alarms(
            key,
            reason=f"autopilot: {ref} was retrained on recent data and passed every gate",
            actor=self.pilot.actor,
        )

    def _safe_action(
        self,
        why: str,
        data: dict[str, Candles],
        gate_start: int,
        gate_end: int,
        train_start: int | None,
    ) -> None:
        action = self.model.on_no_candidate
        key = self.model.key
        if action == "fallback":
            assert self.model.fallback_model is not None
            fields = self.model.job.to_dict() | {"model": self.model.fallback_model, "params": {}}
            job = TrainingJob.from_dict(fields)
            fallback_key = ModelKey(job.registry_symbol, job.model)
            try:
                passed, ref = self._train_and_gate(job, data, gate_start, gate_end, train_start)
            except _Stop:
                passed, ref = False, f"{fallback_key} (training failed)"
            if passed:
                self._deploy_fallback(fallback_key, ref, why)
                return
            why = f"{why}; the fallback {ref} did not pass either"
            action = "keep"
        kind = HOLD_ALARM if action == "hold" else "autopilot_no_candidate"
        summary = f"emergency ({self.firing.reason}) and no candidate passed: " + (
            "bots serve HOLD until this is acknowledged" if action == "hold" else why
        )
        alarm = self.pilot.registry.raise_alarm(
            key,
            kind=kind,
            detail={"summary": summary, "run_id": self.run_id},
            actor=self.pilot.actor,
        )
        self.step("safe_action", summary, action=action, alarm_id=alarm.id)

    def _deploy_fallback(self, key: ModelKey, ref: str, why: str) -> None:
        registry = self.pilot.registry
        champion = registry.aliases(key).get(CHAMPION)
        registry.promote(
            ref,
            expect=champion,
            reason=f"autopilot emergency fallback: {why}",
            actor=self.pilot.actor,
        )
        self.step(
            "safe_action",
            f"{why}; the fallback {ref} passed every gate and is {key}'s champion, which bots "
            "with fallback_type serve when the champion fails",
            action="fallback",
            version=_version(ref),
        )


class _Stop(Exception):
    """A step already logged why the run ends; stop without logging again."""


def _version(ref: str) -> int | None:
    tail = ref.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _iso(ms: int | None) -> str | None:
    from datetime import UTC, datetime

    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()
