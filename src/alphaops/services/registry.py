"""Registry use cases: what ``alphaops registry …`` (and the HTTP API) call.

Each function opens the registry named by the config (or an explicit database URL and artifact
location), does one job, closes it, and returns plain results.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import IntegrityError, NotFoundError, UsageError
from alphaops.core.names import normalize_symbol
from alphaops.registry import (
    ANY,
    AliasMove,
    AnyVersion,
    AuditRecord,
    DoctorReport,
    GateRun,
    ModelVersion,
    PrunePolicy,
    PruneReport,
    Registry,
    VerifyReport,
)
from alphaops.registry.refs import CHAMPION, MAX_VERSION, parse_key, parse_ref
from alphaops.services._common import open_configured_registry

__all__ = [
    "RegistryLocation",
    "ShownVersion",
    "VersionListing",
    "audit_to_dict",
    "diff_versions",
    "doctor",
    "export_version",
    "failed_checks",
    "gate_run_to_dict",
    "history",
    "import_archive",
    "list_versions",
    "list_versions_with_gates",
    "move_to_dict",
    "parse_expect",
    "promote",
    "prune",
    "publish",
    "remove_alias",
    "rollback",
    "set_alias",
    "show",
    "verify",
    "version_to_dict",
]


@dataclass(frozen=True)
class RegistryLocation:
    """Where the registry is: the config's home by default, or a database URL + artifacts."""

    database_url: str | None = None
    artifacts: str | None = None


@contextmanager
def _open(
    config: AlphaOpsConfig, where: RegistryLocation, *, create: bool = False
) -> Iterator[Registry]:
    # Only publish and import may create a registry; everything else needs one that exists,
    # so that a mistyped --home or --db is an error, not an empty registry that says "ok".
    # Callers parse their references first: a malformed one is reported as such, whatever
    # the state of the home.
    with open_configured_registry(
        config, database_url=where.database_url, artifacts=where.artifacts, create=create
    ) as registry:
        yield registry


def parse_expect(text: str | None) -> int | AnyVersion | None:
    """Parse an ``--expect`` value: a version number, ``none`` (no version yet) or ``any``.

    >>> parse_expect("7"), parse_expect("none"), parse_expect(None)
    (7, None, <AnyVersion.ANY: 'any'>)
    >>> parse_expect("9223372036854775808")
    Traceback (most recent call last):
    ...
    alphaops.core.errors.UsageError: --expect '9223372036854775808' is not a version number...
    """
    if text is None or text.lower() == "any":
        return ANY
    if text.lower() in ("none", "unset"):
        return None
    if text.isdigit() and text.isascii():
        digits = text.lstrip("0") or "0"
        if len(digits) <= len(str(MAX_VERSION)) and 1 <= int(digits) <= MAX_VERSION:
            return int(digits)
    raise UsageError(
        f"--expect {text!r} is not a version number (1 to {MAX_VERSION})",
        fix="pass e.g. --expect 7, 'none' (no version yet) or 'any'",
    )


def _version_number(key: str, version: int, what: str) -> None:
    if not 1 <= version <= MAX_VERSION:
        raise UsageError(
            f"{what} {version} of {key} is not a version number (1 to {MAX_VERSION})",
            fix=f"use a published version: alphaops registry list {key}",
        )


def version_to_dict(v: ModelVersion) -> dict[str, Any]:
    """Return a JSON-ready summary of a version (what ``--json`` prints)."""
    m = v.manifest
    return {
        "ref": v.ref,
        "symbol": v.key.symbol,
        "model_type": v.key.model_type,
        "version": v.version,
        "status": v.status.value,
        "aliases": list(v.aliases),
        "created_at": v.created_at.isoformat(),
        "created_by": v.created_by,
        "size_bytes": v.size_bytes,
        "manifest_sha256": v.manifest_sha256,
        "location": v.location,
        "metrics": m.metrics,
        "manifest": m.model_dump(mode="json"),
    }


def failed_checks(run: GateRun) -> list[str]:
    """Return ``gate.check`` of every failed check of a gate run (empty if it is unreadable)."""
    from alphaops.gates.records import record_of  # only when needed: gates import pandas, onnx

    try:
        return record_of(run).failed_checks
    except IntegrityError:
        return []


def gate_run_to_dict(run: GateRun | None) -> dict[str, Any] | None:
    """Return a JSON-ready summary of a gate run (``None`` when the gates never ran)."""
    if run is None:
        return None
    return {
        "run_id": run.run_id,
        "passed": run.passed,
        "at": run.created_at.isoformat(),
        "actor": run.actor,
        "host": run.host,
        "code_version": run.code_version,
        "policy_hash": run.policy_hash,
        "manifest_sha256": run.manifest_sha256,
        "failed_checks": failed_checks(run),
        "location": run.location,
        "attachments": [
            {"name": a.name, "sha256": a.sha256, "size_bytes": a.size_bytes}
            for a in run.attachments
        ],
    }


