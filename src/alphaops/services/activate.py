"""Activate a version in a bot that reads its model from an env file, with a safe way back.

``activate``: gates first (fail closed, the same clearance as ``registry promote``); a
timestamped backup of the env file; only the one ``KEY=`` line changes (anchored; every other
byte stays as it was; atomic write by temp file + ``os.replace``); an audit record with the
version and code versions; restart; health check; on a failed health check the backup is
restored and the service restarted again. ``rollback_last`` restores the newest backup and
audits which activation it undid (read from the record written beside the backup).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import ExternalServiceError, GateFailedError, NotFoundError, UsageError
from alphaops.registry import ModelVersion, Registry
from alphaops.registry.refs import parse_ref
from alphaops.services._common import open_configured_registry
from alphaops.services.registry import RegistryLocation

__all__ = [
    "ACTIVATION_SUFFIX",
    "BACKUP_MARK",
    "Activation",
    "Restoration",
    "activate",
    "backups_of",
    "replace_env_value",
    "rollback_last",
]

BACKUP_MARK = ".alphaops-backup-"
ACTIVATION_SUFFIX = ".activation.json"
"""Beside each backup: which version the activation that made the backup put in place."""
ValueKind = Literal["path", "ref"]


@dataclass(frozen=True)
class Activation:
    """What ``activate`` did."""

    ref: str
    value: str
    env_file: Path
    key: str
    backup: Path


@dataclass(frozen=True)
class Restoration:
    """What ``rollback_last`` did: the backup restored and the activation it undid
    (``None`` when the backup carries no activation record, so nothing could be audited)."""

    backup: Path
    undid: str | None


def replace_env_value(text: bytes, key: str, value: str) -> bytes:
    """Return ``text`` with the value of the one ``KEY=`` line replaced, nothing else changed.

    The line is matched anchored (optionally ``export KEY=``); its quotes and line ending stay.

    >>> replace_env_value(b"A=1\\nMODEL='old'\\r\\nB=2", "MODEL", "new")
    b"A=1\\nMODEL='new'\\r\\nB=2"
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise UsageError(f"env key {key!r} is not a valid name", fix="pass e.g. --key MODEL_PATH")
    if any(c in value for c in "\r\n\"'"):
        raise UsageError(f"env value {value!r} holds quotes or newlines", fix="use a plain path")
    line = re.compile(
        rb"^([ \t]*(?:export[ \t]+)?"
        + key.encode()
        + rb"[ \t]*=[ \t]*)(['\"]?)([^\r\n]*?)\2([ \t]*)(?=\r?$)",
        re.MULTILINE,
    )
    found = list(line.finditer(text))
    if len(found) != 1:
        raise UsageError(
            f"the env file has {len(found)} lines setting {key}, not exactly one",
            fix=f"keep one '{key}=…' line in the file",
        )
    m = found[0]
    new = m.group(1) + m.group(2) + value.encode() + m.group(2) + m.group(4)
    return text[: m.start()] + new + text[m.end() :]


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def backups_of(env_file: Path) -> list[Path]:
    """Return the backups of ``env_file``, oldest first."""
    found = env_file.parent.glob(env_file.name + BACKUP_MARK + "*")
    return sorted(p for p in found if not p.name.endswith(ACTIVATION_SUFFIX))


def _activation_record(backup: Path) -> Path:
    return backup.with_name(backup.name + ACTIVATION_SUFFIX)


