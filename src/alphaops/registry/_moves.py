"""Alias moves: compare-and-swap with the generation bump and audit record in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from alphaops._version import __version__
from alphaops.core.errors import NotFoundError, UsageError, VersionConflictError
from alphaops.core.names import validate_name
from alphaops.registry import _schema as t
from alphaops.registry._alarms import alarm_block_in
from alphaops.registry._artifacts import ArtifactStore
from alphaops.registry._clearance import clearance_in
from alphaops.registry._db import Database
from alphaops.registry._types import (
    ANY,
    AliasMove,
    AnyVersion,
    ModelVersion,
    VersionStatus,
    missing_version,
)
from alphaops.registry.refs import (
    CHAMPION,
    PREVIOUS,
    RESERVED_ALIASES,
    ModelKey,
    ModelRef,
    parse_key,
    parse_ref,
)

__all__ = ["NOTIFY_CHANNEL", "AliasMoves"]

NOTIFY_CHANNEL = "alphaops_registry"

# The statements of an alias move, built once with bound parameters: SQLAlchemy then reuses
# their compiled form and each move only binds values (building statements per call cost about
# four fifths of a promote; see benchmarks/bench_registry.py).
_KEY = (
    t.aliases.c.symbol == bindparam("k_symbol"),
    t.aliases.c.model_type == bindparam("k_model_type"),
    t.aliases.c.alias == bindparam("k_alias"),
)
_ALIAS_VERSION = select(t.aliases.c.version).where(*_KEY)
_POINT = update(t.aliases).where(*_KEY)
_POINT_NEW = insert(t.aliases)
_VERSION_STATUS = select(t.versions.c.status).where(
    t.versions.c.symbol == bindparam("k_symbol"),
    t.versions.c.model_type == bindparam("k_model_type"),
    t.versions.c.version == bindparam("k_version"),
)
_BUMP = (
    update(t.registry_state)
    .where(t.registry_state.c.id == 1)
    .values(generation=t.registry_state.c.generation + 1)
)
_BUMP_RETURNING = _BUMP.returning(t.registry_state.c.generation)
_GENERATION = select(t.registry_state.c.generation).where(t.registry_state.c.id == 1)
_AUDIT = insert(t.audit_log)


class AliasMoves:
    """The alias-moving half of :class:`~alphaops.registry.Registry` (a mixin)."""

    database: Database
    artifacts: ArtifactStore
    actor: str
    host: str

    def _get_in(self, conn: Connection, key: ModelKey, version: int) -> ModelVersion:
        raise NotImplementedError  # provided by Registry

    def _require_ready(self, conn: Connection, key: ModelKey, version: int) -> None:
        status = conn.execute(
            _VERSION_STATUS,
            {"k_symbol": key.symbol, "k_model_type": key.model_type, "k_version": version},
        ).scalar()
        if status != VersionStatus.READY.value:
            raise missing_version(key, version, status)

    def aliases(self, key: ModelKey | str) -> dict[str, int]:
        """Return ``{alias: version}`` for ``key``."""
        raise NotImplementedError  # provided by Registry

    def promote(
        self,
        ref: str | ModelRef,
        *,
        expect: int | AnyVersion | None,
        reason: str,
        actor: str | None = None,
        alias: str = CHAMPION,
        force: bool = False,
    ) -> AliasMove:
        """Point ``alias`` (default ``champion``) at ``ref`` if it currently is ``expect``.

        ``expect`` is the version the caller believes is current (``None``: no version yet;
        :data:`ANY` skips the check). A stale expectation raises
        :class:`VersionConflictError` and changes nothing. Promoting the champion moves the
        old champion to ``previous``. The audit record is written in the same transaction.

        Promotion to champion is fail-closed: unless the newest gate run of the version passed
        on its exact manifest, :class:`~alphaops.core.errors.GateFailedError` is raised and
        nothing moves. ``force=True`` with a ``reason`` promotes anyway; the audit log records
        the reason marked ``[FORCED past gates: …]``.
        """
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        alias = validate_name(alias, kind="alias")
        if alias in RESERVED_ALIASES - {CHAMPION}:
            raise UsageError(
                f"cannot promote to {alias!r}", fix="promote to 'champion' or a user alias"
            )
        with self.database.write() as conn:
            gen = self._bump_generation(conn)
            version = parsed.version
            if version is None:
                assert parsed.alias is not None
                version = self._alias_version(conn, parsed.key, parsed.alias)
                if version is None:
                    raise NotFoundError(f"{parsed} is not set", fix="name a version number")
            self._require_ready(conn, parsed.key, version)
            current = self._check_expect(conn, parsed.key, alias, expect)
            if alias == CHAMPION:
                reason = clearance_in(
                    conn, parsed.key, version, force=force, reason=reason
                ).audit_reason
                reason = alarm_block_in(
                    conn, parsed.key, force=force, reason=reason,
                    what=f"promoting {parsed.key}/{version}",
                )  # fmt: skip
            if current == version:
                raise UsageError(
                    f"{parsed.key}/{version} already is {alias}", fix="promote another version"
                )
            self._point(conn, parsed.key, alias, version)
            if alias == CHAMPION and current is not None:
                self._point(conn, parsed.key, PREVIOUS, current)
            move = self._record_move(
                conn, "promote", parsed.key, alias, current, version, reason, actor, gen
            )
        return self._after_move(move)

    def rollback(
        self,
        key: ModelKey | str,
        *,
        reason: str,
        actor: str | None = None,
        expect: int | AnyVersion | None = ANY,
        to: int | None = None,
    ) -> AliasMove:
        """Make ``previous`` the champion again, walking back the champion history.

        ``previous`` then moves one step further back: to the champion before the restored
        one, skipping every version a rollback ever left (and the one left now), or it is
        removed when there is none. So repeated rollbacks go 3 → 2 → 1 and never return to a
        version that was rolled back from; ``to`` names a former champion explicitly (that may
        be one that was rolled back from). A version that was never champion is promoted, not
        rolled back to.
        """
        key = parse_key(key) if isinstance(key, str) else key
        with self.database.write() as conn:
            gen = self._bump_generation(conn)
            current = self._check_expect(conn, key, CHAMPION, expect)
            tenures, left = _champion_history(conn, key)
            if to is not None:
                if to not in tenures:
                    raise UsageError(
                        f"{key}/{to} was never the champion, so it cannot be rolled back to",
                        fix=f"promote it instead: alphaops registry promote {key}/{to}",
                    )
                if to == current:
                    raise UsageError(f"{key}/{to} is the champion", fix="name a former champion")
                target: int | None = to
            else:
                target = self._alias_version(conn, key, PREVIOUS)
            if target is None:
                raise NotFoundError(
                    f"{key} has no previous version to roll back to"
                    + (" (every earlier champion was rolled back from)" if tenures else ""),
                    fix=f"promote a version explicitly: alphaops registry promote {key}/N",
                )
            self._require_ready(conn, key, target)
            skip = left | {target} | ({current} if current is not None else set())
            earlier = _before(tenures, target, skip)
            after = next((v for v in earlier if self._is_ready(conn, key, v)), None)
            self._point(conn, key, CHAMPION, target)
            if after is None:
                conn.execute(
                    t.aliases.delete().where(*_is(t.aliases, key), t.aliases.c.alias == PREVIOUS)
                )
            else:
                self._point(conn, key, PREVIOUS, after)
            move = self._record_move(
                conn, "rollback", key, CHAMPION, current, target, reason, actor, gen
            )
        return self._after_move(move)

    def _is_ready(self, conn: Connection, key: ModelKey, version: int) -> bool:
        status = conn.execute(
            _VERSION_STATUS,
            {"k_symbol": key.symbol, "k_model_type": key.model_type, "k_version": version},
        ).scalar()
        return bool(status == VersionStatus.READY.value)

    def set_alias(
        self,
        key: ModelKey | str,
        alias: str,
        version: int,
        *,
        reason: str,
        actor: str | None = None,
        expect: int | AnyVersion | None = ANY,
    ) -> AliasMove:
        """Point a user alias or ``challenger`` at ``version`` (compare-and-swap with ``expect``)."""
        key = parse_key(key) if isinstance(key, str) else key
        alias = _user_alias(alias)
        with self.database.write() as conn:
            gen = self._bump_generation(conn)
            self._require_ready(conn, key, version)
            current = self._check_expect(conn, key, alias, expect)
            self._point(conn, key, alias, version)
            move = self._record_move(
                conn, "alias_set", key, alias, current, version, reason, actor, gen
            )
        return self._after_move(move)

    def remove_alias(
        self,
        key: ModelKey | str,
        alias: str,
        *,
        reason: str,
        actor: str | None = None,
        expect: int | AnyVersion | None = ANY,
    ) -> AliasMove:
        """Remove a user alias or ``challenger`` (compare-and-swap with ``expect``)."""
        key = parse_key(key) if isinstance(key, str) else key
        alias = _user_alias(alias)
        with self.database.write() as conn:
            gen = self._bump_generation(conn)
            current = self._check_expect(conn, key, alias, expect)
            if current is None:
                raise NotFoundError(
                    f"{key}@{alias} is not set", fix="list aliases with 'registry show'"
                )
            conn.execute(t.aliases.delete().where(*_is(t.aliases, key), t.aliases.c.alias == alias))
            move = self._record_move(
                conn, "alias_rm", key, alias, current, None, reason, actor, gen
            )
        return self._after_move(move)

    def _check_expect(
        self, conn: Connection, key: ModelKey, alias: str, expect: int | AnyVersion | None
    ) -> int | None:
        current = self._alias_version(conn, key, alias)
        if expect is not ANY and current != expect:
            raise VersionConflictError(
                f"{key}@{alias} is {_v(current)}, not the expected {_v(expect)}",
                fix=f"re-read it (alphaops registry show {key}@{alias}) and retry with "
                f"--expect {_v(current)}",
                current=current,
                expected=expect,
            )
        return current

    def _alias_version(self, conn: Connection, key: ModelKey, alias: str) -> int | None:
        value = conn.execute(
            _ALIAS_VERSION,
            {"k_symbol": key.symbol, "k_model_type": key.model_type, "k_alias": alias},
        ).scalar()
        return None if value is None else int(value)

    def _point(self, conn: Connection, key: ModelKey, alias: str, version: int) -> None:
        now = _now()
        where = {"k_symbol": key.symbol, "k_model_type": key.model_type, "k_alias": alias}
        if conn.execute(_POINT, where | {"version": version, "updated_at": now}).rowcount == 0:
            conn.execute(
                _POINT_NEW,
                {
                    "symbol": key.symbol,
                    "model_type": key.model_type,
                    "alias": alias,
                    "version": version,
                    "updated_at": now,
                },
            )

    def _bump_generation(self, conn: Connection) -> int:
        # The first statement of every alias move: it also serializes moves on PostgreSQL.
        if conn.dialect.update_returning:
            return int(conn.execute(_BUMP_RETURNING).scalar_one())
        conn.execute(_BUMP)
        return self._generation_in(conn)

    def _generation_in(self, conn: Connection) -> int:
        return int(conn.execute(_GENERATION).scalar_one())

    def _record_move(
        self,
        conn: Connection,
        action: str,
        key: ModelKey,
        alias: str,
        before: int | None,
        after: int | None,
        reason: str,
        actor: str | None,
        gen: int,
    ) -> AliasMove:
        at = self._audit(conn, action, key, alias, before, after, reason, actor or self.actor, gen)
        if self.database.dialect == "postgresql":
            payload = {
                "key": str(key),
                "alias": alias,
                "from": before,
                "to": after,
                "generation": gen,
            }
            conn.execute(
                select(func.pg_notify(NOTIFY_CHANNEL, json.dumps(payload, sort_keys=True)))
            )
        return AliasMove(key, alias, before, after, gen, at)

    def _after_move(self, move: AliasMove) -> AliasMove:
        # The link follows the committed champion, never the other way round.
        if move.alias == CHAMPION:
            self.sync_latest_link(move.key, move.to_version)
        return move

    def _audit(
        self,
        conn: Connection,
        action: str,
        key: ModelKey,
        alias: str | None,
        before: int | None,
        after: int | None,
        reason: str,
        actor: str,
        gen: int,
    ) -> datetime:
        if not reason or not reason.strip():
            raise UsageError(f"{action} of {key} needs a reason", fix="pass --reason '…'")
        at = _now()
        conn.execute(
            _AUDIT,
            {
                "at": at,
                "actor": actor[:128],
                "action": action,
                "symbol": key.symbol,
                "model_type": key.model_type,
                "alias": alias,
                "from_version": before,
                "to_version": after,
                "reason": reason,
                "host": self.host[:255],
                "code_version": __version__,
                "generation": gen,
            },
        )
        return at

    def sync_latest_link(self, key: ModelKey, version: int | None = None) -> None:
        """Point the local ``latest`` symlink at the champion (no-op on remote stores)."""
        if not self.artifacts.local:
            return
        if version is None:
            version = self.aliases(key).get(CHAMPION)
        self.artifacts.fs.point_link(
            self.artifacts.latest_link(key), None if version is None else str(version)
        )


def _champion_history(conn: Connection, key: ModelKey) -> tuple[list[int], set[int]]:
    """Return the champions in the order they took office, and the versions rolled back from."""
    rows = conn.execute(
        select(t.audit_log.c.action, t.audit_log.c.from_version, t.audit_log.c.to_version)
        .where(
            *_is(t.audit_log, key),
            t.audit_log.c.alias == CHAMPION,
            t.audit_log.c.action.in_(("promote", "rollback")),
        )
        .order_by(t.audit_log.c.id)
    ).all()
    tenures = [int(r.to_version) for r in rows if r.to_version is not None]
    left = {int(r.from_version) for r in rows if r.action == "rollback" and r.from_version}
    return tenures, left


def _before(tenures: list[int], target: int, skip: set[int]) -> list[int]:
    """Return the champions before ``target``'s latest tenure, newest first, minus ``skip``."""
    last = max(i for i, v in enumerate(tenures) if v == target) if target in tenures else 0
    seen: list[int] = []
    for version in reversed(tenures[:last]):
        if version not in skip and version not in seen:
            seen.append(version)
    return seen


def _is(table: Any, key: ModelKey) -> Sequence[Any]:
    return (table.c.symbol == key.symbol, table.c.model_type == key.model_type)


def _user_alias(alias: str) -> str:
    alias = validate_name(alias, kind="alias")
    if alias in RESERVED_ALIASES:
        raise UsageError(
            f"alias {alias!r} moves only by promote or rollback",
            fix="use 'registry promote' / 'registry rollback', or pick another alias name",
        )
    return alias


def _v(value: int | AnyVersion | None) -> str:
    return (
        "unset" if value is None else str(value.value if isinstance(value, AnyVersion) else value)
    )


def _now() -> datetime:
    return datetime.now(UTC)
