"""Registry maintenance: verify, prune (retention), doctor (orphans, stale links), export/import."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from alphaops.core.errors import IntegrityError, UsageError
from alphaops.core.names import validate_name
from alphaops.registry import _schema as t
from alphaops.registry._artifacts import GATES, STAGING
from alphaops.registry._db import as_utc
from alphaops.registry._types import ModelVersion, VersionStatus, check_transition
from alphaops.registry.bundle import Bundle, verify_bundle
from alphaops.registry.manifest import MANIFEST_FILE
from alphaops.registry.refs import CHAMPION, LATEST, ModelKey, ModelRef

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
class Finding:
    """One problem found by verify or doctor: what kind, where, and whether it was repaired."""

    kind: str
    where: str
    message: str
    fixed: bool = False


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


def prune(registry: Registry, policy: PrunePolicy, *, dry_run: bool, reason: str) -> PruneReport:
    """Apply ``policy`` to every model; mark versions pruned first, then delete their files."""
    now = datetime.now(UTC)
    by_key: dict[ModelKey, list[ModelVersion]] = {}
    for v in registry.list_versions():
        by_key.setdefault(v.key, []).append(v)
    removed: list[ModelVersion] = []
    for versions in by_key.values():
        removed += _to_prune(versions, policy, now)
    if not dry_run:
        for v in removed:
            with registry.database.write() as conn:
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

    Folders and pending versions younger than ``grace_s`` seconds are left alone: a publisher
    may still be writing them.
    """
    fs, store = registry.artifacts.fs, registry.artifacts
    findings: list[Finding] = []
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_s)
    with registry.database.read() as conn:
        rows = conn.execute(
            select(
                t.versions.c.id,
                t.versions.c.symbol,
                t.versions.c.model_type,
                t.versions.c.version,
                t.versions.c.status,
                t.versions.c.created_at,
            )
        ).all()
        runs = conn.execute(
            select(
                t.gate_runs.c.symbol,
                t.gate_runs.c.model_type,
                t.gate_runs.c.version,
                t.gate_runs.c.run_id,
            )
        ).all()
    status = {(r.symbol, r.model_type, r.version): r.status for r in rows}
    recorded = {(r.symbol, r.model_type, str(r.version), r.run_id) for r in runs}
    for r in rows:
        if r.status == VersionStatus.PENDING.value and as_utc(r.created_at) < cutoff:
            where = f"{r.symbol}/{r.model_type}/{r.version}"
            if fix:
                registry._set_status(int(r.id), VersionStatus.FAILED)
                fs.remove_tree(store.version_dir(ModelKey(r.symbol, r.model_type), int(r.version)))
            findings.append(Finding("stuck", where, "publish never finished", fixed=fix))
    for name, is_dir in fs.listdir(f"{store.root}/{STAGING}"):
        path = f"{store.root}/{STAGING}/{name}"
        if is_dir and _older(fs.modified(path), grace_s):
            if fix:
                fs.remove_tree(path)
            findings.append(Finding("orphan", store.display(path), "abandoned staging folder", fix))
    for key in registry.list_models():
        for name, is_dir in fs.listdir(store.model_dir(key)):
            path = f"{store.model_dir(key)}/{name}"
            state = status.get((key.symbol, key.model_type, int(name))) if name.isdigit() else None
            if (
                name.isdigit()
                and is_dir
                and state in (VersionStatus.READY.value, VersionStatus.PENDING.value)
            ):
                continue
            if (not is_dir and name == LATEST) or (is_dir and name == GATES):
                continue
            if not _older(fs.modified(path), grace_s):
                continue  # maybe a publisher between reserving its number and our read
            if fix:
                fs.remove_tree(path)
            findings.append(Finding("orphan", store.display(path), "not a visible version", fix))
        findings += _orphaned_gate_reports(registry, key, recorded, fix=fix, grace_s=grace_s)
        if store.local:
            champion = registry.aliases(key).get(CHAMPION)
            link = fs.read_link(store.latest_link(key))
            if link != (None if champion is None else str(champion)):
                if fix:
                    registry.sync_latest_link(key, champion)
                message = f"latest points at {link}, champion is {champion}"
                findings.append(
                    Finding("stale_link", store.display(store.latest_link(key)), message, fix)
                )
            for temp in Path(store.model_dir(key)).glob(f".{LATEST}.*"):
                if fix:
                    temp.unlink(missing_ok=True)
                findings.append(Finding("orphan", str(temp), "leftover temporary link", fix))
    return DoctorReport(findings)


