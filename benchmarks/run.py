"""Run the benchmarks and write their figures to ``benchmarks/results/``.

Usage: ``.venv/bin/python benchmarks/run.py [NAME ...]`` where NAME is a ``bench_<NAME>.py``
module (all of them when none is given). Each module exposes ``run() -> dict``. Results go to
``benchmarks/results/<NAME>.json`` and a summary table to ``benchmarks/results/README.md``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"bench_{name}.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no benchmark named {name!r} (expected {HERE}/bench_{name}.py)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(names: list[str]) -> None:
    names = names or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        figures = _load(name).run()
        record = {
            "benchmark": name,
            "machine": _machine(),
            "seconds": time.perf_counter() - started,
        }
        record["figures"] = figures
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(json.dumps(figures, indent=2, default=str), flush=True)
    _summary()


def _summary() -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run.py`; one JSON file per benchmark.",
        "",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        record = json.loads(path.read_text())
        lines += [
            f"## {record['benchmark']} ({record['machine']['when']}, {record['machine']['cpus']} CPUs)",
            "",
        ]
        lines += ["| figure | value |", "|---|---|"]
        for key, value in record["figures"].items():
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            lines.append(f"| {key} | {shown} |")
        lines.append("")
    (RESULTS / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
