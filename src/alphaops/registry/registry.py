"""The registry: publish bundles, resolve references, move aliases by compare-and-swap.

The database is the source of truth. A version is visible only once its files are written and
verified at their final place; every alias move bumps the registry-wide generation and writes
its audit record in the same transaction.

Promotion to champion is fail-closed, enforced here and not by callers: a version whose
newest gate run did not pass on its exact manifest is refused unless forced with a reason.

>>> import tempfile, pathlib
>>> from alphaops.core.errors import GateFailedError
>>> from alphaops.registry.testing import build_tiny_bundle, record_passing_gates
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> with open_registry(tmp / "home") as reg:
...     v1 = reg.publish(build_tiny_bundle(tmp / "b1", seed=1))
...     try:
...         reg.promote("BTCUSDT/logreg/1", expect=None, reason="first model")
...     except GateFailedError as exc:
...         print(exc.code)
...     _ = record_passing_gates(reg, "BTCUSDT/logreg/1")
...     move = reg.promote("BTCUSDT/logreg/1", expect=None, reason="first model")
...     reg.resolve("BTCUSDT/logreg@champion").version, reg.generation()
gate_failed
(1, 1)
"""

from __future__ import annotations

import contextlib
import getpass
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from alphaops.core.config import check_database_url, masked_url
from alphaops.core.errors import (
    NotFoundError,
    UsageError,
    VersionConflictError,
)
from alphaops.core.home import AlphaOpsHome
from alphaops.registry import _schema as t
from alphaops.registry._alarms import Alarm, acknowledge_in, alarms_in, insert_alarm
from alphaops.registry._artifacts import ArtifactStore
from alphaops.registry._clearance import Clearance, clearance_in
from alphaops.registry._db import Database, as_utc, database_url_for
from alphaops.registry._gate_log import GateLog
from alphaops.registry._moves import NOTIFY_CHANNEL, _is, _now
from alphaops.registry._rollouts import RolloutStore
from alphaops.registry._types import (
    AuditRecord,
    ModelVersion,
    VersionStatus,
    check_transition,
    missing_version,
)
from alphaops.registry.bundle import Bundle, sha256_bytes, verify_bundle
from alphaops.registry.manifest import MANIFEST_FILE
from alphaops.registry.refs import (
    ModelKey,
    ModelRef,
    parse_key,
    parse_ref,
)

if TYPE_CHECKING:
    from alphaops.registry._maintenance import DoctorReport, PrunePolicy, PruneReport, VerifyReport
    from alphaops.registry._notify import AliasListener

__all__ = ["NOTIFY_CHANNEL", "GenerationReader", "Registry", "open_registry"]


def open_registry(
    url_or_home: str | Path | AlphaOpsHome,
    *,
    artifacts: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
    actor: str | None = None,
    create: bool = True,
) -> Registry:
    """Open (creating or migrating if needed) a registry.

    ``url_or_home`` is an alphaops home (folder or :class:`AlphaOpsHome`: SQLite in WAL mode at
    ``alphaops.db``, artifacts in ``artifacts/``) or a database URL (``sqlite:///…``,
    ``postgresql://…``), in which case ``artifacts`` (a folder or ``s3://bucket/prefix``) is
    required. ``storage_options`` go to fsspec (e.g. ``{"endpoint_url": …}`` for S3).

    With ``create=False`` (what read-only commands use) nothing is created: a home or SQLite
    file that does not exist raises :class:`~alphaops.core.errors.NotFoundError` naming it,
    instead of opening a new, empty registry that would answer every question with "nothing".
    A URL that is not one alphaops accepts raises :class:`~alphaops.core.errors.ConfigError`.

    >>> import tempfile, pathlib
    >>> open_registry(pathlib.Path(tempfile.mkdtemp()) / "typo", create=False)
    Traceback (most recent call last):
    ...
    alphaops.core.errors.NotFoundError: alphaops home .../typo does not exist...
    """
    if isinstance(url_or_home, str) and _looks_like_url(url_or_home):
        db_url = check_database_url(url_or_home)
        if artifacts is None:
            raise UsageError(
                f"registry database {masked_url(db_url)!r} needs an artifact location",
                fix="pass artifacts='s3://bucket/prefix' or a folder",
            )
        if not create:
            _require_sqlite_file(db_url)
    else:
        home = (
            url_or_home
            if isinstance(url_or_home, AlphaOpsHome)
            else AlphaOpsHome(Path(url_or_home))
        )
        if create:
            home.ensure()
        else:
            _require_database(home)
        db_url = database_url_for(home.database_path)
        artifacts = home.artifacts_dir if artifacts is None else artifacts
    return Registry(Database(db_url), ArtifactStore(str(artifacts), storage_options), actor=actor)


