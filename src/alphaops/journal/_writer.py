"""The journal's background writer: a bounded in-memory queue drained in batched commits.

A prediction only appends a tuple to a deque (no lock, no disk, no hashing); a daemon thread
wakes every ``flush_interval_s``, turns what is queued into rows (hashing each input) and
commits them in batches of ``batch_rows`` (on SQLite as pre-formatted tuples straight to the
driver: the per-row cost is what the writer thread takes from the bot's interpreter). When
the queue is full the decision is dropped and
counted, never waited for. A crash (even ``kill -9``) loses at most what was still queued or
in the batch being committed; every committed batch survives, and the rows are committed in
the order they were submitted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert

from alphaops.journal import _tables as tables
from alphaops.registry import Database

__all__ = ["JournalConfig", "JournalWriter", "PendingDecision", "WriterStats"]

PendingDecision = tuple[
    str,  # decision id
    float,  # epoch seconds
    int | None,  # bar open time, ms
    str,  # symbol
    str,  # model type
    int,  # version
    str,  # manifest sha256
    str,  # role
    str | None,  # rollout id
    str | int | None,  # routing key
    int,  # action
    Sequence[float],  # probabilities
    npt.NDArray[Any],  # the model input (never mutated after submission)
]


class JournalConfig(BaseModel):
    """How a journal writes decisions (frozen; unknown fields are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_rows: int = Field(100_000, ge=1)
    """Decisions held in memory at most; beyond it a decision is dropped and counted."""
    batch_rows: int = Field(5_000, ge=1)
    """Decisions per commit at most."""
    flush_interval_s: float = Field(0.1, gt=0)
    """How often the writer wakes to commit what is queued: the most a crash can lose is
    what arrived in one interval plus what a failing database kept queued."""
    store_inputs: bool = False
    """Also store the input row of the decided bar (the last step of a sequence window), so
    that drift can be computed from the journal alone; a hash of the input is always kept."""
    retry_s: float = Field(1.0, gt=0)
    """Pause before retrying a batch whose commit failed (the batch is kept, in order)."""


@dataclass(frozen=True)
class WriterStats:
    """What the writer did so far."""

    written: int
    dropped: int
    queued: int
    failed_commits: int
    last_error: str | None


def _hash(batch: npt.NDArray[Any]) -> str:
    return hashlib.blake2b(np.ascontiguousarray(batch).tobytes(), digest_size=16).hexdigest()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


_COLUMNS = (
    "id, at, bar_time, symbol, model_type, version, manifest_sha256, role, rollout_id, "
    "routing_key, action, probabilities, input_sha256, input_row"
)
_CHUNK_ROWS = 32
"""Rows per multi-row INSERT (14 parameters each: far below SQLite's 32,766 limit)."""


@functools.lru_cache(maxsize=8)
def _sqlite_insert(rows: int) -> str:
    one = "(" + ", ".join("?" * 14) + ")"
    return f"INSERT INTO decisions ({_COLUMNS}) VALUES " + ", ".join([one] * rows)


def _sqlite_times(microseconds: npt.NDArray[np.float64]) -> list[str]:
    # SQLAlchemy's SQLite DATETIME storage format (naive UTC, "YYYY-MM-DD HH:MM:SS.ffffff").
    stamps = np.rint(microseconds).astype(np.int64).astype("datetime64[us]")
    return [text.replace("T", " ") for text in np.datetime_as_string(stamps, unit="us").tolist()]


def _json_floats(values: Sequence[float]) -> str:
    # json.dumps' text for a list of floats (repr), a few times faster; non-finite via json.
    if all(math.isfinite(v) for v in values):
        return "[" + ", ".join(map(repr, values)) + "]"
    return json.dumps(list(values))


class JournalWriter:
    """Drain submitted decisions into the ``decisions`` table from a daemon thread."""

    def __init__(
        self,
        database: Database,
        config: JournalConfig,
        *,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._database = database
        self._config = config
        self._cap = config.queue_rows
        self._queue: deque[PendingDecision] = deque()
        self._lock = threading.Lock()  # counters and the in-flight flag, never the hot path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition(self._lock)
        self._in_flight = 0
        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._last_error: str | None = None
        self._on_error = on_error
        self._insert = insert(tables.decisions)
        self._raw = database.dialect == "sqlite"
        self._thread = threading.Thread(target=self._run, name="alphaops-journal", daemon=True)
        self._thread.start()

    def submit(self, item: PendingDecision) -> bool:
        """Queue one decision; return False (and count it) when the queue is full."""
        if len(self._queue) >= self._cap:
            with self._lock:
                self._dropped += 1
            return False
        self._queue.append(item)
        return True

    def stats(self) -> WriterStats:
        """Return the writer's counters."""
        with self._lock:
            return WriterStats(
                self._written, self._dropped, len(self._queue), self._failed, self._last_error
            )

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Commit everything queued so far; return False if that took longer than the timeout
        (the database is failing: see :meth:`stats`)."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._done:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._wake.set()
                self._done.wait(min(remaining, 0.05))
        return True

    def close(self, timeout_s: float = 30.0) -> bool:
        """Flush, then stop the thread; return whether everything was committed."""
        flushed = self.flush(timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)
        return flushed

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._config.flush_interval_s)
            self._wake.clear()
            while self._queue and not self._stop.is_set():
                if not self._commit_batch():
                    self._stop.wait(self._config.retry_s)
                    break

    def _commit_batch(self) -> bool:
        queue = self._queue
        with self._lock:
            count = min(len(queue), self._config.batch_rows)
            self._in_flight = count
        # Peek, commit, then pop: a failed commit leaves the batch at the head, in order.
        items = [queue[i] for i in range(count)]
        try:
            with self._database.write() as conn:
                if self._raw:
                    # One multi-row INSERT per chunk: sqlite3 releases the GIL around every
                    # statement step, so row-by-row executemany would hand the GIL back and
                    # forth with a busy bot thread once per row (each handoff delays a
                    # prediction); a chunk is one step.
                    for start in range(0, len(items), _CHUNK_ROWS):
                        chunk = items[start : start + _CHUNK_ROWS]
                        values = self._sqlite_values(chunk)
                        conn.exec_driver_sql(_sqlite_insert(len(chunk)), values)
                else:
                    conn.execute(self._insert, [self._row(item) for item in items])
        except Exception as exc:
            with self._done:
                self._in_flight = 0
                self._failed += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._done.notify_all()
            if self._on_error is not None:
                self._on_error(exc)
            return False
        for _ in range(count):
            queue.popleft()
        with self._done:
            self._in_flight = 0
            self._written += count
            self._done.notify_all()
        return True

    def _sqlite_values(self, chunk: Sequence[PendingDecision]) -> tuple[Any, ...]:
        # Exactly what SQLAlchemy would store (its SQLite DATETIME text, its JSON text), built
        # without its per-row processors; the times of a chunk are formatted in one NumPy call.
        ats = _sqlite_times(np.array([item[1] for item in chunk]) * 1e6)
        bars = [item[2] for item in chunk]
        known = [ms for ms in bars if ms is not None]
        texts = iter(_sqlite_times(np.array(known, dtype=np.float64) * 1e3) if known else [])
        values: list[Any] = []
        for item, at, bar_ms in zip(chunk, ats, bars, strict=True):
            batch = item[12]
            row = "null"
            if self._config.store_inputs:
                row = _json_floats(batch.reshape(-1, batch.shape[-1])[-1].tolist())
            routing_key = item[9]
            values += (
                item[0],
                at,
                None if bar_ms is None else next(texts),
                item[3],
                item[4],
                item[5],
                item[6],
                item[7],
                item[8],
                None if routing_key is None else str(routing_key)[:128],
                item[10],
                _json_floats(item[11]),
                _hash(batch),
                row,
            )
        return tuple(values)

    def _row(self, item: PendingDecision) -> dict[str, Any]:
        (
            decision_id,
            at,
            bar_ms,
            symbol,
            model_type,
            version,
            manifest_sha256,
            role,
            rollout_id,
            routing_key,
            action,
            probabilities,
            batch,
        ) = item
        row = None
        if self._config.store_inputs:
            row = [float(v) for v in batch.reshape(-1, batch.shape[-1])[-1]]
        return {
            "id": decision_id,
            "at": _utc(at),
            "bar_time": None if bar_ms is None else _utc(bar_ms / 1000.0),
            "symbol": symbol,
            "model_type": model_type,
            "version": version,
            "manifest_sha256": manifest_sha256,
            "role": role,
            "rollout_id": rollout_id,
            "routing_key": None if routing_key is None else str(routing_key)[:128],
            "action": action,
            "probabilities": list(probabilities),
            "input_sha256": _hash(batch),
            "input_row": row,
        }
