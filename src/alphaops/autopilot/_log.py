"""The autopilot's log: every step of every retrain, appended to the registry's database.

Migration ``0005`` creates ``autopilot_steps`` (append-only). A run is the retrain of one
model; its newest step is its state. Cooldown, budget and the schedule are all read back from
here, so a restarted autopilot resumes where the last one stopped.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from alphaops.registry import Registry
from alphaops.registry.refs import ModelKey

__all__ = ["FINAL_STEPS", "AutopilotLog", "Run", "RunKind", "Step"]

RunKind = Literal["scheduled", "emergency", "manual"]

FINAL_STEPS = frozenset(
    {"promoted", "rollout_started", "blocked", "failed", "safe_action", "abandoned", "cancelled"}
)
"""Steps that end a run; a run without one is running (or was cut short by a crash)."""

_metadata = MetaData()
steps_table = Table(
    "autopilot_steps",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("step", String(24), nullable=False),
    Column("version", Integer, nullable=True),
    Column("rollout_id", String(32), nullable=True),
    Column("reason", Text, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("actor", String(128), nullable=False),
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Step:
    """One step of a run, as appended."""

    id: int
    run_id: str
    at: datetime
    """The autopilot's moment (simulated in a replay)."""
    recorded_at: datetime
    """When the step was written (wall clock)."""
    key: ModelKey
    kind: RunKind
    step: str
    version: int | None
    rollout_id: str | None
    reason: str
    detail: dict[str, Any]
    actor: str


@dataclass(frozen=True)
class Run:
    """A retrain: its steps in order; the last one is where it stands."""

    run_id: str
    key: ModelKey
    kind: RunKind
    steps: list[Step] = field(default_factory=list)

    @property
    def started(self) -> datetime:
        """Return when it fired."""
        return self.steps[0].at

    @property
    def state(self) -> str:
        """Return the newest step's name."""
        return self.steps[-1].step

    @property
    def finished(self) -> bool:
        """Return whether a final step ended it."""
        return self.state in FINAL_STEPS

    @property
    def cut_short(self) -> bool:
        """Return whether it ended before deciding anything (abandoned after a crash, or
        cancelled by a stop): it neither serves its schedule time nor starts a cooldown."""
        return self.state in ("abandoned", "cancelled")

    @property
    def reason(self) -> str:
        """Return why it fired."""
        return self.steps[0].reason

    @property
    def version(self) -> int | None:
        """Return the version it produced, if any."""
        return next((s.version for s in reversed(self.steps) if s.version is not None), None)

    @property
    def due_at(self) -> datetime | None:
        """Return the scheduled time it served (scheduled runs)."""
        raw = self.steps[0].detail.get("due_at")
        return None if raw is None else _utc(datetime.fromisoformat(str(raw)))

    @property
    def training_seconds(self) -> float:
        """Return the training time it spent."""
        return float(sum(float(s.detail.get("training_seconds", 0.0)) for s in self.steps))

    @property
    def outcome(self) -> str:
        """Return one line: the final step and its reason (or the current step)."""
        last = self.steps[-1]
        return f"{last.step}: {last.reason}" if last.reason else last.step


class AutopilotLog:
    """Append and read the autopilot's steps in ``registry``'s database."""

    def __init__(self, registry: Registry, *, actor: str = "autopilot") -> None:
        self.registry = registry
        self.actor = actor

    @staticmethod
    def new_run_id() -> str:
        """Return a fresh run id."""
        return secrets.token_hex(8)

    def append(
        self,
        run_id: str,
        key: ModelKey,
        kind: RunKind,
        step: str,
        *,
        at: datetime,
        reason: str = "",
        version: int | None = None,
        rollout_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Step:
        """Append one step of run ``run_id``."""
        values = {
            "run_id": run_id,
            "at": _utc(at),
            "recorded_at": datetime.now(UTC),
            "symbol": key.symbol,
            "model_type": key.model_type,
            "kind": kind,
            "step": step,
            "version": version,
            "rollout_id": rollout_id,
            "reason": reason,
            "detail": dict(detail or {}),
            "actor": self.actor,
        }
        with self.registry.database.write() as conn:
            new = conn.execute(insert(steps_table).values(**values)).inserted_primary_key
        assert new is not None
        return _step({"id": int(new[0]), **values})

    def runs(self, key: ModelKey | None = None, *, last: int | None = None) -> list[Run]:
        """Return the runs (of one model), oldest first; ``last``: only the newest N."""
        s = steps_table
        query = select(s)
        if key is not None:
            query = query.where(s.c.symbol == key.symbol, s.c.model_type == key.model_type)
        with self.registry.database.read() as conn:
            rows = [_step(row._asdict()) for row in conn.execute(query.order_by(s.c.id))]
        runs: dict[str, Run] = {}
        for step in rows:
            run = runs.setdefault(step.run_id, Run(step.run_id, step.key, step.kind))
            run.steps.append(step)
        ordered = list(runs.values())
        return ordered if last is None else ordered[-last:]

    def open_runs(self) -> list[Run]:
        """Return the runs without a final step."""
        return [r for r in self.runs() if not r.finished]


def _step(values: Mapping[str, Any]) -> Step:
    return Step(
        id=int(values["id"]),
        run_id=str(values["run_id"]),
        at=_utc(values["at"]),
        recorded_at=_utc(values["recorded_at"]),
        key=ModelKey(str(values["symbol"]), str(values["model_type"])),
        kind=values["kind"],
        step=str(values["step"]),
        version=values["version"],
        rollout_id=values["rollout_id"],
        reason=str(values["reason"]),
        detail=dict(values["detail"] or {}),
        actor=str(values["actor"]),
    )