def move_to_dict(move: AliasMove) -> dict[str, Any]:
    """Return a JSON-ready description of an alias move."""
    return {
        "model": str(move.key),
        "alias": move.alias,
        "from_version": move.from_version,
        "to_version": move.to_version,
        "generation": move.generation,
        "at": move.at.isoformat(),
    }


def audit_to_dict(record: AuditRecord) -> dict[str, Any]:
    """Return a JSON-ready audit record."""
    return {
        "id": record.id,
        "at": record.at.isoformat(),
        "actor": record.actor,
        "action": record.action,
        "model": str(record.key),
        "alias": record.alias,
        "from_version": record.from_version,
        "to_version": record.to_version,
        "reason": record.reason,
        "host": record.host,
        "code_version": record.code_version,
        "generation": record.generation,
    }


def list_versions(
    config: AlphaOpsConfig, where: RegistryLocation, selector: str | None = None
) -> list[ModelVersion]:
    """Return ready versions of everything, of one symbol (``BTCUSDT``) or one model.

    A symbol or model never published raises ``NotFoundError`` naming the models there are.
    """
    _parse_selector(selector)
    with _open(config, where) as registry:
        if selector is None:
            return registry.list_versions()
        if "/" in selector:
            return registry.list_versions(selector)
        return registry.list_versions(symbol=_published_symbol(registry, selector))


def _parse_selector(selector: str | None) -> None:
    if selector is not None and "/" in selector:
        parse_key(selector)
    elif selector is not None:
        normalize_symbol(selector)


def _published_symbol(registry: Registry, selector: str) -> str:
    symbol = normalize_symbol(selector)
    models = registry.list_models()
    if not any(m.symbol == symbol for m in models):
        shown = ", ".join(str(m) for m in models[:20]) + (", …" if len(models) > 20 else "")
        raise NotFoundError(
            f"symbol {symbol} was never published in registry {registry.database.safe_url} "
            "(it holds no model of it)",
            fix=f"use one of the models it holds: {shown} (alphaops registry list shows them)"
            if models
            else "this registry holds no model yet: publish one (alphaops train …, alphaops "
            "registry import ARCHIVE), or check --home / ALPHAOPS_HOME and --db",
            symbol=symbol,
        )
    return symbol


@dataclass(frozen=True)
class VersionListing:
    """Versions and ``{ref: passed}`` of the newest gate run of each gated one."""

    versions: list[ModelVersion]
    gates: dict[str, bool]


def list_versions_with_gates(
    config: AlphaOpsConfig, where: RegistryLocation, selector: str | None = None
) -> VersionListing:
    """Return :func:`list_versions` plus each version's newest gate verdict (one more query)."""
    _parse_selector(selector)
    with _open(config, where) as registry:
        if selector is None:
            return VersionListing(registry.list_versions(), registry.gate_verdicts())
        if "/" in selector:
            return VersionListing(
                registry.list_versions(selector), registry.gate_verdicts(selector)
            )
        symbol = _published_symbol(registry, selector)
        return VersionListing(
            registry.list_versions(symbol=symbol), registry.gate_verdicts(symbol=symbol)
        )


@dataclass(frozen=True)
class ShownVersion:
    """One version and its newest gate run (``None`` when its gates never ran)."""

    version: ModelVersion
    gates: GateRun | None


def show(config: AlphaOpsConfig, where: RegistryLocation, ref: str) -> ShownVersion:
    """Return the version ``ref`` names with its newest gate run."""
    parse_ref(ref)
    with _open(config, where) as registry:
        found = registry.resolve(ref)
        _ = found.manifest  # parse while open so errors surface here
        return ShownVersion(found, registry.latest_gates(found))


