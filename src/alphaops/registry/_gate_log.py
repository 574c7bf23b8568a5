"""Gate runs: the append-only record of what the gates decided for each version.

A bundle is immutable, so gate results recorded after publish live beside it: one row per run
in ``gate_runs`` (the gates' JSON document, the verdict, the policy hash, who/where/which code),
and the reports attached to the run as files under
``<root>/<SYMBOL>/<model_type>/_gates/<version>/<run_id>/<name>`` with their sha256 and size in
``gate_attachments``. Files are written first, the rows last in one transaction: a crash leaves
at most an unreferenced folder, which ``registry doctor`` sweeps. Both tables refuse UPDATE and
DELETE in the database, like the audit log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from alphaops._version import __version__
from alphaops.core.errors import IntegrityError, NotFoundError, UsageError
from alphaops.core.names import validate_name
from alphaops.core.specs import canonical_json, sha256_hex
from alphaops.registry import _schema as t
from alphaops.registry._artifacts import ArtifactStore
from alphaops.registry._db import Database, as_utc
from alphaops.registry._moves import _is, _now
from alphaops.registry._types import (
    GateAttachment,
    GatePolicyRecord,
    GateRun,
    ModelVersion,
    VersionStatus,
)
from alphaops.registry.bundle import sha256_bytes
from alphaops.registry.refs import ModelKey, ModelRef, parse_key

__all__ = ["GateLog"]


class GateLog:
    """The gate-recording half of :class:`~alphaops.registry.Registry` (a mixin)."""

    database: Database
    artifacts: ArtifactStore
    actor: str
    host: str

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """Return the ready version a reference names."""
        raise NotImplementedError  # provided by Registry

    def _version_of(self, ref: str | ModelRef | ModelVersion) -> ModelVersion:
        return ref if isinstance(ref, ModelVersion) else self.resolve(ref)

    def record_gates(
        self,
        ref: str | ModelRef | ModelVersion,
        *,
        manifest_sha256: str,
        passed: bool,
        document: Mapping[str, Any],
        attachments: Mapping[str, bytes] | None = None,
        policy_hash: str | None = None,
        actor: str | None = None,
    ) -> GateRun:
        """Append a gate run for the version ``ref`` names, with reports attached; return it.

        ``manifest_sha256`` is the manifest the gates judged: it must be the version's, else
        :class:`IntegrityError` (the gates looked at something else). An unknown version
        raises :class:`NotFoundError`. ``document`` must be plain JSON (no NaN); attachment
        names must be safe file names. Gate runs are never edited or removed.
        """
        version = self._version_of(ref)
        key = version.key
        _check_manifest(version.ref, manifest_sha256, version.manifest_sha256)
        names = {
            validate_name(n, kind="gate attachment name"): data
            for n, data in (attachments or {}).items()
        }
        stored = _plain_json(document, version.ref)
        run_id = uuid.uuid4().hex
        folder = self.artifacts.gate_run_dir(key, version.version, run_id)
        fs = self.artifacts.fs
        try:
            for name, data in names.items():
                fs.write_bytes(f"{folder}/{name}", bytes(data))
            written = fs.sizes(folder) if names else {}
            for name, data in names.items():
                if written.get(name) != len(data):
                    raise IntegrityError(
                        f"gate attachment {name} of {version.ref} was not stored whole "
                        f"({written.get(name)} of {len(data)} bytes)",
                        fix="check the artifact store, then record the gates again",
                        file=f"{folder}/{name}",
                    )
            with self.database.write() as conn:
                row = conn.execute(
                    select(t.versions.c.status, t.versions.c.manifest_sha256).where(
                        *_is(t.versions, key), t.versions.c.version == version.version
                    )
                ).first()
                if row is None or row.status != VersionStatus.READY.value:
                    state = "missing" if row is None else row.status
                    raise NotFoundError(
                        f"{version.ref} is {state}: its gates cannot be recorded",
                        fix=f"list versions with: alphaops registry list {key}",
                        ref=version.ref,
                    )
                _check_manifest(version.ref, manifest_sha256, row.manifest_sha256)
                row_id = conn.execute(
                    insert(t.gate_runs).values(
                        run_id=run_id,
                        symbol=key.symbol,
                        model_type=key.model_type,
                        version=version.version,
                        manifest_sha256=manifest_sha256,
                        passed=bool(passed),
                        policy_hash=policy_hash,
                        document=stored,
                        created_at=_now(),
                        actor=(actor or self.actor)[:128],
                        host=self.host[:255],
                        code_version=__version__,
                    )
                ).inserted_primary_key
                assert row_id is not None
                if names:
                    conn.execute(
                        insert(t.gate_attachments),
                        [
                            {
                                "gate_run_id": int(row_id[0]),
                                "name": name,
                                "sha256": sha256_bytes(data),
                                "size_bytes": len(data),
                            }
                            for name, data in sorted(names.items())
                        ],
                    )
                return self._runs_in(conn, t.gate_runs.c.id == int(row_id[0]))[0]
        except BaseException:
            fs.remove_tree(folder)
            raise

    def latest_gates(self, ref: str | ModelRef | ModelVersion) -> GateRun | None:
        """Return the newest gate run of the version ``ref`` names, or ``None`` if none ran."""
        version = self._version_of(ref)
        with self.database.read() as conn:
            newest = conn.execute(
                select(func.max(t.gate_runs.c.id)).where(
                    *_is(t.gate_runs, version.key), t.gate_runs.c.version == version.version
                )
            ).scalar()
            if newest is None:
                return None
            return self._runs_in(conn, t.gate_runs.c.id == int(newest))[0]

    def gate_runs(self, ref: str | ModelRef | ModelVersion) -> list[GateRun]:
        """Return every gate run of the version ``ref`` names, oldest first."""
        version = self._version_of(ref)
        with self.database.read() as conn:
            return self._runs_in(
                conn, *_is(t.gate_runs, version.key), t.gate_runs.c.version == version.version
            )

    def gate_verdicts(
        self, key: ModelKey | str | None = None, *, symbol: str | None = None
    ) -> dict[str, bool]:
        """Return ``{"SYMBOL/TYPE/N": passed}`` of the newest gate run of every gated version.

        One query, for one model, one symbol or the whole registry; versions whose gates
        never ran are absent.
        """
        key = parse_key(key) if isinstance(key, str) else key
        newest = select(func.max(t.gate_runs.c.id)).group_by(
            t.gate_runs.c.symbol, t.gate_runs.c.model_type, t.gate_runs.c.version
        )
        if key is not None:
            newest = newest.where(*_is(t.gate_runs, key))
        elif symbol is not None:
            newest = newest.where(t.gate_runs.c.symbol == symbol)
        query = select(
            t.gate_runs.c.symbol,
            t.gate_runs.c.model_type,
            t.gate_runs.c.version,
            t.gate_runs.c.passed,
        ).where(t.gate_runs.c.id.in_(newest.scalar_subquery()))
        with self.database.read() as conn:
            rows = conn.execute(query).all()
        return {f"{r.symbol}/{r.model_type}/{r.version}": bool(r.passed) for r in rows}

    def set_gate_policy(
        self, document: Mapping[str, Any], *, reason: str, actor: str | None = None
    ) -> GatePolicyRecord:
        """Make ``document`` the gate policy a passed run must be judged under; return it.

        The hash is the sha256 of the policy's canonical JSON (what the gates record on each
        run). Every change is a new append-only row with who, where, when and ``reason``
        (required); setting the policy already in force changes nothing and returns it.
        Gate runs recorded under an earlier policy stay in the log but no longer clear a
        version: gate it again under the policy in force.
        """
        if not (reason and reason.strip()):
            raise UsageError(
                "setting the registry's gate policy needs a reason",
                fix="pass --reason 'why the gates change' (kept in the policy history)",
            )
        stored = _plain_json(document, "the gate policy")
        policy_hash = sha256_hex(canonical_json(stored))
        with self.database.write() as conn:
            current = self._policy_in(conn)
            if current is not None and current.policy_hash == policy_hash:
                return current
            conn.execute(
                insert(t.gate_policies).values(
                    policy_hash=policy_hash,
                    document=stored,
                    created_at=_now(),
                    actor=(actor or self.actor)[:128],
                    host=self.host[:255],
                    reason=reason.strip(),
                )
            )
            found = self._policy_in(conn)
        assert found is not None
        return found

    def gate_policy(self) -> GatePolicyRecord | None:
        """Return the gate policy in force, or ``None`` when none was ever set.

        The gates set their default policy on the first run they record, so a registry
        whose gates ran always has one.
        """
        with self.database.read() as conn:
            return self._policy_in(conn)

    def gate_policy_history(self) -> list[GatePolicyRecord]:
        """Return every setting of the gate policy, oldest first."""
        with self.database.read() as conn:
            rows = conn.execute(select(t.gate_policies).order_by(t.gate_policies.c.id)).all()
        return [_to_policy(r) for r in rows]

    def _policy_in(self, conn: Connection) -> GatePolicyRecord | None:
        row = conn.execute(
            select(t.gate_policies).order_by(t.gate_policies.c.id.desc()).limit(1)
        ).first()
        return None if row is None else _to_policy(row)

    def read_gate_attachment(self, run: GateRun, name: str) -> bytes:
        """Return an attached report, verified against its recorded sha256 and size."""
        attached = run.attachment(name)
        path = f"{self.artifacts.gate_run_dir(run.key, run.version, run.run_id)}/{name}"
        where = self.artifacts.display(path)
        try:
            data = self.artifacts.fs.read_bytes(path)
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"gate attachment {where} of {run.ref} is missing",
                fix=f"restore it, or run the gates again: alphaops gate run {run.ref}",
                file=where,
            ) from exc
        if len(data) != attached.size_bytes or sha256_bytes(data) != attached.sha256:
            raise IntegrityError(
                f"gate attachment {where} of {run.ref} does not match its recorded checksum "
                f"({len(data)} bytes, expected {attached.size_bytes})",
                fix=f"restore it, or run the gates again: alphaops gate run {run.ref}",
                file=where,
            )
        return data

    def _runs_in(self, conn: Connection, *where: Any) -> list[GateRun]:
        rows = conn.execute(select(t.gate_runs).where(*where).order_by(t.gate_runs.c.id)).all()
        if not rows:
            return []
        files = conn.execute(
            select(t.gate_attachments)
            .where(t.gate_attachments.c.gate_run_id.in_([int(r.id) for r in rows]))
            .order_by(t.gate_attachments.c.name)
        ).all()
        by_run: dict[int, list[GateAttachment]] = {}
        for f in files:
            by_run.setdefault(int(f.gate_run_id), []).append(
                GateAttachment(f.name, f.sha256, int(f.size_bytes))
            )
        return [self._to_run(r, tuple(by_run.get(int(r.id), []))) for r in rows]

    def _to_run(self, row: Row[Any], attachments: tuple[GateAttachment, ...]) -> GateRun:
        key = ModelKey(row.symbol, row.model_type)
        document = row.document
        if isinstance(document, str):  # a driver that hands JSON back as text
            document = json.loads(document)
        return GateRun(
            id=int(row.id),
            run_id=row.run_id,
            key=key,
            version=int(row.version),
            manifest_sha256=row.manifest_sha256,
            passed=bool(row.passed),
            policy_hash=row.policy_hash,
            document=dict(document),
            created_at=as_utc(row.created_at),
            actor=row.actor,
            host=row.host,
            code_version=row.code_version,
            location=self.artifacts.display(
                self.artifacts.gate_run_dir(key, int(row.version), row.run_id)
            ),
            attachments=attachments,
        )


def _to_policy(row: Row[Any]) -> GatePolicyRecord:
    document = row.document
    if isinstance(document, str):  # a driver that hands JSON back as text
        document = json.loads(document)
    return GatePolicyRecord(
        id=int(row.id),
        policy_hash=row.policy_hash,
        document=dict(document),
        created_at=as_utc(row.created_at),
        actor=row.actor,
        host=row.host,
        reason=row.reason,
    )


def _check_manifest(ref: str, judged: str, actual: str) -> None:
    if judged != actual:
        raise IntegrityError(
            f"the gates judged manifest {judged[:16]}… but {ref} has manifest {actual[:16]}…",
            fix=f"run the gates on the version as published: alphaops gate run {ref}",
            ref=ref,
        )


def _plain_json(document: Mapping[str, Any], ref: str) -> dict[str, Any]:
    try:
        text = json.dumps(dict(document), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"the gate document for {ref} is not plain JSON: {exc}",
            fix="pass JSON-ready values (e.g. a pydantic model's json.loads(model_dump_json()))",
            ref=ref,
        ) from exc
    loaded: dict[str, Any] = json.loads(text)
    return loaded
