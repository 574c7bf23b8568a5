"""Drift alarms: raised by a monitor, they block the model's promotion until acknowledged.

The tables are append-only: an alarm is acknowledged by appending an acknowledgement. These
helpers run inside the registry's write transactions (see :meth:`Registry.raise_alarm`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from alphaops.core.errors import DriftAlarmError
from alphaops.registry import _schema as t
from alphaops.registry._db import as_utc
from alphaops.registry.refs import ModelKey

__all__ = [
    "HOLD_ALARM",
    "Alarm",
    "acknowledge_in",
    "alarm_block_in",
    "alarms_in",
    "insert_alarm",
]

HOLD_ALARM = "autopilot_hold"
"""The alarm kind that makes every bot serving the model hold (act HOLD) until acknowledged."""


@dataclass(frozen=True)
class Alarm:
    """A drift alarm of a model, and its acknowledgement once someone gave one."""

    id: int
    at: datetime
    key: ModelKey
    version: int | None
    kind: str
    detail: dict[str, Any]
    actor: str
    rollout_id: str | None
    """The rollout it paused, if one was active."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledgement: str | None = None

    @property
    def open(self) -> bool:
        """Return whether it still blocks promotion."""
        return self.acknowledged_at is None

    @property
    def summary(self) -> str:
        """Return one line: the kind, the version and the monitor's summary if any."""
        what = f"{self.kind} on {self.key}" + ("" if self.version is None else f"/{self.version}")
        note = self.detail.get("summary")
        return f"{what}: {note}" if note else what


def insert_alarm(
    conn: Connection,
    key: ModelKey,
    *,
    at: datetime,
    version: int | None,
    kind: str,
    detail: Mapping[str, Any],
    actor: str,
    rollout_id: str | None,
) -> int:
    """Append an alarm; return its id."""
    result = conn.execute(
        insert(t.alarms).values(
            at=at,
            symbol=key.symbol,
            model_type=key.model_type,
            version=version,
            kind=kind[:32],
            detail=json.loads(json.dumps(dict(detail), default=str)),
            actor=actor[:128],
            rollout_id=rollout_id,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def alarms_in(conn: Connection, key: ModelKey, *, open_only: bool = False) -> list[Alarm]:
    """Return the alarms of ``key`` (oldest first), with their acknowledgements."""
    a, k = t.alarms, t.alarm_acks
    query = (
        select(a, k.c.at.label("ack_at"), k.c.actor.label("ack_by"), k.c.reason.label("ack"))
        .outerjoin(k, k.c.alarm_id == a.c.id)
        .where(a.c.symbol == key.symbol, a.c.model_type == key.model_type)
        .order_by(a.c.id)
    )
    if open_only:
        query = query.where(k.c.alarm_id.is_(None))
    found = []
    for row in conn.execute(query):
        detail = json.loads(row.detail) if isinstance(row.detail, str) else row.detail
        found.append(
            Alarm(
                row.id,
                as_utc(row.at),
                key,
                row.version,
                row.kind,
                dict(detail or {}),
                row.actor,
                row.rollout_id,
                None if row.ack_at is None else as_utc(row.ack_at),
                row.ack_by,
                row.ack,
            )
        )
    return found


def acknowledge_in(
    conn: Connection, key: ModelKey, *, at: datetime, actor: str, reason: str
) -> list[Alarm]:
    """Acknowledge every open alarm of ``key``; return them (acknowledged)."""
    opened = alarms_in(conn, key, open_only=True)
    for alarm in opened:
        conn.execute(
            insert(t.alarm_acks).values(alarm_id=alarm.id, at=at, actor=actor[:128], reason=reason)
        )
    return alarms_in(conn, key)[-len(opened) :] if opened else []


def alarm_block_in(conn: Connection, key: ModelKey, *, force: bool, reason: str, what: str) -> str:
    """Refuse ``what`` (a promotion, going live) while ``key`` has an open alarm, unless forced;
    return the audit reason (marked when forced past an alarm)."""
    opened = alarms_in(conn, key, open_only=True)
    if not opened:
        return reason
    listed = "; ".join(f"#{a.id} {a.summary}" for a in opened[:3])
    if force and reason.strip():
        return f"[FORCED past drift alarm {', '.join(f'#{a.id}' for a in opened)}] {reason}"
    raise DriftAlarmError(
        f"{what} is blocked: {len(opened)} drift alarm(s) of {key} not acknowledged ({listed})",
        fix=f"look at it (alphaops monitor {key}), then acknowledge it: alphaops alarm ack {key} "
        "--reason '…' (or force with a reason)",
        alarms=[a.id for a in opened],
    )
