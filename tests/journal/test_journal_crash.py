"""kill -9 during heavy journaling loses nothing that was committed, and leaves no torn rows.

A child process journals decisions as fast as it can through the background writer and
reports, after each flush, how many are committed; the parent kills it with SIGKILL in the
middle of the stream. Every acknowledged decision must be there, and what is there must be
exactly the first N submitted (the writer commits in submission order, whole batches only).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from alphaops.journal import Journal, JournalConfig, PendingDecision
from alphaops.registry import open_registry

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from alphaops.journal import Journal, JournalConfig
    from alphaops.registry import open_registry

    registry = open_registry(sys.argv[1], artifacts=sys.argv[2])
    journal = Journal(registry, JournalConfig(flush_interval_s=0.005, batch_rows=500))
    batch = np.arange(11, dtype=np.float32)[np.newaxis]
    i = 0
    while True:
        for _ in range(1000):
            i += 1
            journal.submit((f"00000000cafe-{i:x}", time.time(), i * 3_600_000, "BTCUSDT",
                            "lightgbm", 1, "0" * 64, "champion", None, i, 1,
                            (0.2, 0.3, 0.5), batch))
        assert journal.flush()
        print(i, flush=True)
    """
)


@pytest.mark.parametrize("kill_after", [5_000, 23_000])
def test_kill_9_while_journaling_loses_nothing_committed(
    db_url: str, tmp_path: Path, kill_after: int
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    open_registry(db_url, artifacts=tmp_path / "artifacts").close()  # migrate first
    child = subprocess.Popen(
        [sys.executable, str(script), db_url, str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    acknowledged = 0
    for line in child.stdout:
        acknowledged = int(line)
        if acknowledged >= kill_after:
            break
    # Keep it journaling a little past the acknowledgement, then kill it mid-stream.
    child.stdout.readline()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert acknowledged >= kill_after
    with open_registry(db_url, artifacts=tmp_path / "artifacts") as registry:
        journal = Journal(registry)
        count = journal.count_decisions()
        assert count >= acknowledged
        counters = sorted(
            int(d.id.split("-")[1], 16) for d in journal.decisions("BTCUSDT/lightgbm")
        )
        assert counters == list(range(1, count + 1))  # a prefix: no gap, no torn batch
        if registry.database.dialect == "sqlite":
            with registry.database.read() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


BOT_HANDING_OVER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from alphaops.journal import Journal, JournalConfig
    from alphaops.registry import open_registry

    registry = open_registry(sys.argv[1], artifacts=sys.argv[2])
    # The writer process would only commit after a minute: everything is still in flight.
    journal = Journal(registry, JournalConfig(writer="process", flush_interval_s=60))
    batch = np.arange(11, dtype=np.float32)[np.newaxis]
    accepted = 0
    for i in range(1, 5001):
        accepted += journal.submit((f"00000000beef-{i:x}", time.time(), i * 3_600_000,
                                    "BTCUSDT", "lightgbm", 1, "0" * 64, "champion", None, i,
                                    1, (0.2, 0.3, 0.5), batch))
    print(journal._writer.pid, accepted, flush=True)
    time.sleep(600)
    """
)


def _wait_gone(pid: int, timeout_s: float = 60.0) -> None:
    # Gone: no such process, or a zombie nobody has reaped yet (it has exited).
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if "\nState:\tZ" in status.read_text():
                return
        except OSError:
            return
        time.sleep(0.05)
    pytest.fail(f"the writer process {pid} did not finish within {timeout_s}s")


def test_a_bot_killed_with_kill_9_loses_nothing_it_handed_to_the_writer_process(
    db_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "bot.py"
    script.write_text(BOT_HANDING_OVER)
    open_registry(db_url, artifacts=tmp_path / "artifacts").close()
    bot = subprocess.Popen(
        [sys.executable, str(script), db_url, str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert bot.stdout is not None
    writer_pid, accepted = map(int, bot.stdout.readline().split())
    os.kill(bot.pid, signal.SIGKILL)
    bot.wait()
    bot.stdout.close()
    _wait_gone(writer_pid)  # it saw the pipe close, committed what it had, and exited
    with open_registry(db_url, artifacts=tmp_path / "artifacts") as registry:
        # Whatever the pipe took (the writer process was still starting: the pipe filled and
        # the rest was dropped, as designed) is committed.
        assert accepted > 1000
        assert Journal(registry).count_decisions() == accepted


def _pending(i: int, batch: np.ndarray) -> PendingDecision:
    return (f"00000000f00d-{i:x}", time.time(), i * 3_600_000, "BTCUSDT", "lightgbm", 1,
            "0" * 64, "champion", None, i, 1, (0.2, 0.3, 0.5), batch)  # fmt: skip


def test_a_dead_writer_process_is_replaced_by_the_thread_writer(
    db_url: str, tmp_path: Path
) -> None:
    batch = np.arange(11, dtype=np.float32)[np.newaxis]
    with (
        open_registry(db_url, artifacts=tmp_path / "artifacts") as registry,
        Journal(registry, JournalConfig(writer="process")) as journal,
    ):
        for i in range(1, 101):
            assert journal.submit(_pending(i, batch))
        assert journal.flush()
        pid = journal._writer.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # dead, every thread of it: the pipe has no reader any more
        for i in range(101, 201):
            assert journal.submit(_pending(i, batch))  # the first one finds out, none is lost
        assert journal.flush()
        stats = journal.writer_stats()
        assert "writer process lost" in (stats.last_error or "")
        assert journal.count_decisions() == 200


def test_a_stalled_writer_process_makes_decisions_drop_never_block(
    db_url: str, tmp_path: Path
) -> None:
    batch = np.arange(11, dtype=np.float32)[np.newaxis]
    with (
        open_registry(db_url, artifacts=tmp_path / "artifacts") as registry,
        Journal(registry, JournalConfig(writer="process")) as journal,
    ):
        journal.submit(_pending(0, batch))
        pid = journal._writer.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)
        try:
            accepted = sum(journal.submit(_pending(i, batch)) for i in range(1, 40_001))
        finally:
            os.kill(pid, signal.SIGCONT)
        assert accepted < 40_000  # the pipe filled up: the rest were dropped, not waited on
        assert journal.flush()
        stats = journal.writer_stats()
        assert stats.dropped == 40_000 - accepted
        assert journal.count_decisions() == accepted + 1
