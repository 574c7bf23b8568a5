"""Persisted rollouts: one active rollout per model, moved by compare-and-swap.

The registry stores what the rollout state machine (:mod:`alphaops.rollout`) decides; it does
not decide itself. Every rollout move bumps the registry generation (so running bots re-read
their routing), writes an append-only ``rollout_events`` row and, when the move touches an
alias (start sets ``challenger``, a rollback removes it, going live promotes it), the alias
move and its audit record — all in one transaction.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from alphaops.core.errors import NotFoundError, UsageError, VersionConflictError
from alphaops.registry import _schema as t
from alphaops.registry._alarms import alarm_block_in
from alphaops.registry._clearance import clearance_in
from alphaops.registry._db import as_utc
from alphaops.registry._moves import NOTIFY_CHANNEL, AliasMoves, _is, _now
from alphaops.registry._types import AliasMove
from alphaops.registry.refs import CHALLENGER, CHAMPION, PREVIOUS, ModelKey, parse_key

__all__ = ["TERMINAL_PHASES", "AliasEffect", "RolloutEvent", "RolloutRecord", "RolloutStore"]

TERMINAL_PHASES = frozenset({"live", "rolled_back"})
AliasEffect = Literal["none", "remove_challenger", "promote_challenger"]


@dataclass(frozen=True)
class RolloutRecord:
    """One stored rollout (phases are the values of :class:`alphaops.rollout.Phase`)."""

    id: str
    key: ModelKey
    challenger_version: int
    champion_version: int | None
    steps: tuple[int | None, ...]
    step: int
    phase: str
    paused_from: str | None
    percentage: int
    interval_s: float
    max_failures: int
    failures: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    reason: str

    @property
    def active(self) -> bool:
        """Return whether the rollout is still running or paused (not live, not rolled back)."""
        return self.phase not in TERMINAL_PHASES

    @property
    def shadow(self) -> bool:
        """Return whether the challenger runs in shadow now (also while paused in shadow)."""
        return self.phase == "shadow" or (self.phase == "paused" and self.paused_from == "shadow")


@dataclass(frozen=True)
class RolloutEvent:
    """One append-only record of a rollout move."""

    id: int
    rollout_id: str
    at: datetime
    actor: str
    trigger: str
    from_phase: str
    to_phase: str
    from_step: int
    to_step: int
    percentage: int
    failures: int
    analysis: dict[str, Any] | None
    reason: str
    generation: int


_ROLLOUT_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class RolloutStore(AliasMoves):
    """The rollout half of :class:`~alphaops.registry.Registry` (a mixin)."""

    def create_rollout(
        self,
        key: ModelKey | str,
        version: int,
        *,
        steps: tuple[int | None, ...],
        phase: str,
        step: int,
        percentage: int,
        interval_s: float,
        max_failures: int,
        reason: str,
        actor: str | None = None,
        force: bool = False,
        rollout_id: str | None = None,
    ) -> RolloutRecord:
        """Store a new rollout of ``version`` and point ``challenger`` at it, atomically.

        ``rollout_id`` names it (default: random); canary routing hashes it with each
        routing key, so a replay that names its rollouts routes the same way every run.

        Refuse (:class:`VersionConflictError`) when the model already has an active rollout.
        A rollout that sends the version live traffic (any canary step) needs the same gate
        clearance as a promotion (:class:`~alphaops.core.errors.GateFailedError` otherwise),
        unless ``force`` is given with a reason, which the audit log records; a shadow-only
        rollout (it never acts) needs none. Going live is checked again at the last step.
        """
        key = parse_key(key) if isinstance(key, str) else key
        actor = actor or self.actor
        if rollout_id is None:
            rollout_id = uuid.uuid4().hex[:16]
        elif not _ROLLOUT_ID.fullmatch(rollout_id):
            raise UsageError(
                f"rollout id {rollout_id!r} is not 1-32 letters, digits, '-' or '_'",
                fix="pass a short name such as 'replay-3', or none for a random id",
            )
        try:
            with self.database.write() as conn:
                gen = self._bump_generation(conn)
                self._get_in(conn, key, version)
                active = self._active_in(conn, key)
                if active is not None:
                    raise _already_active(active)
                champion = self._alias_version(conn, key, CHAMPION)
                if champion is None:
                    raise NotFoundError(
                        f"{key} has no champion for {key}/{version} to be compared with",
                        fix=f"promote a first champion: alphaops registry promote {key}/N",
                    )
                if champion == version:
                    raise UsageError(
                        f"{key}/{version} already is the champion", fix="roll out another version"
                    )
                if any(step is not None for step in steps):  # it will take live traffic
                    reason = clearance_in(
                        conn, key, version, force=force, reason=reason
                    ).audit_reason
                before = self._alias_version(conn, key, CHALLENGER)
                self._point(conn, key, CHALLENGER, version)
                note = f"rollout {rollout_id}: {reason}"
                self._record_move(
                    conn, "alias_set", key, CHALLENGER, before, version, note, actor, gen
                )
                now = _now()
                conn.execute(
                    insert(t.rollouts).values(
                        id=rollout_id,
                        symbol=key.symbol,
                        model_type=key.model_type,
                        challenger_version=version,
                        champion_version=champion,
                        steps=list(steps),
                        step=step,
                        phase=phase,
                        paused_from=None,
                        percentage=percentage,
                        interval_s=interval_s,
                        max_failures=max_failures,
                        failures=0,
                        created_at=now,
                        updated_at=now,
                        created_by=actor[:128],
                        reason=reason,
                    )
                )
                self._rollout_event(
                    conn,
                    rollout_id,
                    actor,
                    "start",
                    ("pending", -1),
                    (phase, step),
                    percentage,
                    0,
                    None,
                    reason,
                    gen,
                )
        except SqlIntegrityError as exc:  # a concurrent start won the one-active index
            raise VersionConflictError(
                f"{key} got another active rollout while this one was starting",
                fix=f"see it with: alphaops rollout status {key}",
            ) from exc
        return self.get_rollout(rollout_id)

    def transition_rollout(
        self,
        rollout_id: str,
        *,
        expect: tuple[str, int, int],
        phase: str,
        step: int,
        paused_from: str | None,
        percentage: int,
        failures: int,
        trigger: str,
        reason: str,
        analysis: dict[str, Any] | None = None,
        effect: AliasEffect = "none",
        actor: str | None = None,
    ) -> RolloutRecord:
        """Move a rollout if it still is at ``expect`` = ``(phase, step, failures)``.

        A stale expectation raises :class:`VersionConflictError` and changes nothing. The
        ``effect`` on aliases (remove the challenger, or promote it to champion with the old
        champion kept as ``previous``) happens in the same transaction, audited.
        """
        actor = actor or self.actor
        moves: list[AliasMove] = []
        with self.database.write() as conn:
            gen = self._bump_generation(conn)
            record = self._rollout_in(conn, rollout_id)
            if not reason.strip():
                raise UsageError(f"rollout {rollout_id}: {trigger} needs a reason", fix="pass one")
            if trigger == "resume":  # a rollout paused by an alarm waits for its acknowledgement
                alarm_block_in(
                    conn, record.key, force=False, reason=reason,
                    what=f"resuming rollout {rollout_id}",
                )  # fmt: skip
            done = conn.execute(
                update(t.rollouts)
                .where(
                    t.rollouts.c.id == rollout_id,
                    t.rollouts.c.phase == expect[0],
                    t.rollouts.c.step == expect[1],
                    t.rollouts.c.failures == expect[2],
                )
                .values(
                    phase=phase,
                    step=step,
                    paused_from=paused_from,
                    percentage=percentage,
                    failures=failures,
                    updated_at=_now(),
                    reason=reason,
                )
            )
            if done.rowcount != 1:
                raise VersionConflictError(
                    f"rollout {rollout_id} is {record.phase} at step {record.step} with "
                    f"{record.failures} failures, not the expected {expect[0]} at step "
                    f"{expect[1]} with {expect[2]}",
                    fix=f"re-read it (alphaops rollout status {record.key}) and retry",
                    current=[record.phase, record.step, record.failures],
                    expected=list(expect),
                )
            note = f"rollout {rollout_id}: {reason}"
            if effect != "none":
                moves.extend(self._alias_effect(conn, record, effect, note, actor, gen))
            self._rollout_event(
                conn,
                rollout_id,
                actor,
                trigger,
                (expect[0], expect[1]),
                (phase, step),
                percentage,
                failures,
                analysis,
                reason,
                gen,
            )
        for move in moves:
            self._after_move(move)
        return self.get_rollout(rollout_id)

    def _alias_effect(
        self,
        conn: Connection,
        record: RolloutRecord,
        effect: AliasEffect,
        note: str,
        actor: str,
        gen: int,
    ) -> list[AliasMove]:
        key, challenger = record.key, record.challenger_version
        moves = []
        if effect == "promote_challenger":
            # Going live is fail-closed exactly like promote: an ungated version raises here.
            note = clearance_in(conn, key, challenger, reason=note).audit_reason
            note = alarm_block_in(
                conn, key, force=False, reason=note, what=f"taking {key}/{challenger} live"
            )
            # Compare-and-swap: the champion must still be the one the rollout started against.
            current = self._check_expect(conn, key, CHAMPION, record.champion_version)
            self._point(conn, key, CHAMPION, challenger)
            if current is not None:
                self._point(conn, key, PREVIOUS, current)
            moves.append(
                self._record_move(
                    conn, "promote", key, CHAMPION, current, challenger, note, actor, gen
                )
            )
        now_challenger = self._alias_version(conn, key, CHALLENGER)
        if now_challenger == challenger:
            conn.execute(
                t.aliases.delete().where(*_is(t.aliases, key), t.aliases.c.alias == CHALLENGER)
            )
            moves.append(
                self._record_move(
                    conn, "alias_rm", key, CHALLENGER, challenger, None, note, actor, gen
                )
            )
        elif now_challenger is not None:
            raise VersionConflictError(
                f"{key}@challenger is {now_challenger}, not rollout {record.id}'s {challenger}",
                fix=f"someone moved it; inspect: alphaops registry history {key}",
                current=now_challenger,
                expected=challenger,
            )
        return moves

    def get_rollout(self, rollout_id: str) -> RolloutRecord:
        """Return one rollout by id (:class:`NotFoundError` if there is none)."""
        with self.database.read() as conn:
            return self._rollout_in(conn, rollout_id)

    def active_rollout(self, key: ModelKey | str) -> RolloutRecord | None:
        """Return the active (running or paused) rollout of ``key``, if any."""
        key = parse_key(key) if isinstance(key, str) else key
        with self.database.read() as conn:
            return self._active_in(conn, key)

    def list_rollouts(
        self, key: ModelKey | str | None = None, *, active_only: bool = False
    ) -> list[RolloutRecord]:
        """Return rollouts, oldest first, of one model or all (only active ones if asked)."""
        key = parse_key(key) if isinstance(key, str) else key
        query = select(t.rollouts).order_by(t.rollouts.c.created_at, t.rollouts.c.id)
        if key is not None:
            query = query.where(*_is(t.rollouts, key))
        if active_only:
            query = query.where(t.rollouts.c.phase.not_in(sorted(TERMINAL_PHASES)))
        with self.database.read() as conn:
            return [_record(r) for r in conn.execute(query).all()]

    def rollout_events(self, rollout_id: str) -> list[RolloutEvent]:
        """Return the events of one rollout, oldest first."""
        query = (
            select(t.rollout_events)
            .where(t.rollout_events.c.rollout_id == rollout_id)
            .order_by(t.rollout_events.c.id)
        )
        with self.database.read() as conn:
            rows = conn.execute(query).all()
        return [
            RolloutEvent(
                id=int(r.id),
                rollout_id=r.rollout_id,
                at=as_utc(r.at),
                actor=r.actor,
                trigger=r.trigger,
                from_phase=r.from_phase,
                to_phase=r.to_phase,
                from_step=int(r.from_step),
                to_step=int(r.to_step),
                percentage=int(r.percentage),
                failures=int(r.failures),
                analysis=r.analysis,
                reason=r.reason,
                generation=int(r.generation),
            )
            for r in rows
        ]

    def _active_in(self, conn: Connection, key: ModelKey) -> RolloutRecord | None:
        row = conn.execute(
            select(t.rollouts).where(
                *_is(t.rollouts, key), t.rollouts.c.phase.not_in(sorted(TERMINAL_PHASES))
            )
        ).first()
        return None if row is None else _record(row)

    def _rollout_in(self, conn: Connection, rollout_id: str) -> RolloutRecord:
        row = conn.execute(select(t.rollouts).where(t.rollouts.c.id == rollout_id)).first()
        if row is None:
            raise NotFoundError(
                f"rollout {rollout_id!r} does not exist",
                fix="list rollouts with: alphaops rollout status",
            )
        return _record(row)

    def _rollout_event(
        self,
        conn: Connection,
        rollout_id: str,
        actor: str,
        trigger: str,
        before: tuple[str, int],
        after: tuple[str, int],
        percentage: int,
        failures: int,
        analysis: dict[str, Any] | None,
        reason: str,
        gen: int,
    ) -> None:
        conn.execute(
            insert(t.rollout_events).values(
                rollout_id=rollout_id,
                at=_now(),
                actor=actor[:128],
                trigger=trigger,
                from_phase=before[0],
                to_phase=after[0],
                from_step=before[1],
                to_step=after[1],
                percentage=percentage,
                failures=failures,
                analysis=analysis,
                reason=reason,
                generation=gen,
            )
        )
        if self.database.dialect == "postgresql":  # wake listening bots (routing changed)
            payload = {"rollout": rollout_id, "phase": after[0], "generation": gen}
            conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, json.dumps(payload))))


def _already_active(active: RolloutRecord) -> VersionConflictError:
    return VersionConflictError(
        f"{active.key} already has an active rollout {active.id} of version "
        f"{active.challenger_version} ({active.phase})",
        fix=f"finish or abort it first: alphaops rollout abort {active.key} --reason '…'",
        rollout_id=active.id,
    )


def _record(row: Row[Any]) -> RolloutRecord:
    return RolloutRecord(
        id=row.id,
        key=ModelKey(row.symbol, row.model_type),
        challenger_version=int(row.challenger_version),
        champion_version=None if row.champion_version is None else int(row.champion_version),
        steps=tuple(None if s is None else int(s) for s in row.steps),
        step=int(row.step),
        phase=row.phase,
        paused_from=row.paused_from,
        percentage=int(row.percentage),
        interval_s=float(row.interval_s),
        max_failures=int(row.max_failures),
        failures=int(row.failures),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        created_by=row.created_by,
        reason=row.reason,
    )