def diff_versions(
    config: AlphaOpsConfig, where: RegistryLocation, left: str, right: str
) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Return what differs between two versions, by section: ``{section: {field: (a, b)}}``."""
    parse_ref(left)
    parse_ref(right)
    with _open(config, where) as registry:
        a, b = registry.resolve(left).manifest, registry.resolve(right).manifest
    sections: dict[str, tuple[Any, Any]] = {
        "metrics": (a.metrics, b.metrics),
        "params": (a.params, b.params),
        "features": (
            {f.name: f.dtype for f in a.features} | {"(order)": [f.name for f in a.features]},
            {f.name: f.dtype for f in b.features} | {"(order)": [f.name for f in b.features]},
        ),
        "data": (a.data.model_dump(mode="json"), b.data.model_dump(mode="json")),
        "input": (a.input.model_dump(mode="json"), b.input.model_dump(mode="json")),
        "label": (a.label.model_dump(mode="json"), b.label.model_dump(mode="json")),
        "files": ({f.path: f.sha256 for f in a.files}, {f.path: f.sha256 for f in b.files}),
        "build": (
            {"seed": a.seed, "code_version": a.code_version} | a.library_versions,
            {"seed": b.seed, "code_version": b.code_version} | b.library_versions,
        ),
    }
    out: dict[str, dict[str, tuple[Any, Any]]] = {}
    for name, (x, y) in sections.items():
        changed = {k: (x.get(k), y.get(k)) for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}
        if changed:
            out[name] = changed
    return out


def history(
    config: AlphaOpsConfig, where: RegistryLocation, key: str, limit: int | None = None
) -> list[AuditRecord]:
    """Return the audit log of one model, oldest first (``NotFoundError`` if it is unknown)."""
    parse_key(key)
    with _open(config, where) as registry:
        return registry.history(key, limit=limit)


def verify(
    config: AlphaOpsConfig, where: RegistryLocation, ref: str | None, *, smoke_test: bool = True
) -> VerifyReport:
    """Verify one version or the whole registry."""
    if ref is not None:
        parse_ref(ref)
    with _open(config, where) as registry:
        return registry.verify(ref, smoke_test=smoke_test)


def promote(
    config: AlphaOpsConfig,
    where: RegistryLocation,
    ref: str,
    *,
    expect: int | AnyVersion | None,
    reason: str,
    alias: str = CHAMPION,
    force: bool = False,
) -> AliasMove:
    """Promote ``ref`` to ``alias`` by compare-and-swap.

    Promotion to champion is fail-closed: it is refused (``GateFailedError``, exit 2) when the
    version's gates failed or never ran, unless ``force`` is given with a reason, which the
    audit log records as forced past the gates.
    """
    parse_ref(ref)
    with _open(config, where) as registry:
        version = registry.resolve(ref)
        return registry.promote(version.ref, expect=expect, reason=reason, alias=alias, force=force)


def rollback(
    config: AlphaOpsConfig,
    where: RegistryLocation,
    key: str,
    *,
    reason: str,
    expect: int | AnyVersion | None = ANY,
    to: int | None = None,
) -> AliasMove:
    """Roll the champion of ``key`` back to ``previous`` (or to the former champion ``to``)."""
    if to is not None:
        _version_number(key, to, "rollback target")
    parse_key(key)
    with _open(config, where) as registry:
        return registry.rollback(key, reason=reason, expect=expect, to=to)


def set_alias(
    config: AlphaOpsConfig,
    where: RegistryLocation,
    key: str,
    alias: str,
    version: int,
    *,
    reason: str,
    expect: int | AnyVersion | None = ANY,
) -> AliasMove:
    """Point a user alias (or ``challenger``) at a version."""
    _version_number(key, version, "version")
    parse_key(key)
    with _open(config, where) as registry:
        return registry.set_alias(key, alias, version, reason=reason, expect=expect)


def remove_alias(
    config: AlphaOpsConfig,
    where: RegistryLocation,
    key: str,
    alias: str,
    *,
    reason: str,
    expect: int | AnyVersion | None = ANY,
) -> AliasMove:
    """Remove a user alias (or ``challenger``)."""
    parse_key(key)
    with _open(config, where) as registry:
        return registry.remove_alias(key, alias, reason=reason, expect=expect)


def prune(
    config: AlphaOpsConfig, where: RegistryLocation, policy: PrunePolicy, *, dry_run: bool
) -> PruneReport:
    """Apply a retention policy."""
    with _open(config, where) as registry:
        return registry.prune(policy, dry_run=dry_run)


def doctor(
    config: AlphaOpsConfig, where: RegistryLocation, *, fix: bool, grace_s: float
) -> DoctorReport:
    """Find (and repair) orphaned files, stuck versions and stale ``latest`` links."""
    with _open(config, where) as registry:
        return registry.doctor(fix=fix, grace_s=grace_s)


def export_version(
    config: AlphaOpsConfig, where: RegistryLocation, ref: str, output: Path | None
) -> Path:
    """Write one version as a ``.tar.gz`` archive (default name ``SYMBOL-TYPE-N.tar.gz``)."""
    parse_ref(ref)
    with _open(config, where) as registry:
        found = registry.resolve(ref)
        name = f"{found.key.symbol}-{found.key.model_type}-{found.version}.tar.gz"
        return registry.export(found.ref, output or Path(name))


def import_archive(config: AlphaOpsConfig, where: RegistryLocation, archive: Path) -> ModelVersion:
    """Verify an exported archive and publish it as a new version."""
    if not archive.is_file():
        raise IntegrityError(
            f"archive {archive} does not exist", fix="check the path", file=str(archive)
        )
    with _open(config, where, create=True) as registry:
        return registry.import_archive(archive)


def publish(config: AlphaOpsConfig, where: RegistryLocation, folder: Path) -> ModelVersion:
    """Verify a bundle folder and publish it as the next version of its model."""
    with _open(config, where, create=True) as registry:
        return registry.publish(folder)
