"""Registry speed on the embedded default (SQLite WAL + local folder), side by side with MLflow.

Figures, at 10 / 1,000 / 10,000 versions of one model:
- ``resolve_us``: resolving ``SYMBOL/TYPE@champion`` (MLflow: ``get_model_version_by_alias``)
- ``promote_ms``: a compare-and-swap promote with its audit record (MLflow:
  ``set_registered_model_alias``, which writes no audit record and does no CAS)
- ``publish_ms``: publishing a small real bundle: copy, checksum, ONNX smoke test, allocate
  (MLflow: ``create_model_version``, which only records a source URI; nothing is copied/verified)
- ``list_ms``: listing every version of the model (MLflow: ``search_model_versions``)
and ``mlflow_over_alphaops_*`` ratios (above 1 means alphaops is faster).

Only the version under test is a real bundle: the other versions exist as metadata rows inserted
in bulk (in both registries), because resolve/promote/list only read rows and publishing 10,000
bundles one by one would take the benchmark's whole time budget.
MLflow runs on its default SQLite store (``mlflow-skinny``, extra ``bench``).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from alphaops.registry import Registry, open_registry
from alphaops.registry import _schema as t
from alphaops.registry.testing import build_tiny_bundle, record_passing_gates

SIZES = (10, 1_000, 10_000)
KEY = "BTCUSDT/logreg"


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Return the median seconds of ``repeat`` calls (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _fill_alphaops(registry: Registry, n: int, work: Path) -> None:
    first = registry.publish(build_tiny_bundle(work / "seed", seed=0))
    rows = [
        {
            "model_id": 1,
            "symbol": "BTCUSDT",
            "model_type": "logreg",
            "version": v,
            "status": "ready",
            "manifest": first.manifest_json,
            "manifest_sha256": first.manifest_sha256,
            "size_bytes": first.size_bytes,
            "created_at": first.created_at,
            "created_by": "bench",
        }
        for v in range(2, n + 1)
    ]
    with registry.database.write() as conn:
        assert conn.execute(select(t.models.c.id)).scalar_one() == 1
        if rows:
            conn.execute(insert(t.versions), rows)
    # Promotion is fail-closed in the registry: clear the two versions the bench moves between.
    for version in {1, n}:
        record_passing_gates(registry, f"{KEY}/{version}")
    registry.promote(f"{KEY}/1", expect=None, reason="bench")


def bench_alphaops(n: int, work: Path) -> dict[str, float]:
    """Measure the embedded registry with ``n`` versions of one model."""
    with open_registry(work / "home", actor="bench") as registry:
        _fill_alphaops(registry, n, work)
        state = {"champion": 1}

        def promote() -> None:
            target = n if state["champion"] != n else 1
            registry.promote(f"{KEY}/{target}", expect=state["champion"], reason="bench")
            state["champion"] = target

        bundles = [build_tiny_bundle(work / f"b{i}", seed=i + 1) for i in range(12)]
        queue = list(bundles)
        return {
            "resolve_us": _time(lambda: registry.resolve(f"{KEY}@champion"), 2000) * 1e6,
            "promote_ms": _time(promote, 300) * 1e3,
            "publish_ms": _time(lambda: registry.publish(queue.pop()), 10) * 1e3,
            "list_ms": _time(lambda: registry.list_versions(KEY), 5 if n > 1000 else 30) * 1e3,
        }


def bench_mlflow(n: int, work: Path) -> dict[str, float]:
    """Measure MLflow's model registry (default SQLite store) with ``n`` versions."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_TRACKING_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    source = str(work / "model")
    client.create_model_version("m", source)
    _bulk_mlflow_versions(uri, n)
    client.set_registered_model_alias("m", "champion", "1")
    state = {"champion": 1}

    def promote() -> None:
        target = n if state["champion"] != n else 1
        client.set_registered_model_alias("m", "champion", str(target))
        state["champion"] = target

    return {
        "resolve_us": _time(lambda: client.get_model_version_by_alias("m", "champion"), 300) * 1e6,
        "promote_ms": _time(promote, 100) * 1e3,
        "publish_ms": _time(lambda: client.create_model_version("m", source), 10) * 1e3,
        "list_ms": _time(lambda: client.search_model_versions("name='m'", max_results=200_000), 3)
        * 1e3,
    }


def _bulk_mlflow_versions(uri: str, n: int) -> None:
    from sqlalchemy import MetaData, Table, create_engine

    engine = create_engine(uri)
    table = Table("model_versions", MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        template = dict(conn.execute(select(table)).mappings().one())
        rows = [template | {"version": v} for v in range(2, n + 1)]
        if rows:
            conn.execute(insert(table), rows)
    engine.dispose()


def run() -> dict[str, Any]:
    """Run every size on both registries and return flat figures with ratios."""
    figures: dict[str, Any] = {}
    warnings.simplefilter("ignore")
    for n in SIZES:
        with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
            ours = bench_alphaops(n, Path(tmp) / "alphaops")
            theirs = bench_mlflow(n, Path(tmp)) if _has_mlflow() else {}
        for name, value in ours.items():
            figures[f"alphaops_{name}_at_{n}"] = round(value, 3)
            if name in theirs:
                figures[f"mlflow_{name}_at_{n}"] = round(theirs[name], 3)
                figures[f"mlflow_over_alphaops_{name}_at_{n}"] = round(theirs[name] / value, 2)
    for name in ("resolve_us", "promote_ms"):
        figures[f"alphaops_{name}_10k_over_10"] = round(
            figures[f"alphaops_{name}_at_{SIZES[-1]}"] / figures[f"alphaops_{name}_at_{SIZES[0]}"],
            2,
        )
    figures["mlflow_available"] = _has_mlflow()
    return figures


def _has_mlflow() -> bool:
    try:
        import mlflow.tracking  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
