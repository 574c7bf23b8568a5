"""Live runtime speed: single-row predict latency and the hot-swap pause.

Figures (tiny real ONNX logistic regression, 4 features, one intra-op thread, SQLite registry):
- ``bare_p50_us`` / ``bare_p99_us``: a bare onnxruntime ``session.run`` on one prepared row
- ``live_p50_us`` / ``live_p99_us``: :meth:`LivePredictor.predict` on the same row (validation,
  routing, result object included) and ``live_overhead_p50_us`` (goal: under 15 µs)
- ``steady_p99_us`` vs ``swap_p99_us``: predict p99 with the poller idle versus while the
  champion is promoted/rolled back every poll (goal: ``swap_over_steady_p99`` within 2)
- ``promote_to_first_new_ms``: from a promote call returning to the first prediction by the new
  version (poll interval ``POLL_S``; median over several promotions)

Not measured here yet: native LightGBM/scikit-learn predict and MLflow pyfunc (they need the
``train``/``bench`` extras and a trained model; the runtime itself never imports them).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from alphaops.registry import open_registry
from alphaops.registry.testing import build_tiny_bundle
from alphaops.runtime import LivePredictor

ROW = np.array([0.1, -0.2, 0.3, 0.4])
ACTIONS = {"down": -1, "up": 1}
POLL_S = 0.01
N = 20_000


def _percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1e6
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def _latencies(fn: Any, n: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in range(n):
        start = clock()
        fn()
        out.append(clock() - start)
    return out


def run() -> dict[str, Any]:
    """Run every measurement and return flat figures with ratios."""
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        root = Path(tmp)
        with open_registry(root / "home") as reg:
            for seed in (1, 2, 3):
                reg.publish(build_tiny_bundle(root / f"b{seed}", seed=seed))
            reg.promote("BTCUSDT/logreg/1", expect=None, reason="bench")
            bot = open_registry(root / "home", actor="bot")
            live = LivePredictor(
                bot, "BTCUSDT/logreg", actions=ACTIONS, poll_interval_s=POLL_S, start=False
            )
            model = live._slot.champion  # the bare session the predictor uses
            feed = {model.input_name: ROW[np.newaxis].astype(np.float32)}
            _latencies(lambda: model.session.run(None, feed), 1000)
            bare = _percentiles(_latencies(lambda: model.session.run(None, feed), N))
            _latencies(lambda: live.predict(ROW), 1000)
            steady = _percentiles(_latencies(lambda: live.predict(ROW), N))
            live.start()
            steady_polling = _percentiles(_latencies(lambda: live.predict(ROW), N))
            stop = threading.Event()

            def churn() -> None:
                champion = 1
                step = 0
                while not stop.is_set():
                    target = 2 if champion != 2 else 3
                    champion = (
                        reg.promote(
                            f"BTCUSDT/logreg/{target}", expect=champion, reason="bench"
                        ).to_version
                        or champion
                    )
                    gen = reg.generation()
                    while live.generation < gen and not stop.is_set():
                        time.sleep(0.0005)
                    step += 1

            mover = threading.Thread(target=churn)
            mover.start()
            swapping = _percentiles(_latencies(lambda: live.predict(ROW), N))
            stop.set()
            mover.join()
            first_new = []
            for _ in range(10):
                current = reg.aliases("BTCUSDT/logreg")["champion"]
                while live.version != current:
                    time.sleep(0.0005)
                target = 1 + current % 3
                reg.promote(f"BTCUSDT/logreg/{target}", expect=current, reason="bench")
                committed = time.perf_counter()
                while live.predict(ROW).version != target:
                    pass
                first_new.append(time.perf_counter() - committed)
            live.close()
            bot.close()
    return {
        "bare_p50_us": bare[0],
        "bare_p99_us": bare[1],
        "live_p50_us": steady[0],
        "live_p99_us": steady[1],
        "live_overhead_p50_us": steady[0] - bare[0],
        "live_over_bare_p50": steady[0] / bare[0],
        "steady_p99_us": steady_polling[1],
        "swap_p99_us": swapping[1],
        "swap_over_steady_p99": swapping[1] / steady_polling[1],
        "promote_to_first_new_ms": statistics.median(first_new) * 1e3,
        "poll_interval_ms": POLL_S * 1e3,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
