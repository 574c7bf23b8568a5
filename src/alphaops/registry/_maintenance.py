"""Registry maintenance: verify, prune (retention), doctor (orphans, stale links), export/import."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, text, update

from alphaops.core.errors import IntegrityError, UsageError
from alphaops.registry import _schema as t
from alphaops.registry._archive import export_version, import_archive
from alphaops.registry._doctor import DoctorReport, Finding, doctor
from alphaops.registry._types import ModelVersion, VersionStatus, check_transition
from alphaops.registry.bundle import verify_bundle
from alphaops.registry.refs import ModelKey, ModelRef

if TYPE_CHECKING:
    from alphaops.registry.registry import Registry

__all__ = [
    "DoctorReport",
    "Finding",
    "PrunePolicy",
    "PruneReport",
    "VerifyReport",
    "doctor",
    "export_version",
    "import_archive",
    "prune",
    "verify",
]


@dataclass(frozen=True)
class VerifyReport:
    """The versions checked and the problems found; ``ok`` when there are none."""

    checked: list[str]
    problems: list[Finding]

    @property
    def ok(self) -> bool:
        """Return whether everything checked is intact."""
        return not self.problems


def verify(registry: Registry, ref: str | ModelRef | None, *, smoke_test: bool) -> VerifyReport:
    """Verify one version or every ready version, and (for all) that aliases point at ready ones."""
    targets = [registry.resolve(ref)] if ref is not None else registry.list_versions()
    problems: list[Finding] = []
    for found in targets:
        folder = registry.artifacts.version_dir(found.key, found.version)
        try:
            verify_bundle(
                registry.artifacts.fs,
                folder,
                smoke_test=smoke_test,
                manifest_sha256=found.manifest_sha256,
            )
        except IntegrityError as exc:
            problems.append(Finding("integrity", found.ref, str(exc)))
    if ref is None:
        query = select(t.aliases, t.versions.c.status).join(
            t.versions,
            (t.versions.c.symbol == t.aliases.c.symbol)
            & (t.versions.c.model_type == t.aliases.c.model_type)
            & (t.versions.c.version == t.aliases.c.version),
        )
        with registry.database.read() as conn:
            for row in conn.execute(query).all():
                if row.status != VersionStatus.READY.value:
                    where = f"{row.symbol}/{row.model_type}@{row.alias}"
                    problems.append(
                        Finding("alias", where, f"points at version {row.version} ({row.status})")
                    )
    return VerifyReport([v.ref for v in targets], problems)


@dataclass(frozen=True)
class PrunePolicy:
    """Retention: each rule adds versions to remove; aliased versions are never removed.

    ``keep_last`` removes all but the newest N versions of each model, ``max_age_days``
    removes versions older than that, ``max_total_bytes`` removes the oldest versions of each
    model until its ready versions fit.
    """

    keep_last: int | None = None
    max_age_days: float | None = None
    max_total_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.keep_last is None and self.max_age_days is None and self.max_total_bytes is None:
            raise UsageError(
                "a retention policy needs at least one rule",
                fix="pass --keep-last N, --max-age-days D or --max-size-mb M",
            )
        if self.keep_last is not None and self.keep_last < 0:
            raise UsageError(f"keep_last {self.keep_last} is negative", fix="use 0 or more")


@dataclass(frozen=True)
class PruneReport:
    """The versions removed (or that would be, with ``dry_run``) and the bytes freed."""

    removed: list[str]
    freed_bytes: int
    dry_run: bool


def _to_prune(
    versions: list[ModelVersion], policy: PrunePolicy, now: datetime
) -> list[ModelVersion]:
    newest_first = sorted(versions, key=lambda v: v.version, reverse=True)
    doomed: set[int] = set()
    if policy.keep_last is not None:
        doomed |= {v.version for v in newest_first[policy.keep_last :]}
    if policy.max_age_days is not None:
        cutoff = now - timedelta(days=policy.max_age_days)
        doomed |= {v.version for v in versions if v.created_at < cutoff}
    if policy.max_total_bytes is not None:
        total = sum(v.size_bytes for v in versions if v.version not in doomed)
        for v in reversed(newest_first):
            if total <= policy.max_total_bytes:
                break
            if v.version not in doomed and not v.aliases:
                doomed.add(v.version)
                total -= v.size_bytes
    return [v for v in versions if v.version in doomed and not v.aliases]


_DECIDED = text(
    "SELECT 1 FROM decisions WHERE symbol = :symbol AND model_type = :model_type "
    "AND version = :version LIMIT 1"
)


def _referenced(conn: Connection, v: ModelVersion) -> bool:
    # What must stay reproducible: a version a rollout compared (challenger or champion) and
    # a version whose decisions the journal holds (which model traded when, and on what).
    r = t.rollouts
    named = conn.execute(
        select(r.c.id)
        .where(
            r.c.symbol == v.key.symbol,
            r.c.model_type == v.key.model_type,
            (r.c.challenger_version == v.version) | (r.c.champion_version == v.version),
        )
        .limit(1)
    ).first()
    if named is not None:
        return True
    params = {"symbol": v.key.symbol, "model_type": v.key.model_type, "version": v.version}
    return conn.execute(_DECIDED, params).first() is not None


def prune(registry: Registry, policy: PrunePolicy, *, dry_run: bool, reason: str) -> PruneReport:
    """Apply ``policy`` to every model; mark versions pruned first, then delete their files.

    Never pruned: a version an alias points at (champion, challenger, previous, user
    aliases), one a rollout named (as challenger or champion), and one whose decisions the
    journal holds.
    """
    now = datetime.now(UTC)
    by_key: dict[ModelKey, list[ModelVersion]] = {}
    for v in registry.list_versions():
        by_key.setdefault(v.key, []).append(v)
    removed: list[ModelVersion] = []
    for versions in by_key.values():
        removed += _to_prune(versions, policy, now)
    with registry.database.read() as conn:
        removed = [v for v in removed if not _referenced(conn, v)]
    if not dry_run:
        for v in removed:
            with registry.database.write() as conn:
                if _referenced(conn, v):
                    continue  # a rollout or a journaled decision named it since we looked
                aliased = conn.execute(
                    select(t.aliases.c.alias).where(
                        t.aliases.c.symbol == v.key.symbol,
                        t.aliases.c.model_type == v.key.model_type,
                        t.aliases.c.version == v.version,
                    )
                ).first()
                if aliased is not None:
                    continue  # an alias moved onto it since we looked
                check_transition(VersionStatus.READY, VersionStatus.PRUNED)
                conn.execute(
                    update(t.versions)
                    .where(
                        t.versions.c.symbol == v.key.symbol,
                        t.versions.c.model_type == v.key.model_type,
                        t.versions.c.version == v.version,
                    )
                    .values(status=VersionStatus.PRUNED.value)
                )
                gen = registry._generation_in(conn)
                registry._audit(
                    conn, "prune", v.key, None, v.version, None, reason, registry.actor, gen
                )
            registry.artifacts.fs.remove_tree(registry.artifacts.version_dir(v.key, v.version))
    return PruneReport([v.ref for v in removed], sum(v.size_bytes for v in removed), dry_run)
