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
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field
from sqlalchemy import Connection, insert

from alphaops.core.specs import SpecModel
from alphaops.journal import _tables as tables
from alphaops.registry import Database

__all__ = [
    "JournalConfig",
    "JournalWriter",
    "PendingDecision",
    "Prepared",
    "WriterStats",
    "insert_decisions",
    "prepare",
]

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


class JournalConfig(SpecModel):
    """How a journal writes decisions (frozen; a bad or unknown field is a ``SpecError``)."""

    spec_label: ClassVar[str] = "journal config"
    spec_example: ClassVar[str] = "JournalConfig(writer='process', flush_interval_s=0.1)"

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
    writer: Literal["thread", "process"] = "thread"
    """``thread``: a daemon thread of the bot commits (no extra process). ``process``: each
    decision is written to a pipe in one system call and a helper process commits, so the
    bot's interpreter does none of the writing (for bots predicting thousands of times a
    second; see ``alphaops.journal._sink``); a bot killed with ``kill -9`` then loses nothing
    it had handed over."""


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


Prepared = tuple[
    str,  # decision id
    float,  # epoch seconds
    int | None,  # bar open time, ms
    str,  # symbol
    str,  # model type
    int,  # version
    str,  # manifest sha256
    str,  # role
    str | None,  # rollout id
    str | None,  # routing key
    int,  # action
    tuple[float, ...],  # probabilities
    str,  # input sha256
    list[float] | None,  # the decided bar's input row (store_inputs)
]
"""A decision reduced to plain values: what is stored (and what crosses a process pipe)."""


def prepare(item: PendingDecision, *, store_inputs: bool) -> Prepared:
    """Hash the input (and keep its last row when asked): the decision as plain values."""
    batch = item[12]
    row = batch.reshape(-1, batch.shape[-1])[-1].tolist() if store_inputs else None
    routing_key = item[9]
    return (
        item[0],
        item[1],
        item[2],
        item[3],
        item[4],
        item[5],
        item[6],
        item[7],
        item[8],
        None if routing_key is None else str(routing_key)[:128],
        item[10],
        tuple(item[11]),
        _hash(batch),
        row,
    )


def insert_decisions(conn: Connection, rows: Sequence[Prepared]) -> None:
    """Insert prepared decisions in the open transaction ``conn``."""
    if conn.dialect.name != "sqlite":
        conn.execute(insert(tables.decisions), [_row_dict(r) for r in rows])
        return
    # One multi-row INSERT per chunk of pre-formatted values: sqlite3 releases the GIL around
    # every statement step, so a row-by-row executemany would hand the GIL back and forth
    # with a busy bot thread once per row (each handoff delays a prediction); a chunk is one
    # step, and the values are exactly what SQLAlchemy would store, built without its
    # per-row processors.
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        conn.exec_driver_sql(_sqlite_insert(len(chunk)), _sqlite_values(chunk))


def _sqlite_values(chunk: Sequence[Prepared]) -> tuple[Any, ...]:
    ats = _sqlite_times(np.array([r[1] for r in chunk]) * 1e6)
    known = [r[2] for r in chunk if r[2] is not None]
    bars = iter(_sqlite_times(np.array(known, dtype=np.float64) * 1e3) if known else [])
    values: list[Any] = []
    for r, at in zip(chunk, ats, strict=True):
        values += (
            r[0],
            at,
            None if r[2] is None else next(bars),
            *r[3:11],
            _json_floats(r[11]),
            r[12],
            "null" if r[13] is None else _json_floats(r[13]),
        )
    return tuple(values)


def _row_dict(r: Prepared) -> dict[str, Any]:
    return {
        "id": r[0],
        "at": _utc(r[1]),
        "bar_time": None if r[2] is None else _utc(r[2] / 1000.0),
        "symbol": r[3],
        "model_type": r[4],
        "version": r[5],
        "manifest_sha256": r[6],
        "role": r[7],
        "rollout_id": r[8],
        "routing_key": r[9],
        "action": r[10],
        "probabilities": list(r[11]),
        "input_sha256": r[12],
        "input_row": r[13],
    }


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
            store = self._config.store_inputs
            rows = [prepare(item, store_inputs=store) for item in items]
            with self._database.write() as conn:
                insert_decisions(conn, rows)
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