# A string naming a database (``postgresql://…``, or ``sqlite:x.db`` missing its slashes) and
# not a home folder: it is checked as a URL rather than created as a folder of that name.
_URL_LIKE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|(?:sqlite|postgres(?:ql)?)(?:\+\w+)?:)")


def _looks_like_url(text: str) -> bool:
    return _URL_LIKE.match(text) is not None


def _require_sqlite_file(url: str) -> None:
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return
    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_file():
        raise NotFoundError(
            f"registry database {path} does not exist",
            fix="check the URL (--db / ALPHAOPS_REGISTRY__DATABASE_URL); a registry is created "
            "by the first publish (alphaops train …, alphaops registry import ARCHIVE)",
            database=str(path),
        )


def _require_database(home: AlphaOpsHome) -> None:
    home.require()
    if not home.database_path.is_file():
        raise NotFoundError(
            f"alphaops home {home.root} has no model registry yet ({home.database_path} "
            "does not exist)",
            fix="publish a model into it first (alphaops quickstart, alphaops train …, "
            "alphaops registry import ARCHIVE), or point --home / ALPHAOPS_HOME at another home",
            home=str(home.root),
        )


class Registry(RolloutStore, GateLog):
    """A model registry over one database and one artifact store (see :func:`open_registry`).

    Gate results recorded after publish (the bundle is immutable) go through
    :meth:`record_gates` and are read with :meth:`latest_gates`, :meth:`gate_runs`,
    :meth:`gate_verdicts` and :meth:`read_gate_attachment`. Rollouts are stored with
    :meth:`create_rollout` and moved by compare-and-swap with :meth:`transition_rollout`.
    """

    def __init__(self, database: Database, artifacts: ArtifactStore, *, actor: str | None = None):
        self.database = database
        self.artifacts = artifacts
        self.actor = actor or _default_actor()
        self.host = socket.gethostname()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release database connections."""
        self.database.close()

    def __repr__(self) -> str:
        return f"Registry({self.database.safe_url!r}, artifacts={self.artifacts.url!r})"

    # -- publish -------------------------------------------------------------------------

    def publish(self, bundle: Bundle | Path | str, *, actor: str | None = None) -> ModelVersion:
        """Verify ``bundle``, copy it in, and make it visible as the next version of its model.

        The files go to a staging folder, are verified, get a version number (unique per
        symbol/type, allocated atomically), are moved into place and verified again; only then
        does the version become visible. A crash before that leaves no visible version.
        """
        if not isinstance(bundle, Bundle):
            bundle = Bundle.load(bundle)
        manifest = bundle.manifest
        key = ModelKey(manifest.symbol, manifest.model_type)
        raw_manifest = (bundle.path / MANIFEST_FILE).read_bytes()
        manifest_sha = sha256_bytes(raw_manifest)
        fs = self.artifacts.fs
        staging = self.artifacts.new_staging_dir()
        fs.put_folder(bundle.path, staging)
        verify_bundle(fs, staging, smoke_test=False, manifest_sha256=manifest_sha)
        size = sum(f.size for f in manifest.files) + len(raw_manifest)
        actor = actor or self.actor
        row_id, version = self._reserve_version(
            key, raw_manifest.decode(), manifest_sha, size, actor
        )
        final = self.artifacts.version_dir(key, version)
        try:
            fs.move_tree(staging, final)
            verify_bundle(fs, final, smoke_test=False, manifest_sha256=manifest_sha)
        except BaseException as exc:
            with self.database.write() as conn:
                current = conn.execute(
                    select(t.versions.c.status).where(t.versions.c.id == row_id)
                ).scalar()
                if current == VersionStatus.PENDING.value:
                    self._set_status_in(conn, row_id, VersionStatus.FAILED)
            if current == VersionStatus.PENDING.value or not isinstance(exc, Exception):
                raise
            # 'registry doctor' failed the pending row and removed its files under us: say
            # that, not the missing file it caused (nor an illegal 'failed' -> 'failed').
            raise VersionConflictError(
                f"version row {row_id} left 'pending' before it could become 'ready' "
                "('registry doctor' fails publishes older than its --grace-s)",
                fix="publish again; run doctor with a grace longer than a publish takes",
            ) from exc
        with self.database.write() as conn:
            self._set_status_in(conn, row_id, VersionStatus.READY)
            gen = self._generation_in(conn)
            self._audit(conn, "publish", key, None, None, version, "published", actor, gen)
        return self.get(key, version)

    def _reserve_version(
        self, key: ModelKey, manifest: str, sha: str, size: int, actor: str
    ) -> tuple[int, int]:
        # SQLite serializes writers (BEGIN IMMEDIATE). On PostgreSQL the model row is locked
        # first, so publishers of one model take numbers in turn; what still races (creating
        # the model row) is refused by a unique constraint and retried with jittered backoff
        # until a deadline (Database.retry), never after a fixed number of immediate tries.
        def attempt() -> tuple[int, int]:
            with self.database.write() as conn:
                model_id = self._ensure_model(conn, key)
                conn.execute(
                    select(t.models.c.id).where(t.models.c.id == model_id).with_for_update()
                )
                last = conn.execute(
                    select(func.max(t.versions.c.version)).where(*_is(t.versions, key))
                ).scalar()
                version = int(last or 0) + 1
                row_id = conn.execute(
                    insert(t.versions).values(
                        model_id=model_id,
                        symbol=key.symbol,
                        model_type=key.model_type,
                        version=version,
                        status=VersionStatus.PENDING.value,
                        manifest=manifest,
                        manifest_sha256=sha,
                        size_bytes=size,
                        created_at=_now(),
                        created_by=actor,
                    )
                ).inserted_primary_key
                assert row_id is not None
                return int(row_id[0]), version

        return self.database.retry.run(attempt, what=f"allocate a version of {key}")

    def _ensure_model(self, conn: Connection, key: ModelKey) -> int:
        found = conn.execute(select(t.models.c.id).where(*_is(t.models, key))).scalar()
        if found is not None:
            return int(found)
        with conn.begin_nested():
            conn.execute(
                insert(t.models).values(
                    symbol=key.symbol, model_type=key.model_type, created_at=_now()
                )
            )
        return int(conn.execute(select(t.models.c.id).where(*_is(t.models, key))).scalar_one())

    def _set_status(self, row_id: int, status: VersionStatus) -> None:
        with self.database.write() as conn:
            self._set_status_in(conn, row_id, status)

    def _set_status_in(self, conn: Connection, row_id: int, status: VersionStatus) -> None:
        current = conn.execute(
            select(t.versions.c.status).where(t.versions.c.id == row_id)
        ).scalar()
        if current is None:
            raise NotFoundError(f"version row {row_id} vanished", fix="run 'registry doctor'")
        check_transition(VersionStatus(current), status)
        values: dict[str, Any] = {"status": status.value}
        if status is VersionStatus.READY:
            values["ready_at"] = _now()
        # Compare-and-swap on the status read above: on PostgreSQL a 'registry doctor' may fail
        # a stuck pending row (and delete its files) between that read and this write.
        moved = conn.execute(
            update(t.versions)
            .where(t.versions.c.id == row_id, t.versions.c.status == current)
            .values(**values)
        ).rowcount
        if moved != 1:
            raise VersionConflictError(
                f"version row {row_id} left {current!r} before it could become {status.value!r} "
                "('registry doctor' fails publishes older than its --grace-s)",
                fix="publish again; run doctor with a grace longer than a publish takes",
            )

    # -- read ----------------------------------------------------------------------------

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """Return the ready version a reference names (``@latest`` is ``@champion``)."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        key = parsed.key
        # One statement (the version row joined with all its aliases): resolving is the hot path.
        params: dict[str, str | int | None] = {"symbol": key.symbol, "model_type": key.model_type}
        if parsed.version is not None:
            query, params["version"] = _RESOLVE_VERSION, parsed.version
        else:
            query, params["alias"] = _RESOLVE_ALIAS, parsed.alias
        with self.database.read() as conn:
            rows = conn.execute(query, params).all()
            if not rows:
                self._require_model_in(conn, key)
        if not rows:
            if parsed.version is None:
                raise NotFoundError(
                    f"{parsed} is not set",
                    fix=f"promote a version: alphaops registry promote {key}/N",
                    ref=str(parsed),
                )
            raise missing_version(key, parsed.version, None)
        if rows[0].status != VersionStatus.READY.value:
            raise missing_version(key, int(rows[0].version), rows[0].status)
        aliases = tuple(sorted(r.alias_name for r in rows if r.alias_name is not None))
        return self._to_version(rows[0], aliases)

    def get(self, key: ModelKey | str, version: int) -> ModelVersion:
        """Return one ready version of ``key``."""
        key = parse_key(key) if isinstance(key, str) else key
        with self.database.read() as conn:
            return self._get_in(conn, key, version)

    def _get_in(self, conn: Connection, key: ModelKey, version: int) -> ModelVersion:
        row = conn.execute(
            select(t.versions).where(*_is(t.versions, key), t.versions.c.version == version)
        ).first()
        if row is None or row.status != VersionStatus.READY.value:
            raise missing_version(key, version, None if row is None else row.status)
        aliases = conn.execute(
            select(t.aliases.c.alias).where(*_is(t.aliases, key), t.aliases.c.version == version)
        ).scalars()
        return self._to_version(row, tuple(sorted(aliases)))

    def _to_version(self, row: Row[Any], aliases: tuple[str, ...]) -> ModelVersion:
        key = ModelKey(row.symbol, row.model_type)
        return ModelVersion(
            key=key,
            version=int(row.version),
            status=VersionStatus(row.status),
            manifest_json=row.manifest,
            manifest_sha256=row.manifest_sha256,
            size_bytes=int(row.size_bytes),
            created_at=as_utc(row.created_at),
            created_by=row.created_by,
            location=self.artifacts.display(self.artifacts.version_dir(key, int(row.version))),
            aliases=aliases,
        )

    def list_models(self) -> list[ModelKey]:
        """Return every model key that has ever been published, sorted."""
        with self.database.read() as conn:
            return self._models_in(conn)

    def _models_in(self, conn: Connection) -> list[ModelKey]:
        rows = conn.execute(select(t.models.c.symbol, t.models.c.model_type)).all()
        return sorted(ModelKey(r.symbol, r.model_type) for r in rows)

    def require_model(self, key: ModelKey | str) -> ModelKey:
        """Return ``key`` if it was ever published here; raise ``NotFoundError`` otherwise.

        The error names the model, this registry and the models it does hold, so that a
        mistyped model (or a mistyped home) is not mistaken for a model with no history.
        """
        key = parse_key(key) if isinstance(key, str) else key
        with self.database.read() as conn:
            self._require_model_in(conn, key)
        return key

    def _require_model_in(self, conn: Connection, key: ModelKey) -> None:
        if conn.execute(select(t.models.c.id).where(*_is(t.models, key))).first() is None:
            raise _unknown_model(key, self._models_in(conn), self.database.safe_url)

    def list_versions(
        self,
        key: ModelKey | str | None = None,
        *,
        symbol: str | None = None,
        all_statuses: bool = False,
    ) -> list[ModelVersion]:
        """Return versions (ready only unless ``all_statuses``), for one key, symbol or all."""
        key = parse_key(key) if isinstance(key, str) else key
        query = select(t.versions)
        alias_query = select(t.aliases)
        if key is not None:
            query = query.where(*_is(t.versions, key))
            alias_query = alias_query.where(*_is(t.aliases, key))
        elif symbol is not None:
            query = query.where(t.versions.c.symbol == symbol)
            alias_query = alias_query.where(t.aliases.c.symbol == symbol)
        if not all_statuses:
            query = query.where(t.versions.c.status == VersionStatus.READY.value)
        query = query.order_by(t.versions.c.symbol, t.versions.c.model_type, t.versions.c.version)
        with self.database.read() as conn:
            if key is not None:
                self._require_model_in(conn, key)
            rows = conn.execute(query).all()
            alias_rows = conn.execute(alias_query).all()
        by_version: dict[tuple[str, str, int], list[str]] = {}
        for a in alias_rows:
            by_version.setdefault((a.symbol, a.model_type, a.version), []).append(a.alias)
        return [
            self._to_version(
                r, tuple(sorted(by_version.get((r.symbol, r.model_type, r.version), [])))
            )
            for r in rows
        ]

    def aliases(self, key: ModelKey | str) -> dict[str, int]:
        """Return ``{alias: version}`` for ``key``."""
        key = parse_key(key) if isinstance(key, str) else key
        with self.database.read() as conn:
            rows = conn.execute(select(t.aliases).where(*_is(t.aliases, key))).all()
        return {r.alias: int(r.version) for r in sorted(rows, key=lambda r: r.alias)}

    def clearance(
        self, ref: str | ModelRef, *, force: bool = False, reason: str | None = None
    ) -> Clearance:
        """Return whether the version ``ref`` names is cleared for live traffic.

        Cleared means the newest gate run recorded for it passed on its exact manifest; this
        is what :meth:`promote` (to champion) and a rollout going live check in their own
        transaction. Raise :class:`~alphaops.core.errors.GateFailedError` when it is not,
        unless ``force`` is given with a ``reason``.
        """
        found = self.resolve(ref)
        with self.database.read() as conn:
            return clearance_in(conn, found.key, found.version, force=force, reason=reason)

    def generation(self) -> int:
        """Return the registry-wide generation number (it grows with every alias move)."""
        with self.database.read() as conn:
            return self._generation_in(conn)

    def generation_reader(self) -> GenerationReader:
        """Return a reader of the generation for a polling loop (see :class:`GenerationReader`)."""
        return GenerationReader(self.database)

    def record_activation(
        self,
        version: ModelVersion,
        *,
        reverted: bool = False,
        reason: str,
        actor: str | None = None,
    ) -> None:
        """Audit that ``version`` was activated outside the registry (e.g. in a bot's env file),
        or with ``reverted`` that such an activation was undone. No alias moves."""
        action = "activate_revert" if reverted else "activate"
        with self.database.write() as conn:
            gen = self._generation_in(conn)
            self._audit(
                conn, action, version.key, None, None, version.version, reason,
                actor or self.actor, gen,
            )  # fmt: skip

    # -- drift alarms ---------------------------------------------------------------------

    def raise_alarm(
        self,
        key: ModelKey | str,
        *,
        kind: str,
        detail: Mapping[str, Any],
        version: int | None = None,
        actor: str | None = None,
    ) -> Alarm:
        """Record a drift alarm of ``key``: pause its active rollout and block its promotion.

        In one transaction: the alarm is appended, an active shadow or canary rollout of the
        model is paused (it holds its current step; resuming it and taking any version live
        wait for the acknowledgement), and the audit log records it. Until
        :meth:`acknowledge_alarms`, :meth:`promote` to champion raises
        :class:`~alphaops.core.errors.DriftAlarmError` unless forced with a reason.
        """
        key = parse_key(key) if isinstance(key, str) else key
        actor = actor or self.actor
        note = str(detail.get("summary") or kind)
        with self.database.write() as conn:
            gen = self._bump_generation(conn)
            active = self._active_in(conn, key)
            paused = None
            if active is not None and active.phase in ("shadow", "canary"):
                reason = f"paused by a {kind} alarm: {note}"
                conn.execute(
                    update(t.rollouts)
                    .where(t.rollouts.c.id == active.id, t.rollouts.c.phase == active.phase)
                    .values(
                        phase="paused", paused_from=active.phase, updated_at=_now(), reason=reason
                    )
                )
                self._rollout_event(
                    conn, active.id, actor, "pause", (active.phase, active.step),
                    ("paused", active.step), active.percentage, active.failures,
                    {"alarm": kind}, reason, gen,
                )  # fmt: skip
                paused = active.id
            alarm_id = insert_alarm(
                conn, key, at=_now(), version=version, kind=kind, detail=detail, actor=actor,
                rollout_id=paused,
            )  # fmt: skip
            self._audit(
                conn, "alarm", key, None, None, version, f"#{alarm_id} {kind}: {note}", actor, gen
            )
            return next(a for a in alarms_in(conn, key) if a.id == alarm_id)

    def alarms(self, key: ModelKey | str, *, open_only: bool = False) -> list[Alarm]:
        """Return the drift alarms of ``key``, oldest first (``open_only``: unacknowledged).

        A model never published here raises ``NotFoundError`` (see :meth:`require_model`).
        """
        key = parse_key(key) if isinstance(key, str) else key
        with self.database.read() as conn:
            self._require_model_in(conn, key)
            return alarms_in(conn, key, open_only=open_only)

    def acknowledge_alarms(
        self, key: ModelKey | str, *, reason: str, actor: str | None = None
    ) -> list[Alarm]:
        """Acknowledge every open alarm of ``key`` (audited); return them. Paused rollouts stay
        paused: resume them deliberately."""
        key = parse_key(key) if isinstance(key, str) else key
        actor = actor or self.actor
        with self.database.write() as conn:
            gen = self._bump_generation(conn)
            opened = alarms_in(conn, key, open_only=True)
            if not opened:
                raise NotFoundError(
                    f"{key} has no open drift alarm", fix=f"list them: alphaops alarm list {key}"
                )
            ids = ", ".join(f"#{a.id}" for a in opened)
            self._audit(conn, "alarm_ack", key, None, None, None, f"{ids}: {reason}", actor, gen)
            return acknowledge_in(conn, key, at=_now(), actor=actor, reason=reason)

    def history(
        self, key: ModelKey | str | None = None, *, limit: int | None = None
    ) -> list[AuditRecord]:
        """Return the audit log (oldest first), for one model or all; ``limit`` keeps the newest.

        A model never published here raises ``NotFoundError`` (see :meth:`require_model`).
        """
        key = parse_key(key) if isinstance(key, str) else key
        query = select(t.audit_log).order_by(t.audit_log.c.id.desc())
        if key is not None:
            query = query.where(*_is(t.audit_log, key))
        if limit is not None:
            query = query.limit(limit)
        with self.database.read() as conn:
            if key is not None:
                self._require_model_in(conn, key)
            rows = conn.execute(query).all()
        return [
            AuditRecord(
                id=int(r.id),
                at=as_utc(r.at),
                actor=r.actor,
                action=r.action,
                key=ModelKey(r.symbol, r.model_type),
                alias=r.alias,
                from_version=r.from_version,
                to_version=r.to_version,
                reason=r.reason,
                host=r.host,
                code_version=r.code_version,
                generation=int(r.generation),
            )
            for r in reversed(rows)
        ]

    def load(self, ref: str | ModelRef, *, cache_dir: Path | None = None) -> Bundle:
        """Return the verified bundle a reference names (downloaded to ``cache_dir`` if remote)."""
        found = self.resolve(ref)
        source = self.artifacts.version_dir(found.key, found.version)
        verify_bundle(self.artifacts.fs, source, manifest_sha256=found.manifest_sha256)
        if self.artifacts.local:
            return Bundle(Path(source), found.manifest)
        import tempfile

        target = (cache_dir or Path(tempfile.mkdtemp(prefix="alphaops-bundle-"))) / (
            f"{found.key.symbol}-{found.key.model_type}-{found.version}"
        )
        for rel in self.artifacts.fs.sizes(source):
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.artifacts.fs.read_bytes(f"{source}/{rel}"))
        return Bundle.load(target)

    def listen(self) -> AliasListener:
        """Return a listener that receives every alias move (PostgreSQL only).

        Elsewhere, poll :meth:`generation`: it changes with every alias move.
        """
        from alphaops.registry._notify import AliasListener

        return AliasListener(self.database.url, NOTIFY_CHANNEL)

    # -- maintenance (see _maintenance.py) -----------------------------------------------

    def verify(self, ref: str | ModelRef | None = None, *, smoke_test: bool = True) -> VerifyReport:
        """Check the files and manifest of one version (or all), and that aliases are sound."""
        from alphaops.registry._maintenance import verify

        return verify(self, ref, smoke_test=smoke_test)

    def prune(
        self, policy: PrunePolicy, *, dry_run: bool = False, reason: str = "retention"
    ) -> PruneReport:
        """Remove versions outside ``policy``; never champion, challenger, previous or any alias."""
        from alphaops.registry._maintenance import prune

        return prune(self, policy, dry_run=dry_run, reason=reason)

    def doctor(self, *, fix: bool = False, grace_s: float = 3600.0) -> DoctorReport:
        """Find (and with ``fix`` repair) orphaned files, stuck versions and stale links."""
        from alphaops.registry._maintenance import doctor

        return doctor(self, fix=fix, grace_s=grace_s)

    def export(self, ref: str | ModelRef, archive: Path) -> Path:
        """Write the version ``ref`` names as one ``.tar.gz`` archive."""
        from alphaops.registry._maintenance import export_version

        return export_version(self, ref, archive)

    def import_archive(self, archive: Path, *, actor: str | None = None) -> ModelVersion:
        """Verify an archive made by :meth:`export` and publish it as a new version."""
        from alphaops.registry._maintenance import import_archive

        return import_archive(self, archive, actor=actor)