def _orphaned_gate_reports(
    registry: Registry,
    key: ModelKey,
    recorded: set[tuple[str, str, str, str]],
    *,
    fix: bool,
    grace_s: float,
) -> list[Finding]:
    # A gate run writes its reports first and its rows last: a crash between leaves a folder
    # that no gate run names.
    fs, store = registry.artifacts.fs, registry.artifacts
    findings: list[Finding] = []
    for version, _ in fs.listdir(store.gates_dir(key)):
        folder = f"{store.gates_dir(key)}/{version}"
        for run_id, _ in fs.listdir(folder):
            if (key.symbol, key.model_type, version, run_id) in recorded:
                continue
            path = f"{folder}/{run_id}"
            if not _older(fs.modified(path), grace_s):
                continue  # maybe a gate run between writing its reports and its row
            if fix:
                fs.remove_tree(path)
            findings.append(
                Finding("orphan", store.display(path), "gate reports of no recorded gate run", fix)
            )
    return findings


def _older(mtime: float | None, grace_s: float) -> bool:
    return mtime is None or time.time() - mtime >= grace_s


_EXPORT_INFO = "alphaops-export.json"


def export_version(registry: Registry, ref: str | ModelRef, archive: Path) -> Path:
    """Write the bundle ``ref`` names, verified first, as one ``.tar.gz`` archive."""
    found = registry.resolve(ref)
    folder = registry.artifacts.version_dir(found.key, found.version)
    verify_bundle(registry.artifacts.fs, folder, manifest_sha256=found.manifest_sha256)
    info = {"ref": found.ref, "manifest_sha256": found.manifest_sha256, "format": 1}
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, _EXPORT_INFO, json.dumps(info, indent=2).encode())
        for rel in sorted(registry.artifacts.fs.sizes(folder)):
            _add(tar, f"bundle/{rel}", registry.artifacts.fs.read_bytes(f"{folder}/{rel}"))
    return archive


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mtime = 0
    tar.addfile(member, io.BytesIO(data))


def import_archive(registry: Registry, archive: Path, *, actor: str | None) -> ModelVersion:
    """Extract an export archive safely, verify the bundle fully, and publish it."""
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise IntegrityError(
            f"{archive} is not a readable archive: {exc}", fix="export it again", file=str(archive)
        ) from exc
    with tar:
        return _import_from(registry, archive, tar, actor=actor)


def _export_info(archive: Path, data: bytes) -> dict[str, object]:
    try:
        info = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(
            f"{archive}: {_EXPORT_INFO} is not valid JSON ({exc})",
            fix="export the version again with 'alphaops registry export'",
            file=_EXPORT_INFO,
        ) from exc
    if not isinstance(info, dict):
        raise IntegrityError(
            f"{archive}: {_EXPORT_INFO} holds a JSON {type(info).__name__}, not an object",
            fix="export the version again with 'alphaops registry export'",
            file=_EXPORT_INFO,
        )
    sha = info.get("manifest_sha256")
    if sha is not None and not isinstance(sha, str):
        raise IntegrityError(
            f"{archive}: manifest_sha256 in {_EXPORT_INFO} is {sha!r}, not a sha256 string",
            fix="export the version again with 'alphaops registry export'",
            file=_EXPORT_INFO,
        )
    return info


def _import_from(
    registry: Registry, archive: Path, tar: tarfile.TarFile, *, actor: str | None
) -> ModelVersion:
    with tempfile.TemporaryDirectory(prefix="alphaops-import-") as tmp:
        root = Path(tmp) / "bundle"
        info: dict[str, object] = {}
        for member in tar.getmembers():
            name = member.name
            if not member.isfile():
                if member.isdir():
                    continue
                raise IntegrityError(
                    f"{archive}: member {name!r} is not a regular file",
                    fix="export it again",
                    file=name,
                )
            source = tar.extractfile(member)
            assert source is not None
            data = source.read()
            if name == _EXPORT_INFO:
                info = _export_info(archive, data)
                continue
            parts = PurePosixPath(name).parts
            if len(parts) < 2 or parts[0] != "bundle":
                raise IntegrityError(
                    f"{archive}: unexpected member {name!r}", fix="export it again", file=name
                )
            for part in parts[1:]:
                validate_name(part, kind="file name")
            target = root.joinpath(*parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if not root.is_dir():
            raise IntegrityError(
                f"{archive} holds no bundle", fix="export it again", file=str(archive)
            )
        bundle = Bundle.load(root)
        expected = info.get("manifest_sha256")
        from alphaops.registry.bundle import sha256_bytes

        if expected is not None and sha256_bytes((root / MANIFEST_FILE).read_bytes()) != expected:
            raise IntegrityError(
                f"{archive}: manifest.json differs from the exported one",
                fix="export it again",
                file=MANIFEST_FILE,
            )
        return registry.publish(bundle, actor=actor)