def _run(cmd: str, what: str, timeout_s: float) -> tuple[bool, str]:
    try:
        # The operator's own command, split without a shell. A restart command that starts a
        # daemon must detach its output, or this waits for the daemon to close the pipes.
        done = subprocess.run(
            shlex.split(cmd), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{what} command {cmd!r} failed: {exc}"
    out = (done.stdout + done.stderr).strip()
    return done.returncode == 0, f"{what} command {cmd!r} exited {done.returncode}: {out}"


def _cleared_reason(registry: Registry, version: ModelVersion, reason: str) -> str:
    """Return the audit reason of activating ``version``; raise when it may not take traffic.

    The current champion is activated as it is, whether its gates passed or it was promoted
    past them with ``--force`` (that decision is already in the audit log, and a bot that
    follows the champion serves it anyway); any other version needs the gates' clearance.
    """
    try:
        return registry.clearance(version.ref, reason=reason).audit_reason
    except GateFailedError:
        if registry.aliases(version.key).get("champion") != version.version:
            raise
        return f"{reason} [the champion, promoted past its gates: see the audit log]"


def activate(
    config: AlphaOpsConfig,
    where: RegistryLocation,
    *,
    env_file: Path,
    key: str,
    ref: str,
    restart_cmd: str,
    health_cmd: str,
    reason: str = "activate",
    value: ValueKind = "path",
    timeout_s: float = 120.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Activation:
    """Point ``key`` in ``env_file`` at ``ref`` (its bundle folder, or the ref itself), restart
    and health-check; on a failed check restore the backup, restart, and raise."""
    if not env_file.is_file():
        raise NotFoundError(f"env file {env_file} does not exist", fix="pass the bot's env file")
    parse_ref(ref)  # a malformed reference is reported as such, before the registry is opened
    with open_configured_registry(
        config, database_url=where.database_url, artifacts=where.artifacts, create=False
    ) as registry:
        version = registry.resolve(ref)
        audit_reason = _cleared_reason(registry, version, reason)
        new_value = version.location if value == "path" else version.ref
        with _env_file_access(env_file, "read"):
            original = env_file.read_bytes()
        updated = replace_env_value(original, key, new_value)
        backup = env_file.with_name(
            env_file.name + BACKUP_MARK + now().strftime("%Y%m%dT%H%M%S%fZ")
        )
        record = {"ref": version.ref, "key": key, "value": new_value}
        try:
            with _env_file_access(env_file, "write a backup of"):
                shutil.copy2(env_file, backup)
                _activation_record(backup).write_text(json.dumps(record, sort_keys=True) + "\n")
                _write_atomic(env_file, updated)
        except UsageError:
            # Nothing was activated: leave no backup that rollback-last would restore.
            backup.unlink(missing_ok=True)
            _activation_record(backup).unlink(missing_ok=True)
            raise
        registry.record_activation(version, reason=_note(audit_reason, env_file, key, version))
        ok, detail = _run(restart_cmd, "restart", timeout_s)
        if ok:
            ok, detail = _run(health_cmd, "health", timeout_s)
        if not ok:
            _write_atomic(env_file, backup.read_bytes())
            registry.record_activation(
                version, reverted=True, reason=_note(f"reverted: {detail}", env_file, key, version)
            )
            again, again_detail = _run(restart_cmd, "restart", timeout_s)
            raise ExternalServiceError(
                f"activating {version.ref} failed ({detail}); {env_file} was restored from "
                f"{backup.name} and the service restarted "
                + ("successfully" if again else f"but that failed too ({again_detail})"),
                fix="read the command output above, fix the service, then activate again",
                backup=str(backup),
            )
    return Activation(version.ref, new_value, env_file, key, backup)


@contextlib.contextmanager
def _env_file_access(env_file: Path, what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        folder = env_file.parent
        reason = exc.strerror or str(exc)
        raise UsageError(
            f"cannot {what} env file {env_file} (in {folder}): {reason}"
            + (f": {exc.filename}" if exc.filename else ""),
            fix=f"run as the user who owns {folder}, or make the folder writable: activate "
            "writes a backup and the new file beside the env file; nothing was changed",
            env_file=str(env_file),
        ) from exc


def _note(reason: str, env_file: Path, key: str, version: ModelVersion) -> str:
    code = version.manifest.code_version
    return f"{reason}; {env_file}:{key} -> {version.ref} (model built by {code})"


def rollback_last(
    env_file: Path,
    *,
    confirm: Callable[[Path], bool],
    restart_cmd: str | None = None,
    config: AlphaOpsConfig | None = None,
    where: RegistryLocation | None = None,
    reason: str = "rollback-last",
    timeout_s: float = 120.0,
) -> Restoration | None:
    """Restore the newest backup of ``env_file`` if ``confirm(backup)`` agrees (``None``
    when not confirmed). With ``config``, the activation it undoes is audited in the registry
    as reverted. Restart afterwards when ``restart_cmd`` is given."""
    found = backups_of(env_file)
    if not found:
        raise NotFoundError(
            f"{env_file} has no backup to restore",
            fix="backups are written by 'alphaops activate'; check the path",
        )
    newest = found[-1]
    if not confirm(newest):
        return None
    undone = _activation_of(newest)
    with _env_file_access(env_file, "restore"):
        _write_atomic(env_file, newest.read_bytes())
    if config is not None and undone is not None:
        where = where or RegistryLocation()
        with open_configured_registry(
            config, database_url=where.database_url, artifacts=where.artifacts, create=False
        ) as registry:
            version = registry.resolve(undone[0])
            note = f"{reason}: restored from {newest.name}"
            registry.record_activation(
                version, reverted=True, reason=_note(note, env_file, undone[1], version)
            )
    if restart_cmd is not None:
        ok, detail = _run(restart_cmd, "restart", timeout_s)
        if not ok:
            raise ExternalServiceError(
                f"restored {env_file} from {newest.name} but {detail}",
                fix="restart the service by hand",
            )
    return Restoration(newest, None if undone is None else undone[0])


def _activation_of(backup: Path) -> tuple[str, str] | None:
    """Return ``(ref, env key)`` of the activation that wrote ``backup``. A backup without a
    readable record (one a crash cut short) restores all the same, unaudited."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        record = json.loads(_activation_record(backup).read_text())
        if isinstance(record["ref"], str) and isinstance(record["key"], str):
            return record["ref"], record["key"]
    return None
