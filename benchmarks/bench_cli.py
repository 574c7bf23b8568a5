"""How long the ``alphaops`` command takes to answer, start to exit.

Each figure is the median wall time of ``REPEATS`` fresh processes (``python -m alphaops``,
as the console script runs it) on this machine: ``version_flag_ms`` for ``alphaops --version``
(answered before the CLI is imported; goal under 300 ms), ``help_ms`` for ``alphaops -h``
(the whole CLI imported, nothing else done), ``registry_list_ms`` for
``alphaops registry list`` on a home holding one small published model (goal under 1 s),
and ``python_ms`` for a bare ``python -c pass``, the floor every command pays.

Wall time depends on what else the machine runs (2 cores shared by several engineers here);
each ``*_cpu_ms`` figure is the median user + system CPU time of the same processes, which
load barely moves, so compare those between runs.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPEATS = 7


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_ms(args: list[str]) -> tuple[float, float]:
    """Return the median wall and CPU milliseconds of ``REPEATS`` runs of ``args``."""
    wall, cpu = [], []
    for _ in range(REPEATS):
        began, cpu_before = time.perf_counter(), _children_cpu_s()
        subprocess.run(args, check=True, capture_output=True)
        wall.append((time.perf_counter() - began) * 1e3)
        cpu.append((_children_cpu_s() - cpu_before) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def run() -> dict[str, Any]:
    from alphaops.registry import open_registry
    from alphaops.registry.testing import build_tiny_bundle, publish_cleared

    cli = [sys.executable, "-m", "alphaops"]
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp) / "home"
        with open_registry(home) as registry:
            publish_cleared(registry, build_tiny_bundle(Path(tmp) / "bundle", seed=1))
        runs = {
            "python": [sys.executable, "-c", "pass"],
            "version_flag": [*cli, "--version"],
            "help": [*cli, "-h"],
            "registry_list": [*cli, "--home", str(home), "registry", "list"],
        }
        figures: dict[str, Any] = {}
        for name, args in runs.items():
            figures[f"{name}_ms"], figures[f"{name}_cpu_ms"] = _timed_ms(args)
    figures["goal_version_flag_ms"] = 300
    figures["goal_registry_list_ms"] = 1000
    return figures
