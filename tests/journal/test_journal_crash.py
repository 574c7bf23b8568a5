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
from pathlib import Path

import pytest

from alphaops.journal import Journal
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
