"""Acknowledged means durable: the order of fsyncs and renames in a publish and a promote.

A real publish and promote run in a fresh process under ``strace`` (Debian's ``strace``,
installed by ``scripts/services.sh``), and the system calls are read back in order:

- publish: every artifact file is fsynced (and its folder) before the staging folder is renamed
  into place, the rename is made durable by fsyncing the model folder, and only then does the
  SQLite commit that marks the version ready sync the WAL;
- promote: the alias move's commit syncs the WAL (``synchronous=FULL``: a committed move
  survives a power loss, not just a killed process), and the ``latest`` link swap is fsynced.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alphaops.registry import open_registry
from alphaops.registry.bundle import Bundle
from alphaops.registry.testing import build_tiny_bundle

_SCRIPT = """
import os, sys
from pathlib import Path
from alphaops.registry import open_registry
from alphaops.registry.testing import record_passing_gates

def mark(label):  # a failing rename: a landmark in the trace
    try:
        os.rename(f"/alphaops-trace-mark/{label}", "/alphaops-trace-mark/x")
    except OSError:
        pass

with open_registry(Path(sys.argv[1])) as registry:
    mark("publish")
    version = registry.publish(Path(sys.argv[2]))
    mark("gates")
    record_passing_gates(registry, version.ref)
    mark("promote")
    registry.promote(version.ref, expect=None, reason="durable")
    mark("end")
"""

_SYNC = re.compile(r"\b(?:fsync|fdatasync)\(\d+<([^>]*)>")
_RENAME = re.compile(r'\brename(?:at2?)?\((?:[^,]*, )?"([^"]*)", (?:[^,]*, )?"([^"]*)"')


def _trace(tmp_path: Path) -> list[tuple[str, str, str]]:
    """Publish and promote under strace; return ``(call, path, target)`` in order."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is missing: run `bash scripts/services.sh start`", pytrace=False)
    home, folder = tmp_path / "home", tmp_path / "bundle"
    build_tiny_bundle(folder, seed=1)
    open_registry(home).close()  # created and migrated outside the trace
    log = tmp_path / "trace.txt"
    subprocess.run(
        [strace, "-f", "-qq", "-y", "-e", "signal=none", "-o", str(log),
         "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
         sys.executable, "-c", _SCRIPT, str(home), str(folder)],
        check=True, timeout=300,
    )  # fmt: skip
    calls: list[tuple[str, str, str]] = []
    for line in log.read_text().splitlines():
        if sync := _SYNC.search(line):
            calls.append(("sync", sync.group(1), ""))
        elif rename := _RENAME.search(line):
            calls.append(("rename", rename.group(1), rename.group(2)))
    return calls


def _between(calls: list[tuple[str, str, str]], start: str, end: str) -> list[tuple[str, str, str]]:
    marks = [
        i for i, (call, path, _) in enumerate(calls) if call == "rename" and "trace-mark" in path
    ]
    names = [calls[i][1].rsplit("/", 1)[-1] for i in marks]
    return calls[marks[names.index(start)] + 1 : marks[names.index(end)]]


def test_a_publish_syncs_every_artifact_and_the_rename_before_the_ready_commit(
    tmp_path: Path,
) -> None:
    calls = _between(_trace(tmp_path), "publish", "gates")
    artifacts = tmp_path / "home" / "artifacts"
    model_dir = str(artifacts / "BTCUSDT" / "logreg")
    wal = str(tmp_path / "home" / "alphaops.db-wal")
    moves = [i for i, c in enumerate(calls) if c[0] == "rename" and c[2] == f"{model_dir}/1"]
    assert len(moves) == 1, calls
    moved = moves[0]
    staging = calls[moved][1]
    ready_commit = max(i for i, c in enumerate(calls) if c == ("sync", wal, ""))
    files = [e.path for e in Bundle.load(tmp_path / "bundle").manifest.files] + ["manifest.json"]
    for rel in files:
        synced = [i for i, c in enumerate(calls) if c == ("sync", f"{staging}/{rel}", "")]
        assert synced, f"{rel} was never fsynced"
        assert synced[-1] < moved < ready_commit, rel
    for folder in (staging, f"{staging}/native", f"{staging}/reports"):
        assert any(i < moved for i, c in enumerate(calls) if c == ("sync", folder, "")), folder
    renamed_durably = [i for i, c in enumerate(calls) if c == ("sync", model_dir, "") and i > moved]
    assert renamed_durably, "the model folder was not fsynced after the rename"
    assert renamed_durably[0] < ready_commit
    # The reservation committed (and synced) before the move: two WAL syncs, ready the last.
    assert [c for c in calls[:moved] if c == ("sync", wal, "")], "the reservation was not synced"


def test_a_promote_syncs_its_commit_and_the_latest_link(tmp_path: Path) -> None:
    calls = _between(_trace(tmp_path), "promote", "end")
    model_dir = str(tmp_path / "home" / "artifacts" / "BTCUSDT" / "logreg")
    wal = str(tmp_path / "home" / "alphaops.db-wal")
    commits = [i for i, c in enumerate(calls) if c == ("sync", wal, "")]
    assert commits, "the alias move's commit did not sync the WAL (synchronous=NORMAL?)"
    link = [i for i, c in enumerate(calls) if c[0] == "rename" and c[2] == f"{model_dir}/latest"]
    assert len(link) == 1
    assert commits[0] < link[0]  # the database is the truth; the link follows it
    assert ("sync", model_dir, "") in calls[link[0] + 1 :]
