"""Gate records: what a gate run decided for one registry version, and the promotion check.

A :class:`GateRecord` names the exact version (key, number and manifest sha256), the window,
the policy and its hash, every gate outcome, and the reports attached. :class:`GateRecordStore`
keeps them in the registry's append-only gate log (``Registry.record_gates``): the record is
the run's JSON document, the reports are attached files verified by sha256, on whatever
database and artifact store the registry uses (SQLite or PostgreSQL, a folder or S3).
:func:`ensure_gates_passed` is the check a promote must call: it refuses a version whose gates
failed or never ran unless forced with a reason, and returns the reason for the audit log.

>>> import tempfile, pathlib
>>> from alphaops.registry import open_registry
>>> from alphaops.registry.testing import build_tiny_bundle
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> registry = open_registry(tmp / "home")
>>> v = registry.publish(build_tiny_bundle(tmp / "bundle", seed=1))
>>> store = GateRecordStore(registry)
>>> store.latest(v) is None
True
>>> ensure_gates_passed(store, v.key, v.version, manifest_sha256=v.manifest_sha256)
Traceback (most recent call last):
...
alphaops.core.errors.GateFailedError: BTCUSDT/logreg/1 has no gate results: gates never ran...
>>> ensure_gates_passed(store, v.key, v.version, manifest_sha256=v.manifest_sha256,
...     force=True, reason="hotfix").audit_reason
'hotfix [FORCED past gates: gates never ran]'
>>> registry.close()
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alphaops._version import __version__
from alphaops.core.errors import IntegrityError, NotFoundError, SpecError
from alphaops.gates.policy import GatePolicy
from alphaops.gates.results import GateOutcome
from alphaops.registry import (
    GatePolicyRecord,
    GateRun,
    ModelKey,
    ModelRef,
    ModelVersion,
    Registry,
    parse_key,
)
from alphaops.registry.manifest import GateResult

__all__ = [
    "GateClearance",
    "GateRecord",
    "GateRecordStore",
    "ensure_gates_passed",
    "ensure_policy",
    "policy_of",
    "record_of",
]


class GateRecord(BaseModel):
    """The outcome of one gate run for one version (JSON; unknown fields refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    symbol: str
    model_type: str
    version: int = Field(ge=1)
    manifest_sha256: str = Field(description="The manifest the gates judged.")
    champion: str | None = Field(description="The champion compared with (SYMBOL/TYPE/N).")
    passed: bool
    gates: tuple[GateOutcome, ...]
    window_start: datetime
    window_end: datetime
    policy: dict[str, Any]
    policy_hash: str
    run_at: datetime
    code_version: str
    reports: tuple[str, ...] = Field(default=(), description="Attached report file names.")

    @property
    def ref(self) -> str:
        """Return ``SYMBOL/TYPE/VERSION``."""
        return f"{self.symbol}/{self.model_type}/{self.version}"

    @property
    def failed_checks(self) -> list[str]:
        """Return ``gate.check`` for every failed check."""
        return [f"{g.gate}.{c.name}" for g in self.gates for c in g.failed]

    def gate(self, name: str) -> GateOutcome:
        """Return the outcome of the gate called ``name``."""
        found = next((g for g in self.gates if g.gate == name), None)
        if found is None:
            raise KeyError(f"{self.ref}: no gate {name!r} in this record")
        return found

    def to_manifest_results(self) -> list[GateResult]:
        """Return the checks as the registry manifest's :class:`GateResult` entries."""
        return [
            GateResult(
                name=f"{g.gate}.{c.name}",
                passed=c.passed,
                value=c.value,
                threshold=c.threshold,
                detail=c.explanation,
            )
            for g in self.gates
            for c in g.checks
        ]


class GateRecordStore:
    """Gate records of a registry's versions, kept in the registry's append-only gate log."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def save(self, record: GateRecord, attachments: Mapping[str, bytes] | None = None) -> GateRun:
        """Record ``record`` for its version with ``attachments``; return the registry's run.

        The registry refuses a record whose manifest sha256 is not the version's
        (``IntegrityError``) and a version that does not exist (``NotFoundError``).
        """
        ensure_policy(self.registry)
        names = tuple(sorted({*record.reports, *(attachments or {})}))
        final = record.model_copy(update={"reports": names})
        return self.registry.record_gates(
            final.ref,
            manifest_sha256=final.manifest_sha256,
            passed=final.passed,
            document=json.loads(final.model_dump_json()),
            attachments=attachments,
            policy_hash=final.policy_hash,
        )

    def latest(self, ref: str | ModelRef | ModelVersion) -> GateRecord | None:
        """Return the newest record of a version, or ``None`` when its gates never ran."""
        run = self.registry.latest_gates(ref)
        return None if run is None else record_of(run)

    def history(self, ref: str | ModelRef | ModelVersion) -> list[GateRecord]:
        """Return every record of a version, oldest first."""
        return [record_of(run) for run in self.registry.gate_runs(ref)]

    def read_report(self, ref: str | ModelRef | ModelVersion, name: str) -> bytes:
        """Return a report attached to the newest gate run of a version (checksum verified)."""
        run = self.registry.latest_gates(ref)
        if run is None:
            name_of = ref.ref if isinstance(ref, ModelVersion) else str(ref)
            raise NotFoundError(
                f"{name_of} has no gate reports: its gates never ran",
                fix=f"run the gates first: alphaops gate run {name_of}",
                ref=name_of,
            )
        return self.registry.read_gate_attachment(run, name)


DEFAULT_POLICY_REASON = "alphaops default gate policy"
"""How a policy row set by alphaops itself (not by a person) begins its reason."""


def ensure_policy(registry: Registry) -> GatePolicy:
    """Return the registry's gate policy in force, setting the defaults when it has none.

    The first gate run recorded in a registry fixes its policy to :class:`GatePolicy`'s
    defaults (not to whatever file that run used), so a lenient ``--policy`` can never become
    the bar by being first; change it with ``alphaops gate policy set FILE --reason``.
    A policy alphaops set follows the defaults of the alphaops running; a policy a person
    set keeps its values, and settings added since are completed with their defaults. Each
    such change is a new row of the policy history, with its reason.
    """
    current = registry.gate_policy()
    defaults = GatePolicy()
    if current is None or (
        current.reason.startswith(DEFAULT_POLICY_REASON)
        and current.policy_hash != defaults.policy_hash
    ):
        current = registry.set_gate_policy(
            defaults.to_dict(), reason=f"{DEFAULT_POLICY_REASON} of alphaops {__version__}"
        )
    policy = policy_of(current)
    if policy.policy_hash != current.policy_hash:  # settings added since it was set
        current = registry.set_gate_policy(
            policy.to_dict(),
            reason=f"{current.reason} [completed with the defaults of alphaops {__version__}]",
        )
    return policy


def policy_of(record: GatePolicyRecord) -> GatePolicy:
    """Return the :class:`GatePolicy` a registry policy row holds (``IntegrityError`` if its
    document no longer reads as one, e.g. written by a newer alphaops)."""
    try:
        return GatePolicy.from_dict(record.document)
    except (SpecError, ValidationError) as exc:
        raise IntegrityError(
            f"the registry's gate policy {record.policy_hash[:12]}… is not a gate policy this "
            f"alphaops can read ({exc})",
            fix="upgrade alphaops, or set a policy it reads: alphaops gate policy set FILE "
            "--reason '…'",
        ) from exc


def record_of(run: GateRun) -> GateRecord:
    """Return the :class:`GateRecord` a registry gate run holds; ``IntegrityError`` if unreadable."""
    try:
        return GateRecord.model_validate(run.document)
    except ValidationError as exc:
        raise IntegrityError(
            f"gate run {run.run_id} of {run.ref} holds no readable gate record ({exc})",
            fix=f"re-run the gates: alphaops gate run {run.ref}",
            ref=run.ref,
        ) from exc


@dataclass(frozen=True)
class GateClearance:
    """May this version be promoted: yes because its gates passed, or because it was forced."""

    ref: str
    passed: bool
    forced: bool
    record: GateRecord | None
    audit_reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "ref": self.ref,
            "passed": self.passed,
            "forced": self.forced,
            "audit_reason": self.audit_reason,
            "failed_checks": self.record.failed_checks if self.record else [],
        }


def ensure_gates_passed(
    store: GateRecordStore,
    key: ModelKey | str,
    version: int,
    *,
    manifest_sha256: str,
    force: bool = False,
    reason: str | None = None,
) -> GateClearance:
    """Refuse (``GateFailedError``, exit 2) a version whose gates failed or never ran.

    The newest record must be for this exact manifest. With ``force`` and a non-empty
    ``reason`` the refusal becomes a clearance whose ``audit_reason`` says it was forced and
    why: pass it as the promote reason so that the audit log carries it.
    """
    key = parse_key(key) if isinstance(key, str) else key
    ref = f"{key}/{version}"
    current = store.registry.get(key, version).manifest_sha256
    if current != manifest_sha256:
        raise IntegrityError(
            f"{ref} has manifest {current[:16]}…, not the {manifest_sha256[:16]}… asked about",
            fix=f"re-read the version (alphaops registry show {ref}) and check again",
            ref=ref,
        )
    # The registry's own judgement (the one its promote applies), with the record to show.
    found = store.registry.clearance(ref, force=force, reason=reason)
    return GateClearance(ref, found.passed, found.forced, store.latest(ref), found.audit_reason)
