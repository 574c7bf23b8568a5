"""How long the ``alphaops`` command takes to answer, start to exit.

Each figure is the median wall time of ``REPEATS`` fresh processes (``python -m alphaops``,
as the console script runs it) on this machine: ``version_flag_ms`` for ``alphaops --version``
(answered before the CLI is imported; goal under 300 ms), ``help_ms`` for ``alphaops -h``
(the whole CLI imported, nothing else done), ``registry_list_ms`` for
``alphaops registry list`` on a home holding one small published model (goal under 1 s),
and ``python_ms`` for a bare ``python -c pass``, the floor every command pays.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPEATS = 7


def _wall_ms(args: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


def run() -> dict[str, Any]:
    from alphaops.registry import open_registry
    from alphaops.registry.testing import build_tiny_bundle, publish_cleared

    cli = [sys.executable, "-m", "alphaops"]
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp) / "home"
        with open_registry(home) as registry:
            publish_cleared(registry, build_tiny_bundle(Path(tmp) / "bundle", seed=1))
        figures = {
            "python_ms": _wall_ms([sys.executable, "-c", "pass"]),
            "version_flag_ms": _wall_ms([*cli, "--version"]),
            "help_ms": _wall_ms([*cli, "-h"]),
            "registry_list_ms": _wall_ms([*cli, "--home", str(home), "registry", "list"]),
        }
    figures["goal_version_flag_ms"] = 300
    figures["goal_registry_list_ms"] = 1000
    return figures