def _same_version(left: Any, right: Any) -> Any:
    return (
        (left.c.symbol == right.c.symbol)
        & (left.c.model_type == right.c.model_type)
        & (left.c.version == right.c.version)
    )


_A, _V, _A2 = t.aliases.alias("a"), t.versions.alias("v"), t.aliases.alias("a2")
# Built once: constructing statements per call costs more than running them.
_RESOLVE_VERSION = (
    select(_V, _A2.c.alias.label("alias_name"))
    .select_from(_V.outerjoin(_A2, _same_version(_A2, _V)))
    .where(
        _V.c.symbol == bindparam("symbol"),
        _V.c.model_type == bindparam("model_type"),
        _V.c.version == bindparam("version"),
    )
)
_RESOLVE_ALIAS = (
    select(_V, _A2.c.alias.label("alias_name"))
    .select_from(_A.join(_V, _same_version(_V, _A)).outerjoin(_A2, _same_version(_A2, _V)))
    .where(
        _A.c.symbol == bindparam("symbol"),
        _A.c.model_type == bindparam("model_type"),
        _A.c.alias == bindparam("alias"),
    )
)


def _unknown_model(key: ModelKey, known: list[ModelKey], where: str) -> NotFoundError:
    """Return the error for a model never published in the registry at ``where``."""
    shown = ", ".join(str(k) for k in known[:20]) + (", …" if len(known) > 20 else "")
    return NotFoundError(
        f"model {key} was never published in registry {where}",
        fix=(
            f"use one of the models it holds: {shown} (alphaops registry list shows them)"
            if known
            else "this registry holds no model yet: publish one (alphaops train …, alphaops "
            "registry import ARCHIVE), or check --home / ALPHAOPS_HOME and --db"
        ),
        model=str(key),
    )


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class GenerationReader:
    """Read the registry generation on one dedicated driver connection, as cheaply as possible.

    A runtime polls the generation every second or so in a thread beside the predictions; this
    reader skips the SQL toolkit (one prepared statement on a raw driver cursor, whose wait
    happens outside the GIL) so that an idle poll costs a few microseconds of Python instead
    of the ~70 µs a ``Registry.generation()`` call holds the interpreter for. A failed read
    drops the connection; the next read opens a new one. Use it from one thread.
    """

    _SQL = "SELECT generation FROM registry_state WHERE id = 1"

    def __init__(self, database: Database) -> None:
        self._database = database
        self._conn: Any = None

    def read(self) -> int:
        """Return the current generation."""
        if self._conn is None:
            self._conn = self._database.reader.raw_connection()
        try:
            cursor = self._conn.cursor()
            try:
                cursor.execute(self._SQL)
                row = cursor.fetchone()
            finally:
                cursor.close()
            self._conn.rollback()  # never keep a snapshot (or a PostgreSQL transaction) open
        except Exception:
            self.close()
            raise
        return int(row[0])

    def close(self) -> None:
        """Return the connection to its pool (reading again opens another)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to give back
                conn.close()
