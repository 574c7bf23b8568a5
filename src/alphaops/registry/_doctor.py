"""``registry doctor``: find and repair orphaned files, stuck versions and stale links.

Doctor may run beside publishers, gate runs and promotes, on a local folder or on S3, so it
ages things by the registry's own clocks and claims before it deletes:

- a version folder is judged by its row, re-read in a write transaction at the moment of the
  repair (not by the snapshot doctor started from, and never by storage times). A ready row is
  never touched; a pending row is failed (compare-and-swap on ``pending``) only when its
  ``created_at`` is older than the grace, and its files go only after that commit — so the
  publisher's own ready commit, which needs ``pending``, can no longer succeed. A folder
  with no row is deleted while holding the lock a publisher needs to reserve a number
  (SQLite's write lock; on PostgreSQL a ``SHARE ROW EXCLUSIVE`` lock on ``versions``), so no
  row can appear for it meanwhile. Hence no "ready" version ever loses its files, even with
  ``--grace-s 0``;
- a staging folder is aged by the time in its name (see ``ArtifactStore.new_staging_dir``), and
  older ones by their newest object: S3 has no folder times;
- a gate-report folder is aged by its newest object and re-checked against the gate-run rows
  just before it is deleted;
- a temporary ``.latest.*`` link is aged by its own (``lstat``) time, so a promote between
  making it and renaming it over ``latest`` keeps it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, text, update

from alphaops.registry import _schema as t
from alphaops.registry._artifacts import GATES, STAGING, staging_started
from alphaops.registry._db import as_utc
from alphaops.registry._types import VersionStatus
from alphaops.registry.refs import CHAMPION, LATEST, ModelKey

if TYPE_CHECKING:
    from alphaops.registry.registry import Registry

__all__ = ["DoctorReport", "Finding", "doctor"]


@dataclass(frozen=True)
class Finding:
    """One problem found by verify or doctor: what kind, where, and whether it was repaired."""

    kind: str
    where: str
    message: str
    fixed: bool = False


@dataclass(frozen=True)
class DoctorReport:
    """Everything doctor found; with ``fix`` each finding says whether it was repaired."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether nothing is left to repair."""
        return all(f.fixed for f in self.findings)


def doctor(registry: Registry, *, fix: bool, grace_s: float) -> DoctorReport:
    """Find orphaned staging/version/gate-report folders, stuck versions and stale links.

    Anything younger than ``grace_s`` seconds when doctor starts is left alone: a publisher
    may still be writing it. Versions are aged by their row's ``created_at``.
    """
    return _Doctor(registry, fix=fix, cutoff=datetime.now(UTC) - timedelta(seconds=grace_s)).run()


