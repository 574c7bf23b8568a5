"""The journal's writer process: decisions leave the bot's interpreter in one system call.

With ``JournalConfig(writer="process")`` a prediction hashes its input, encodes the decision
with :mod:`marshal` (plain values only: strings, numbers, tuples) and writes it as one
length-prefixed frame to a pipe whose other end is a helper process
(``python -m alphaops.journal._sink_main``) that batches and commits, exactly as the thread writer
does. The bot keeps no writer thread, so nothing competes with its predictions for the GIL.

The pipe is non-blocking and each frame is smaller than ``PIPE_BUF`` (so it is written whole
or not at all): when the helper falls behind and the pipe (1 MiB where Linux allows) is full,
the decision is dropped and counted, never waited for. The helper commits what it has when
its input closes, so a bot killed with ``kill -9`` loses nothing it had written to the pipe;
a helper that dies is replaced by the in-process thread writer (what was in the pipe or the
helper's batch is lost, and the error is kept in the stats).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import marshal
import os
import select
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

from alphaops.journal._writer import (
    JournalConfig,
    JournalWriter,
    PendingDecision,
    Prepared,
    WriterStats,
    insert_decisions,
    prepare,
)
from alphaops.registry import Database

__all__ = ["ProcessWriter", "serve"]

_LENGTH = struct.Struct(">I")
_PIPE_BUF = 4096  # POSIX: a pipe write of at most this many bytes is atomic
_F_SETPIPE_SZ = 1031  # Linux fcntl to enlarge a pipe
_NAP_S = 0.01
"""How long the writer process sleeps between reads of the pipe."""


class ProcessWriter:
    """Send decisions to a writer process (see the module docstring); same API as
    :class:`~alphaops.journal._writer.JournalWriter`."""

    def __init__(self, database: Database, config: JournalConfig) -> None:
        self._database = database
        self._config = config
        self._store = config.store_inputs
        self._lock = threading.Lock()  # control requests and counters, never the hot path
        self._sent = 0
        self._dropped = 0
        self._written = 0
        self._failed = 0
        self._last_error: str | None = None
        self._failed_child = 0
        self._seq = 0
        self._lines = bytearray()
        self._fallback: JournalWriter | None = None
        self._process = subprocess.Popen(
            [sys.executable, "-m", "alphaops.journal._sink_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # the terminal's Ctrl-C goes to the bot, not here
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        settings = {"database_url": database.url, "config": config.model_dump()}
        body = json.dumps(settings).encode()
        self._process.stdin.write(_LENGTH.pack(len(body)) + body)
        self._process.stdin.flush()
        self._fd = self._process.stdin.fileno()
        self._replies = self._process.stdout.fileno()
        with contextlib.suppress(OSError):  # not Linux, or not allowed: the default size
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, 1 << 20)
        os.set_blocking(self._fd, False)

    @property
    def pid(self) -> int:
        """Return the writer process's id."""
        return self._process.pid

    def submit(self, item: PendingDecision) -> bool:
        """Send one decision; return False (and count it) when the pipe is full."""
        if self._fallback is not None:
            return self._fallback.submit(item)
        prepared = prepare(item, store_inputs=self._store)
        body = marshal.dumps(prepared)
        if len(body) + _LENGTH.size > _PIPE_BUF:  # only atomic writes: keep the hash
            body = marshal.dumps((*prepared[:13], None))
        try:
            os.write(self._fd, _LENGTH.pack(len(body)) + body)
        except BlockingIOError:
            with self._lock:
                self._dropped += 1
            return False
        except OSError as exc:  # the writer process died
            self._fail_over(exc)
            return self._fallback.submit(item) if self._fallback is not None else False
        self._sent += 1
        return True

    def _fail_over(self, exc: BaseException) -> None:
        with self._lock:
            if self._fallback is None:
                self._failed += 1
                self._last_error = f"writer process lost ({type(exc).__name__}: {exc}); "
                self._last_error += "journaling in this process from now on"
                self._fallback = JournalWriter(self._database, self._config)

    def _request(self, kind: str, timeout_s: float) -> dict[str, Any] | None:
        # A control frame through the same pipe (so a flush follows every decision sent
        # before it), then the writer process's JSON reply on its stdout.
        deadline = time.monotonic() + timeout_s
        self._seq += 1
        body = marshal.dumps((kind, self._seq))
        frame = _LENGTH.pack(len(body)) + body
        while True:
            try:
                os.write(self._fd, frame)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.001)
        while True:
            if b"\n" not in self._lines:
                wait = deadline - time.monotonic()
                if wait <= 0 or not select.select([self._replies], [], [], wait)[0]:
                    return None
                chunk = os.read(self._replies, 65536)
                if not chunk:
                    raise EOFError("the writer process closed its output")
                self._lines += chunk
                continue
            line, _, rest = bytes(self._lines).partition(b"\n")
            self._lines = bytearray(rest)
            reply: dict[str, Any] = json.loads(line)
            if reply.get("seq") == self._seq:
                self._written = int(reply["written"])
                self._failed_child = int(reply["failed"])
                if reply.get("error"):
                    self._last_error = str(reply["error"])
                return reply

    def stats(self) -> WriterStats:
        """Return the counters (``written`` and failures as the writer process reports them)."""
        if self._fallback is None:
            try:
                with self._lock:
                    self._request("stats", 5.0)
            except (OSError, EOFError, ValueError) as exc:
                self._fail_over(exc)
        with self._lock:
            extra = self._fallback.stats() if self._fallback is not None else None
            failed = self._failed + self._failed_child
            return WriterStats(
                self._written + (extra.written if extra else 0),
                self._dropped + (extra.dropped if extra else 0),
                max(0, self._sent - self._written) + (extra.queued if extra else 0),
                failed + (extra.failed_commits if extra else 0),
                self._last_error or (extra.last_error if extra else None),
            )

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Have the writer process commit everything sent so far; False on timeout."""
        if self._fallback is None:
            try:
                with self._lock:
                    reply = self._request("flush", timeout_s)
            except (OSError, EOFError, ValueError) as exc:
                self._fail_over(exc)
                return False
            if self._fallback is None:
                return reply is not None and bool(reply.get("flushed"))
        assert self._fallback is not None
        return self._fallback.flush(timeout_s)

    def close(self, timeout_s: float = 30.0) -> bool:
        """Flush, then end the writer process; return whether everything was committed."""
        flushed = self.flush(timeout_s)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5.0)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:  # the input's descriptor is closed above
                with contextlib.suppress(OSError):
                    stream.close()
        if self._fallback is not None:
            flushed = self._fallback.close(timeout_s) and flushed
        return flushed


# -- the writer process ---------------------------------------------------------------------


class _Sink:
    def __init__(self, database: Database, config: JournalConfig, replies: IO[bytes]) -> None:
        self.database = database
        self.config = config
        self.replies = replies
        self.batch: list[Prepared] = []
        self.written = 0
        self.failed = 0
        self.error: str | None = None
        self.since = time.monotonic()

    def commit(self) -> bool:
        if not self.batch:
            self.since = time.monotonic()
            return True
        try:
            with self.database.write() as conn:
                insert_decisions(conn, self.batch)
        except Exception as exc:  # kept, in order, and retried
            self.failed += 1
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        self.written += len(self.batch)
        self.batch = []
        self.since = time.monotonic()
        return True

    def reply(self, seq: int, **extra: Any) -> None:
        body = {"seq": seq, "written": self.written, "failed": self.failed, "error": self.error}
        self.replies.write(json.dumps(body | extra).encode() + b"\n")
        self.replies.flush()

    def handle(self, frame: Any) -> None:
        if len(frame) == 2:  # a control request: (kind, seq)
            kind, seq = frame
            if kind == "flush":
                deadline = time.monotonic() + 30.0
                while not self.commit() and time.monotonic() < deadline:
                    time.sleep(self.config.retry_s)
                self.reply(seq, flushed=not self.batch)
            else:
                self.reply(seq)
            return
        self.batch.append(frame)
        if len(self.batch) >= self.config.batch_rows and not self.commit():
            time.sleep(self.config.retry_s)


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """Run the writer process: settings frame, then decisions and control requests."""
    fd = requests.fileno()
    head = _read_exactly(fd, _LENGTH.size)
    if head is None:
        return
    (size,) = _LENGTH.unpack(head)
    body = _read_exactly(fd, size)
    if body is None:
        return
    settings = json.loads(body)
    sink = _Sink(Database(settings["database_url"]), JournalConfig(**settings["config"]), replies)
    pending = bytearray()
    interval = sink.config.flush_interval_s
    # The writer process naps instead of waiting on the pipe: a bot's write then wakes no
    # one (a wake-up per decision would cost the bot a context switch on a busy machine);
    # control requests are answered within a nap.
    nap = min(_NAP_S, interval)
    os.set_blocking(fd, False)
    while True:
        time.sleep(nap)
        closed = False
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:  # the bot closed the journal, or died: keep what it sent
                closed = True
                break
            pending += chunk
        offset = 0
        while len(pending) - offset >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(pending, offset)
            end = offset + _LENGTH.size + size
            if end > len(pending):
                break
            sink.handle(marshal.loads(bytes(pending[offset + _LENGTH.size : end])))
            offset = end
        del pending[:offset]
        if closed:
            while not sink.commit():
                time.sleep(sink.config.retry_s)
            return
        if sink.batch and time.monotonic() - sink.since >= interval and not sink.commit():
            time.sleep(sink.config.retry_s)


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts = bytearray()
    while len(parts) < size:
        chunk = os.read(fd, size - len(parts))
        if not chunk:
            return None
        parts += chunk
    return bytes(parts)
