"""Benchmark sequence windows: 1,000,000 rows x 4 features into (N, 64, 4) float32 (~1 GB).

Compares a naive Python loop, the zero-copy view and the materialised copy against a plain
memory copy of the same number of output bytes (the floor). Two floors are reported:

- ``floor_copy_s``: ``src.copy()`` of a preallocated array, which, like ``materialize()``,
  allocates and first touches a new output array;
- ``floor_copyto_s``: ``np.copyto`` into an already touched array, the like-for-like floor
  of ``materialize(out=...)``.

Run: ``python benchmarks/bench_windows.py``. Output arrays are freed between steps; peak memory
is about 2 GB (the floor's source and destination).
"""

from __future__ import annotations

import gc
import json
import time
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from alphaops.datasets import SequenceWindows

ROWS = 1_000_000
FEATURES = 4
LOOKBACK = 64
REPEATS = 5


def _best(step: Callable[[], Any], repeats: int = REPEATS) -> float:
    """Return the best wall time of ``repeats`` runs, dropping each result before the next."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def _per_call(step: Callable[[], Any], number: int = 10_000) -> float:
    """Return the best mean time per call of a fast step, over five batches of calls."""
    return min(timeit.repeat(step, number=number, repeat=5)) / number


def _windows(rows: int) -> SequenceWindows:
    features = np.random.default_rng(0).standard_normal((rows, FEATURES)).astype(np.float32)
    return SequenceWindows.build(
        features, lookback=LOOKBACK, segments=np.zeros(rows, dtype=np.int64)
    )


def _naive(windows: SequenceWindows) -> np.ndarray[Any, Any]:
    data, t = windows.features, windows.lookback
    out = np.empty(windows.shape, dtype=np.float32)
    for k, end in enumerate(windows.ends.tolist()):
        out[k] = data[end - t + 1 : end + 1]
    return out


def _floors(shape: tuple[int, int, int]) -> tuple[float, float]:
    """Return (allocating copy, copy into a touched array) times for ``shape`` float32."""
    source = np.ones(shape, dtype=np.float32)
    target = np.zeros(shape, dtype=np.float32)
    return _best(source.copy), _best(lambda: np.copyto(target, source))


def _materialize_into(windows: SequenceWindows) -> float:
    """Return the time of materialize(out=...) into an already touched array."""
    target = np.zeros(windows.shape, dtype=np.float32)
    seconds = _best(lambda: windows.materialize(out=target))
    assert np.array_equal(target, windows.view())
    return seconds


def run() -> dict[str, object]:
    """Time naive loop, view and materialise against the memory-copy floor; return a flat dict."""
    windows = _windows(ROWS)
    shape = windows.shape
    out_bytes = int(np.prod(shape)) * 4
    floor_copy, floor_copyto = _floors(shape)
    gc.collect()
    materialize = _best(windows.materialize)
    materialize_out = _materialize_into(windows)
    gc.collect()
    naive = _best(lambda: _naive(windows), repeats=1)

    small = _windows(10_000)
    view_small = _per_call(small.view)
    view_large = _per_call(windows.view)

    return {
        "rows": ROWS,
        "features": FEATURES,
        "lookback": LOOKBACK,
        "windows": shape[0],
        "output_bytes": out_bytes,
        "naive_loop_s": round(naive, 4),
        "view_s_1m_rows": round(view_large, 9),
        "view_s_10k_rows": round(view_small, 9),
        "view_time_ratio_1m_over_10k": round(view_large / view_small, 2),
        "materialize_s": round(materialize, 4),
        "materialize_out_s": round(materialize_out, 4),
        "floor_copy_s": round(floor_copy, 4),
        "floor_copyto_s": round(floor_copyto, 4),
        "materialize_over_floor": round(materialize / floor_copy, 2),
        "materialize_out_over_floor_copyto": round(materialize_out / floor_copyto, 2),
        "naive_over_materialize": round(naive / materialize, 1),
        "goal_materialize_over_floor_max": 1.5,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
