"""Plain result types returned by the registry: versions, alias moves, audit records, gate runs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from alphaops.core.errors import NotFoundError, UsageError
from alphaops.registry.manifest import Manifest
from alphaops.registry.refs import ModelKey

__all__ = [
    "ANY",
    "AliasMove",
    "AnyVersion",
    "AuditRecord",
    "GateAttachment",
    "GatePolicyRecord",
    "GateRun",
    "ModelVersion",
    "VersionStatus",
    "check_transition",
    "missing_version",
]


class AnyVersion(enum.Enum):
    """Sentinel type for "do not compare": ``expect=ANY`` skips the compare-and-swap check."""

    ANY = "any"


ANY = AnyVersion.ANY


class VersionStatus(enum.StrEnum):
    """Lifecycle of a version row; only ``ready`` versions are visible."""

    PENDING = "pending"
    READY = "ready"
    PRUNED = "pruned"
    FAILED = "failed"


_TRANSITIONS = {
    (VersionStatus.PENDING, VersionStatus.READY),
    (VersionStatus.PENDING, VersionStatus.FAILED),
    (VersionStatus.READY, VersionStatus.PRUNED),
}


def check_transition(old: VersionStatus, new: VersionStatus) -> None:
    """Raise :class:`UsageError` unless ``old -> new`` is a legal version status move.

    >>> check_transition(VersionStatus.PENDING, VersionStatus.READY)
    >>> check_transition(VersionStatus.PRUNED, VersionStatus.READY)
    Traceback (most recent call last):
    ...
    alphaops.core.errors.UsageError: a version cannot move from 'pruned' to 'ready'...
    """
    if (old, new) not in _TRANSITIONS:
        raise UsageError(
            f"a version cannot move from {old.value!r} to {new.value!r}",
            fix="publish a new version instead",
        )


@dataclass(frozen=True)
class ModelVersion:
    """One published version: its key, number, status, manifest and where its files are."""

    key: ModelKey
    version: int
    status: VersionStatus
    manifest_json: str = field(repr=False)
    manifest_sha256: str
    size_bytes: int
    created_at: datetime
    created_by: str
    location: str
    aliases: tuple[str, ...] = ()

    @cached_property
    def manifest(self) -> Manifest:
        """Return the parsed manifest (parsed on first use)."""
        return Manifest.model_validate_json(self.manifest_json)

    @property
    def ref(self) -> str:
        """Return the reference that names exactly this version, e.g. ``BTCUSDT/logreg/3``."""
        return f"{self.key}/{self.version}"


@dataclass(frozen=True)
class AliasMove:
    """What an alias move did: the alias went from one version to another at a generation."""

    key: ModelKey
    alias: str
    from_version: int | None
    to_version: int | None
    generation: int
    at: datetime


@dataclass(frozen=True)
class AuditRecord:
    """One row of the append-only audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    key: ModelKey
    alias: str | None
    from_version: int | None
    to_version: int | None
    reason: str
    host: str
    code_version: str
    generation: int


@dataclass(frozen=True)
class GateAttachment:
    """A report attached to a gate run: its file name, sha256 and size in bytes."""

    name: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class GatePolicyRecord:
    """One setting of the registry's gate policy (append-only; the newest is in force).

    A version is cleared for live traffic only by a passed gate run judged under the policy
    in force (its ``policy_hash``): a run under a more lenient policy file is kept, not honoured.
    """

    id: int
    policy_hash: str
    """sha256 of the policy's canonical JSON, as the gates record it on every run."""
    document: dict[str, Any] = field(repr=False, compare=False)
    created_at: datetime
    actor: str
    host: str
    reason: str


@dataclass(frozen=True)
class GateRun:
    """One row of the append-only gate log: what the gates decided for one exact version.

    ``document`` is the gates' own JSON record (the registry stores it as given);
    ``location`` is the folder holding the attached reports.
    """

    id: int
    run_id: str
    key: ModelKey
    version: int
    manifest_sha256: str
    passed: bool
    policy_hash: str | None
    document: dict[str, Any] = field(repr=False, compare=False)
    created_at: datetime
    actor: str
    host: str
    code_version: str
    location: str
    attachments: tuple[GateAttachment, ...] = ()

    @property
    def ref(self) -> str:
        """Return the reference of the version judged, e.g. ``BTCUSDT/lightgbm/3``."""
        return f"{self.key}/{self.version}"

    def attachment(self, name: str) -> GateAttachment:
        """Return the attachment called ``name``; raise ``NotFoundError`` naming the others."""
        found = next((a for a in self.attachments if a.name == name), None)
        if found is None:
            names = ", ".join(a.name for a in self.attachments) or "none"
            raise NotFoundError(
                f"gate run {self.run_id} of {self.ref} has no attachment {name!r}",
                fix=f"pick one of: {names}",
                ref=self.ref,
            )
        return found


def missing_version(key: ModelKey, version: int, status: str | None) -> NotFoundError:
    """Return the error for a version that does not exist (or is not ready: ``status``)."""
    return NotFoundError(
        f"{key}/{version} does not exist" + (f" (it is {status})" if status else ""),
        fix=f"list versions with: alphaops registry list {key}",
        ref=f"{key}/{version}",
    )
