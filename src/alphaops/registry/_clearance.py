"""Gate clearance, judged by the registry itself from its own append-only gate log.

A version is *cleared* for live traffic when the newest gate run recorded for it passed,
judged exactly its manifest (its sha256), was judged under the registry's gate policy in force
(its hash; a lenient ``--policy`` file proves nothing), and evaluated it on bars after its
training data (the manifest's ``data.end``, which covers the early-stopping window too): a gate
run on data the model was fitted on proves nothing. The registry checks this inside the transaction
that moves ``champion`` (``promote``) or takes a rollout live, so no caller (library, CLI, a
bot, a service) can skip it, and a bot never imports the gates to know it. ``force`` with a
reason turns a refusal into a clearance whose audit reason says it was forced and why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from alphaops.core.errors import GateFailedError, UsageError
from alphaops.registry import _schema as schema
from alphaops.registry.refs import ModelKey

__all__ = ["Clearance", "clearance_in", "failed_checks_of", "judge_clearance"]


def _of_version(table: Any) -> tuple[Any, ...]:
    return (
        table.c.symbol == bindparam("k_symbol"),
        table.c.model_type == bindparam("k_model_type"),
        table.c.version == bindparam("k_version"),
    )


def _version_column(column: Any, label: str) -> Any:
    return select(column).where(*_of_version(schema.versions)).scalar_subquery().label(label)


# One statement on the pass path: the newest run's verdict, window and policy beside the
# version's manifest (its sha256, and the text for the end of its training data) and the
# registry's gate policy in force.
_NEWEST_RUN = (
    select(
        schema.gate_runs.c.id,
        schema.gate_runs.c.passed,
        schema.gate_runs.c.manifest_sha256,
        schema.gate_runs.c.run_id,
        schema.gate_runs.c.policy_hash,
        schema.gate_runs.c.document["window_start"].as_string().label("window_start"),
        select(schema.gate_policies.c.policy_hash)
        .order_by(schema.gate_policies.c.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("required_policy"),
        _version_column(schema.versions.c.manifest_sha256, "current_manifest"),
        _version_column(schema.versions.c.manifest, "manifest"),
    )
    .where(*_of_version(schema.gate_runs))
    .order_by(schema.gate_runs.c.id.desc())
    .limit(1)
)
_DOCUMENT = select(schema.gate_runs.c.document).where(schema.gate_runs.c.id == bindparam("k_id"))


@dataclass(frozen=True)
class Clearance:
    """Whether a version may take live traffic, and the reason the audit log records."""

    ref: str
    passed: bool
    """The newest gate run passed on this exact manifest."""
    forced: bool
    """Not passed, but forced with a reason."""
    why: str
    """``gates passed``, or why the version is not cleared."""
    audit_reason: str
    """The caller's reason, marked ``[FORCED past gates: …]`` when forced."""
    run_id: str | None
    failed_checks: tuple[str, ...] = ()


def failed_checks_of(document: Mapping[str, Any]) -> tuple[str, ...]:
    """Return ``gate.check`` of every failed check in a gate run's JSON document.

    >>> failed_checks_of({"gates": [{"gate": "quality", "checks": [
    ...     {"name": "majority_share", "passed": False}, {"name": "nan", "passed": True}]}]})
    ('quality.majority_share',)
    """
    found: list[str] = []
    for gate in document.get("gates", ()) or ():
        if not isinstance(gate, Mapping):
            continue
        for check in gate.get("checks", ()) or ():
            if isinstance(check, Mapping) and not check.get("passed", False):
                found.append(f"{gate.get('gate')}.{check.get('name')}")
    return tuple(found)