class _Doctor:
    def __init__(self, registry: Registry, *, fix: bool, cutoff: datetime) -> None:
        self.registry = registry
        self.store = registry.artifacts
        self.fs = registry.artifacts.fs
        self.fix = fix
        self.cutoff = cutoff
        self.findings: list[Finding] = []

    def _old(self, stamp: float | None) -> bool:
        # No known time (an empty S3 prefix): nothing in it a writer could lose.
        return stamp is None or stamp <= self.cutoff.timestamp()

    def _found(self, kind: str, where: str, message: str, *, fixed: bool) -> None:
        self.findings.append(Finding(kind, where, message, fixed))

    def run(self) -> DoctorReport:
        with self.registry.database.read() as conn:
            rows = conn.execute(
                select(
                    t.versions.c.symbol,
                    t.versions.c.model_type,
                    t.versions.c.version,
                    t.versions.c.status,
                )
            ).all()
        status = {(ModelKey(r.symbol, r.model_type), int(r.version)): r.status for r in rows}
        judged: set[tuple[ModelKey, int]] = set()
        for (key, version), state in status.items():
            if state == VersionStatus.PENDING.value and self._version(key, version, listed=False):
                judged.add((key, version))
        self._staging()
        for key in self.registry.list_models():
            for name, is_dir in self.fs.listdir(self.store.model_dir(key)):
                if name.isdigit() and is_dir:
                    # A ready row stays ready (or is pruned by prune, which removes its files).
                    seen = status.get((key, int(name)))
                    if seen != VersionStatus.READY.value and (key, int(name)) not in judged:
                        self._version(key, int(name), listed=True)
                elif not ((not is_dir and name == LATEST) or (is_dir and name == GATES)):
                    self._stray(f"{self.store.model_dir(key)}/{name}")
            self._gate_reports(key)
            if self.store.local:
                self._links(key)
        return DoctorReport(self.findings)

    # -- versions ------------------------------------------------------------------------

    def _version(self, key: ModelKey, version: int, *, listed: bool) -> bool:
        """Judge one version (a pending row, or a folder found by listing); say if reported."""
        folder = self.store.version_dir(key, version)
        if not self.fix:
            with self.registry.database.read() as conn:
                verdict = self._verdict(conn, key, version, claim=False)
        else:
            with self.registry.database.write() as conn:
                verdict = self._verdict(conn, key, version, claim=True)
                if verdict is not None and verdict[0] == "no_row" and listed:
                    # Deleted under the lock a publisher needs to reserve this number.
                    self.fs.remove_tree(folder)
        if verdict is None or (verdict[1] != "stuck" and not listed):
            return False
        if self.fix and verdict[0] != "no_row":
            self.fs.remove_tree(folder)  # the row is failed or pruned: no publisher needs it
        self._report(verdict, f"{key}/{version}", folder, fixed=self.fix)
        return True

    def _verdict(
        self, conn: Connection, key: ModelKey, version: int, *, claim: bool
    ) -> tuple[str, str] | None:
        """Return ``(state, kind)`` when the version's folder should go, else ``None``."""
        row = self._row(conn, key, version)
        if row is None and claim and self.registry.database.dialect == "postgresql":
            # Hold off publishers (their reservation inserts a row) while the folder goes.
            conn.execute(text("LOCK TABLE versions IN SHARE ROW EXCLUSIVE MODE"))
            row = self._row(conn, key, version)
        if row is None:
            stamp = self.fs.newest_mtime(self.store.version_dir(key, version))
            return ("no_row", "orphan") if self._old(stamp) else None
        if row.status == VersionStatus.READY.value:
            return None  # never touched, whatever its files look like (verify reports those)
        if row.status == VersionStatus.PENDING.value:
            if as_utc(row.created_at) > self.cutoff:
                return None  # a publisher is (maybe) still at work
            if claim:
                claimed = conn.execute(
                    update(t.versions)
                    .where(
                        t.versions.c.id == row.id,
                        t.versions.c.status == VersionStatus.PENDING.value,
                    )
                    .values(status=VersionStatus.FAILED.value)
                ).rowcount
                if claimed != 1:
                    return None
            return ("pending", "stuck")
        return (str(row.status), "orphan")

    def _row(self, conn: Connection, key: ModelKey, version: int) -> Any:
        found = conn.execute(
            select(t.versions.c.id, t.versions.c.status, t.versions.c.created_at).where(
                t.versions.c.symbol == key.symbol,
                t.versions.c.model_type == key.model_type,
                t.versions.c.version == version,
            )
        ).first()
        return found

    def _report(self, verdict: tuple[str, str], where: str, folder: str, *, fixed: bool) -> None:
        state, kind = verdict
        if kind == "stuck":
            self._found("stuck", where, "publish never finished", fixed=fixed)
        else:
            what = "no version row" if state == "no_row" else f"version is {state}"
            message = f"not a visible version ({what})"
            self._found("orphan", self.store.display(folder), message, fixed=fixed)

    # -- other files ---------------------------------------------------------------------

    def _stray(self, path: str) -> None:
        if not self._old(self.fs.newest_mtime(path)):
            return
        if self.fix:
            self.fs.remove_tree(path)
        self._found("orphan", self.store.display(path), "not a visible version", fixed=self.fix)

    def _staging(self) -> None:
        base = f"{self.store.root}/{STAGING}"
        for name, is_dir in self.fs.listdir(base):
            path = f"{base}/{name}"
            started = staging_started(name)
            if not is_dir or not self._old(started) or not self._old(self.fs.newest_mtime(path)):
                continue
            if self.fix:
                self.fs.remove_tree(path)
            where = self.store.display(path)
            self._found("orphan", where, "abandoned staging folder", fixed=self.fix)

    def _gate_reports(self, key: ModelKey) -> None:
        # A gate run writes its reports first and its rows last: a crash between leaves a folder
        # that no gate run names.
        for version, _ in self.fs.listdir(self.store.gates_dir(key)):
            folder = f"{self.store.gates_dir(key)}/{version}"
            for run_id, _ in self.fs.listdir(folder):
                path = f"{folder}/{run_id}"
                if not self._old(self.fs.newest_mtime(path)) or self._run_recorded(key, run_id):
                    continue
                if self.fix:
                    self.fs.remove_tree(path)
                message = "gate reports of no recorded gate run"
                self._found("orphan", self.store.display(path), message, fixed=self.fix)

    def _run_recorded(self, key: ModelKey, run_id: str) -> bool:
        with self.registry.database.read() as conn:
            found = conn.execute(
                select(t.gate_runs.c.run_id).where(
                    t.gate_runs.c.symbol == key.symbol,
                    t.gate_runs.c.model_type == key.model_type,
                    t.gate_runs.c.run_id == run_id,
                )
            ).first()
        return found is not None

    def _links(self, key: ModelKey) -> None:
        link = self.store.latest_link(key)
        champion = self.registry.aliases(key).get(CHAMPION)
        target = self.fs.read_link(link)
        if target != (None if champion is None else str(champion)):
            if self.fix:
                self.registry.sync_latest_link(key)  # re-reads the champion at this moment
            message = f"latest points at {target}, champion is {champion}"
            self._found("stale_link", self.store.display(link), message, fixed=self.fix)
        for temp in Path(self.store.model_dir(key)).glob(f".{LATEST}.*"):
            try:
                made = os.lstat(temp).st_mtime
            except FileNotFoundError:
                continue  # a promote just renamed it over 'latest'
            if not self._old(made):
                continue  # a promote between making it and renaming it
            if self.fix:
                temp.unlink(missing_ok=True)
            self._found("orphan", str(temp), "leftover temporary link", fixed=self.fix)
