"""Benchmark the feature pipeline: batch throughput and live ``latest()`` latency.

Batch: ``FeaturePipeline(FeatureSpec.default()).transform`` on the full BTCUSDT 1h history
(about 69,000 rows), median of several runs, plus the median time of each feature alone (a one-feature spec).
Live: ``latest()`` on a rolling window of ``spec.warmup_bars`` candles (built beforehand, so
candle validation is not timed), median and p99 over many calls at different positions.

Data comes from ``$ALPHAOPS_TEST_DATA`` or ``../shared/data`` next to the repository.
Run: ``python benchmarks/bench_features.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import talib

from alphaops.data.candles import Candles
from alphaops.features import FeaturePipeline, FeatureSpec

REPO = Path(__file__).resolve().parents[1]
TRANSFORM_REPEATS = 9
LATEST_CALLS = 2_000
LATEST_WINDOWS = 50


def _data_dir() -> Path:
    return Path(os.environ.get("ALPHAOPS_TEST_DATA", REPO.parent / "shared" / "data"))


def _median_seconds(step: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> dict[str, object]:
    """Time transform on the full BTCUSDT 1h history and latest() on rolling windows."""
    frame = pd.read_parquet(_data_dir() / "BTCUSDT-1h.parquet")
    candles = Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")
    spec = FeatureSpec.default()
    pipeline = FeaturePipeline(spec)
    rows = len(candles)

    pipeline.transform(candles)  # warm caches and imports
    transform_s = _median_seconds(lambda: pipeline.transform(candles), TRANSFORM_REPEATS)

    per_feature = {}
    for feature in spec.features:
        alone = FeaturePipeline(FeatureSpec(features=(feature,)))
        seconds = _median_seconds(lambda alone=alone: alone.transform(candles), TRANSFORM_REPEATS)
        per_feature[f"transform_ms_{feature.name}"] = round(1e3 * seconds, 3)

    width = spec.warmup_bars
    ends = np.linspace(width, rows, LATEST_WINDOWS, dtype=np.int64)
    windows = [
        Candles.from_frame(frame.iloc[end - width : end], symbol="BTCUSDT", timeframe="1h")
        for end in ends
    ]
    pipeline.latest(windows[0])
    latencies_us = []
    for call in range(LATEST_CALLS):
        window = windows[call % len(windows)]
        start = time.perf_counter_ns()
        pipeline.latest(window)
        latencies_us.append((time.perf_counter_ns() - start) / 1e3)

    return {
        "rows": rows,
        "features": len(spec.features),
        "warmup_bars": width,
        "spec_hash": spec.spec_hash,
        "talib_version": str(talib.__version__),
        "transform_median_s": round(transform_s, 5),
        "transform_rows_per_s": round(rows / transform_s),
        **per_feature,
        "latest_window_bars": width,
        "latest_calls": LATEST_CALLS,
        "latest_median_us": round(float(np.median(latencies_us)), 1),
        "latest_p99_us": round(float(np.percentile(latencies_us, 99)), 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
