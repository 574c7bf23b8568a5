"""Signed webhooks: alias moves, rollout transitions, alarms and gate results, delivered at least once.

The outbox is the registry's own append-only history: every alias move and alarm writes an
audit row, every rollout transition a rollout event and every gate run a gate-run row, each
in the transaction that made the change. Per endpoint and source the dispatcher keeps a
cursor (table ``webhook_cursors``) that advances only after the receiver answered 2xx, so a
receiver that is down gets every event later, in order; failures are retried with
exponential back-off. A new endpoint starts at the current end of history.

Requests are signed the way Standard Webhooks (and MLflow) sign them: headers
``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,BASE64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))``. A receiver
checks them with :func:`verify_signature`.

>>> headers = sign("s" * 16, "audit-1", 1700000000, b'{"type": "registry.promote"}')
>>> verify_signature("s" * 16, headers, b'{"type": "registry.promote"}', now=1700000005)
True
>>> verify_signature("s" * 16, headers, b'{"type": "registry.rollback"}', now=1700000005)
False
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from alphaops.registry import Database
from alphaops.serve._config import WebhookConfig

__all__ = ["SOURCES", "WebhookDispatcher", "sign", "verify_signature"]

_BATCH = 100
SOURCES: dict[str, str] = {
    "audit": "SELECT id, at, actor, action, symbol, model_type, alias, from_version, "
    "to_version, reason, generation FROM audit_log WHERE id > :after ORDER BY id LIMIT :n",
    "rollout": "SELECT e.id, e.at, e.actor, e.trigger, e.from_phase, e.to_phase, e.percentage, "
    "e.failures, e.reason, e.generation, e.rollout_id, r.symbol, r.model_type, "
    "r.challenger_version FROM rollout_events e JOIN rollouts r ON r.id = e.rollout_id "
    "WHERE e.id > :after ORDER BY e.id LIMIT :n",
    "gates": "SELECT id, run_id, symbol, model_type, version, passed, created_at AS at, actor "
    "FROM gate_runs WHERE id > :after ORDER BY id LIMIT :n",
}
"""Where events come from: one append-only table each, read after a cursor."""
_MAX_ID = {
    "audit": "SELECT MAX(id) FROM audit_log",
    "rollout": "SELECT MAX(id) FROM rollout_events",
    "gates": "SELECT MAX(id) FROM gate_runs",
}


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Return the signature headers of one delivery."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """Return whether a delivery is authentic and fresh (timestamp within ``tolerance_s``)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        event_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        given = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, event_id, timestamp, body)["webhook-signature"]
    return any(hmac.compare_digest(expected, g) for g in given)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        stamp = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return stamp.isoformat()
    return str(value)


def _event(source: str, row: Any) -> dict[str, Any]:
    model = f"{row.symbol}/{row.model_type}"
    if source == "audit":
        return {
            "id": f"audit-{row.id}", "type": f"registry.{row.action}", "at": _iso(row.at),
            "model": model, "alias": row.alias, "from_version": row.from_version,
            "to_version": row.to_version, "reason": row.reason, "actor": row.actor,
            "generation": int(row.generation),
        }  # fmt: skip
    if source == "rollout":
        return {
            "id": f"rollout-{row.id}", "type": f"rollout.{row.trigger}", "at": _iso(row.at),
            "model": model, "rollout_id": row.rollout_id, "version": row.challenger_version,
            "from_phase": row.from_phase, "to_phase": row.to_phase,
            "percentage": row.percentage, "failures": row.failures, "reason": row.reason,
            "actor": row.actor, "generation": int(row.generation),
        }  # fmt: skip
    return {
        "id": f"gates-{row.id}", "type": "gates.passed" if row.passed else "gates.failed",
        "at": _iso(row.at), "model": model, "version": row.version, "run_id": row.run_id,
        "actor": row.actor,
    }  # fmt: skip


@dataclass
class _Delivery:
    endpoint: WebhookConfig
    source: str


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers=headers | {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class WebhookDispatcher:
    """Deliver new registry events to every endpoint from a background thread.

    ``backoff_s`` is the first retry delay, doubled after each failure up to
    ``max_backoff_s``; an event is retried until the receiver takes it (2xx). ``post`` and
    ``clock`` are seams for tests; the default posts with urllib.
    """

    def __init__(
        self,
        database: Database,
        endpoints: Sequence[WebhookConfig],
        *,
        poll_s: float = 1.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        timeout_s: float = 5.0,
        post: Callable[[str, bytes, dict[str, str], float], int] = _post,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.endpoints = tuple(endpoints)
        self.poll_s = poll_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.delivered = 0
        self.failures = 0
        self._post = post
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with self.database.write() as conn:
            for endpoint in self.endpoints:
                for source in SOURCES:
                    self._init_cursor(conn, f"{source} {endpoint.url}", source)

    def _init_cursor(self, conn: Connection, name: str, source: str) -> None:
        found = conn.execute(
            text("SELECT audit_id FROM webhook_cursors WHERE endpoint = :e"), {"e": name}
        ).first()
        if found is None:
            start = conn.execute(text(_MAX_ID[source])).scalar() or 0
            conn.execute(
                text(
                    "INSERT INTO webhook_cursors (endpoint, audit_id, updated_at) "
                    "VALUES (:e, :a, :t)"
                ),
                {"e": name, "a": int(start), "t": datetime.now(UTC)},
            )

    def start(self) -> None:
        """Start the delivery thread."""
        self._thread = threading.Thread(target=self._run, name="alphaops-webhooks", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop delivering (undelivered events stay in the outbox for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_pending()
            except Exception:  # the database is unreachable: try again next poll
                self.failures += 1
            self._stop.wait(self.poll_s)

    def deliver_pending(self) -> int:
        """Deliver every pending event of every endpoint; return how many were delivered."""
        done = 0
        for endpoint in self.endpoints:
            for source in SOURCES:
                done += self._drain(endpoint, source)
        return done

    def _drain(self, endpoint: WebhookConfig, source: str) -> int:
        name = f"{source} {endpoint.url}"
        with self.database.read() as conn:
            after = conn.execute(
                text("SELECT audit_id FROM webhook_cursors WHERE endpoint = :e"), {"e": name}
            ).scalar_one()
            rows = conn.execute(text(SOURCES[source]), {"after": after, "n": _BATCH}).all()
        done = 0
        for row in rows:
            if not self._deliver(endpoint, _event(source, row)):
                return done  # stopped while retrying: resume here next start
            with self.database.write() as conn:
                conn.execute(
                    text(
                        "UPDATE webhook_cursors SET audit_id = :a, updated_at = :t "
                        "WHERE endpoint = :e"
                    ),
                    {"a": int(row.id), "t": datetime.now(UTC), "e": name},
                )
            done += 1
        return done

    def _deliver(self, endpoint: WebhookConfig, event: dict[str, Any]) -> bool:
        body = json.dumps(event, sort_keys=True).encode()
        delay = self.backoff_s
        while not self._stop.is_set():
            headers = sign(endpoint.secret, event["id"], int(self._clock()), body)
            try:
                status = self._post(endpoint.url, body, headers, self.timeout_s)
            except OSError:
                status = 0
            if 200 <= status < 300:
                self.delivered += 1
                return True
            self.failures += 1
            self._stop.wait(delay)
            delay = min(delay * 2, self.max_backoff_s)
        return False
