"""Use cases of ``alphaops serve``: reads and mutations over one open registry, as a caller.

The HTTP routes call these and render; they call the same registry moves and the same
:class:`~alphaops.services.rollout.RolloutController` as ``alphaops registry …`` and
``alphaops rollout …``, but over the server's long-lived registry and with the caller's
identity (``token:NAME``) as the audit log's actor. :class:`IdempotencyStore` keeps the
answer to a mutation sent with an ``Idempotency-Key`` so that a retry does not act twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from alphaops.core.errors import UsageError, VersionConflictError
from alphaops.registry import AnyVersion, Database, ModelKey, Registry, RolloutRecord, parse_key
from alphaops.registry.refs import CHAMPION
from alphaops.services.registry import (
    audit_to_dict,
    gate_run_to_dict,
    move_to_dict,
    parse_expect,
    version_to_dict,
)
from alphaops.services.rollout import RolloutController, event_to_dict, rollout_to_dict

__all__ = [
    "IdempotencyStore",
    "RolloutAction",
    "StoredResponse",
    "model_detail",
    "models_overview",
    "promote",
    "rollback",
    "rollout_action",
    "rollouts_of",
    "start_rollout",
    "version_detail",
]

RolloutAction = Literal["advance", "pause", "resume", "abort"]

_metadata = MetaData()
_idempotency = Table(
    "idempotency_keys",
    _metadata,
    Column("token_name", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("status", Integer, nullable=True),
    Column("response", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("token_name", "key", name="pk_idempotency_keys"),
)


def _expect(value: int | str | None) -> int | AnyVersion | None:
    return parse_expect(None if value is None else str(value))


# -- reads --------------------------------------------------------------------------------


def models_overview(registry: Registry) -> list[dict[str, Any]]:
    """Return every model with its aliases and active rollout (the dashboard's first page)."""
    out = []
    active = {str(r.key): r for r in registry.list_rollouts(active_only=True)}
    for key in registry.list_models():
        rollout = active.get(str(key))
        out.append(
            {
                "model": str(key),
                "symbol": key.symbol,
                "model_type": key.model_type,
                "aliases": registry.aliases(key),
                "rollout": None if rollout is None else rollout_to_dict(rollout),
                "open_alarms": len(registry.alarms(key, open_only=True)),
            }
        )
    return out


def model_detail(registry: Registry, key: str) -> dict[str, Any]:
    """Return one model: aliases, versions with their newest gate verdict, open alarms."""
    parsed = parse_key(key)
    versions = registry.list_versions(parsed)
    verdicts = registry.gate_verdicts(parsed)
    return {
        "model": str(parsed),
        "aliases": registry.aliases(parsed),
        "versions": [
            {
                "ref": v.ref,
                "version": v.version,
                "aliases": list(v.aliases),
                "created_at": v.created_at.isoformat(),
                "created_by": v.created_by,
                "metrics": v.manifest.metrics,
                "gates_passed": verdicts.get(v.ref),
            }
            for v in versions
        ],
        "alarms": [
            {"id": a.id, "at": a.at.isoformat(), "kind": a.kind, "open": a.open}
            for a in registry.alarms(parsed)
        ],
    }


def version_detail(registry: Registry, ref: str) -> dict[str, Any]:
    """Return one version: its manifest summary and its newest gate run (with reports)."""
    found = registry.resolve(ref)
    return version_to_dict(found) | {"gates": gate_run_to_dict(registry.latest_gates(found))}


def rollouts_of(registry: Registry, key: str) -> list[dict[str, Any]]:
    """Return the rollouts of one model, newest first, each with its events."""
    return [
        rollout_to_dict(r) | {"events": [event_to_dict(e) for e in registry.rollout_events(r.id)]}
        for r in reversed(registry.list_rollouts(parse_key(key)))
    ]


def history_of(registry: Registry, key: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Return the audit log of one model, oldest first."""
    return [audit_to_dict(r) for r in registry.history(parse_key(key), limit=limit)]


# -- mutations (each audited with ``actor``) ----------------------------------------------


def promote(
    registry: Registry,
    key: str,
    version: int,
    *,
    expect: int | str | None,
    reason: str,
    actor: str,
    alias: str = CHAMPION,
    force: bool = False,
) -> dict[str, Any]:
    """Promote ``key/version`` to ``alias`` by compare-and-swap; see ``registry promote``."""
    parsed = parse_key(key)
    move = registry.promote(
        f"{parsed}/{version}",
        expect=_expect(expect),
        reason=reason,
        actor=actor,
        alias=alias,
        force=force,
    )
    return move_to_dict(move)


def rollback(
    registry: Registry,
    key: str,
    *,
    reason: str,
    actor: str,
    expect: int | str | None = "any",
    to: int | None = None,
) -> dict[str, Any]:
    """Roll the champion of ``key`` back to ``previous`` (or to the former champion ``to``)."""
    move = registry.rollback(
        parse_key(key), reason=reason, actor=actor, expect=_expect(expect), to=to
    )
    return move_to_dict(move)


def start_rollout(
    registry: Registry,
    key: str,
    version: int,
    *,
    actor: str,
    steps: str = "shadow,10,50,100",
    interval_s: float = 3600.0,
    max_failures: int = 3,
    reason: str = "rollout",
    force: bool = False,
) -> dict[str, Any]:
    """Start the rollout of ``key/version`` (what ``alphaops rollout start`` does)."""
    record = RolloutController(registry, actor=actor).start(
        f"{parse_key(key)}/{version}",
        steps=steps,
        interval_s=interval_s,
        max_failures=max_failures,
        reason=reason,
        force=force,
    )
    return rollout_to_dict(record)


def rollout_action(
    registry: Registry, key: str, action: RolloutAction, *, reason: str | None, actor: str
) -> dict[str, Any]:
    """Advance, pause, resume or abort the active rollout of ``key``."""
    ctl = RolloutController(registry, actor=actor)
    parsed: ModelKey = parse_key(key)
    record: RolloutRecord
    if action == "advance":
        record = ctl.advance(parsed, reason=reason or "advanced over the API")
    elif action == "pause":
        record = ctl.pause(parsed, reason=reason or "paused over the API")
    elif action == "resume":
        record = ctl.resume(parsed, reason=reason or "resumed over the API")
    else:
        if not reason:
            raise UsageError("aborting a rollout needs a reason", fix="send a 'reason'")
        record = ctl.abort(parsed, reason=reason)
    return rollout_to_dict(record)


# -- idempotency --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    """The first answer to an idempotent mutation: HTTP status and JSON body."""

    status: int
    body: Any


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Return the SHA-256 that identifies one request (a key reused for another is refused)."""
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


class IdempotencyStore:
    """Answers to mutations sent with an ``Idempotency-Key``, per token, in the registry DB.

    :meth:`claim` is called before acting: it returns the stored answer of an earlier request
    with the same key (the retry gets it without acting again), refuses a key reused for
    another request, and refuses a retry while the first request is still running. After
    acting, :meth:`store` keeps the answer; :meth:`release` forgets a claim whose request
    failed unexpectedly, so that a retry acts.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def claim(self, token_name: str, key: str, fingerprint: str) -> StoredResponse | None:
        """Claim ``key`` for this request; return the stored answer if it was answered."""
        if not 1 <= len(key) <= 255:
            raise UsageError(
                f"Idempotency-Key of {len(key)} characters",
                fix="send 1 to 255 characters, e.g. a UUID",
            )
        try:
            with self.database.write() as conn:
                conn.execute(
                    insert(_idempotency).values(
                        token_name=token_name,
                        key=key,
                        request_sha256=fingerprint,
                        created_at=datetime.now(UTC),
                    )
                )
            return None
        except SqlIntegrityError:
            pass
        with self.database.read() as conn:
            row = conn.execute(
                select(_idempotency).where(
                    _idempotency.c.token_name == token_name, _idempotency.c.key == key
                )
            ).first()
        if row is None:  # released meanwhile: the other request failed; try again
            return self.claim(token_name, key, fingerprint)
        if row.request_sha256 != fingerprint:
            raise UsageError(
                f"Idempotency-Key {key!r} was already used for another request",
                fix="send a new key for each distinct request; reuse a key only to retry",
                key=key,
            )
        if row.status is None:
            raise VersionConflictError(
                f"the request with Idempotency-Key {key!r} is still being processed",
                fix="retry in a moment: the stored answer is returned once it is done",
                key=key,
            )
        return StoredResponse(int(row.status), json.loads(row.response))

    def store(self, token_name: str, key: str, answer: StoredResponse) -> None:
        """Keep the answer to the claimed request."""
        with self.database.write() as conn:
            conn.execute(
                update(_idempotency)
                .where(_idempotency.c.token_name == token_name, _idempotency.c.key == key)
                .values(status=answer.status, response=json.dumps(answer.body))
            )

    def release(self, token_name: str, key: str) -> None:
        """Forget the claim of a request that failed unexpectedly."""
        with self.database.write() as conn:
            conn.execute(
                delete(_idempotency).where(
                    _idempotency.c.token_name == token_name,
                    _idempotency.c.key == key,
                    _idempotency.c.status.is_(None),
                )
            )