def judge_clearance(
    ref: str,
    manifest_sha256: str,
    newest: Mapping[str, Any] | None,
    *,
    trained_until: datetime | None = None,
    required_policy: str | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Clearance:
    """Judge clearance from the newest gate run (``None``: the gates never ran).

    ``newest`` holds ``passed``, ``manifest_sha256``, ``run_id``, ``document``,
    ``window_start`` (ISO time of the first evaluated bar) and ``policy_hash``. With
    ``trained_until`` (the end of the version's training data) a window starting at or before
    it is in-sample and not cleared, as is a run that names no window. With
    ``required_policy`` (the hash of the registry's gate policy in force) a run judged under
    any other policy does not clear.

    Raise :class:`GateFailedError` (exit 2) when not cleared and not forced, and
    :class:`UsageError` when forced without a reason.

    >>> judge_clearance("BTCUSDT/lightgbm/3", "a" * 64, None)
    Traceback (most recent call last):
    ...
    alphaops.core.errors.GateFailedError: BTCUSDT/lightgbm/3 has no gate results: gates never ran...
    >>> judge_clearance("BTCUSDT/lightgbm/3", "a" * 64, None, force=True,
    ...     reason="hotfix").audit_reason
    'hotfix [FORCED past gates: gates never ran]'
    """
    if force and not (reason and reason.strip()):
        raise UsageError(
            f"forcing {ref} past its gates needs a reason",
            fix="pass --force --reason 'why this version must go live anyway'",
        )
    failed: tuple[str, ...] = ()
    run_id = None if newest is None else str(newest["run_id"])
    if newest is None:
        why = "gates never ran"
    elif newest["manifest_sha256"] != manifest_sha256:
        why = "its gate record is for another manifest (re-published?)"
    elif not newest["passed"]:
        failed = failed_checks_of(newest.get("document") or {})
        why = "gates failed: " + (", ".join(failed) or "see the gate report")
    elif required_policy is not None and newest.get("policy_hash") != required_policy:
        used = newest.get("policy_hash")
        shown = f"{str(used)[:12]}…" if used else "none recorded"
        why = (
            f"its gates passed under policy {shown}, not the registry's gate policy "
            f"{required_policy[:12]}… (see 'alphaops gate policy show')"
        )
    elif trained_until is not None and (in_sample := _in_sample(newest, trained_until)):
        why = in_sample
    else:
        return Clearance(ref, True, False, "gates passed", reason or "gates passed", run_id)
    if force:
        audit = f"{reason} [FORCED past gates: {why}]"
        return Clearance(ref, False, True, why, audit, run_id, failed)
    raise GateFailedError(
        f"{ref} has no gate results: {why}"
        if newest is None
        else f"{ref} is not cleared for live traffic: {why}",
        fix=f"run 'alphaops gate run {ref}' and fix what fails, or promote with "
        "--force --reason '…' (written to the audit log)",
        ref=ref,
        failed_checks=list(failed),
    )


def _in_sample(newest: Mapping[str, Any], trained_until: datetime) -> str | None:
    # Why the run's window proves nothing out of sample, or None when it is after training.
    text = newest.get("window_start")
    try:
        start = datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        start = None
    if start is None:
        return "its gate run names no evaluation window, so it may be in-sample"
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if start <= trained_until:
        return (
            f"its gates ran on bars from {start.isoformat()}, inside its training data "
            f"(up to {trained_until.isoformat()}): gate it on bars after its training window"
        )
    return None


def clearance_in(
    conn: Connection,
    key: ModelKey,
    version: int,
    *,
    force: bool = False,
    reason: str | None = None,
) -> Clearance:
    """Judge the clearance of ``key/version`` inside an open transaction."""
    where = {"k_symbol": key.symbol, "k_model_type": key.model_type, "k_version": version}
    row = conn.execute(_NEWEST_RUN, where).first()
    if row is None:
        return judge_clearance(f"{key}/{version}", "", None, force=force, reason=reason)
    newest: dict[str, Any] = {
        "passed": bool(row.passed),
        "manifest_sha256": row.manifest_sha256,
        "run_id": row.run_id,
        "document": {},
        "window_start": row.window_start,
        "policy_hash": row.policy_hash,
    }
    if not row.passed:  # only a refusal reads the document, to name the failed checks
        document = conn.execute(_DOCUMENT, {"k_id": row.id}).scalar()
        if isinstance(document, str):  # a driver that hands JSON back as text
            document = json.loads(document)
        newest["document"] = document or {}
    return judge_clearance(
        f"{key}/{version}",
        str(row.current_manifest),
        newest,
        trained_until=_trained_until(row.manifest),
        required_policy=row.required_policy,
        force=force,
        reason=reason,
    )


def _trained_until(manifest: str | None) -> datetime | None:
    if not manifest:
        return None
    end = datetime.fromisoformat(json.loads(manifest)["data"]["end"])
    return end if end.tzinfo is not None else end.replace(tzinfo=UTC)
