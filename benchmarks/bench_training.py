"""Benchmark training: end to end per family, parallel symbols, cancellation, progress.

- ``*_e2e_s``: features → train → ONNX export with parity → publish (a temporary registry),
  on the full BTCUSDT 1h history of ``../shared/data``. LightGBM runs with its defaults
  (early stopping); the torch models run a fixed number of epochs (``TORCH_EPOCHS``).
- ``symbols5{,_600r}_{executor}_s``: five LightGBM jobs (BTC, ETH, SOL, BNB and ADA, full 1h
  history; defaults with early stopping, and a fixed 600 rounds) one after another and on 2
  workers: the process pool, Ray started here (``ray_local``) and a real two-node Ray
  cluster on loopback (``ray_cluster``: ``ray start --head`` plus a joined worker node, one
  CPU each). For Ray, ``*_first_s`` is the first run (``ray_local``: includes starting
  the runtime; ``ray_cluster``: connecting and starting the actors), ``*_s`` the later runs,
  on warm actors. The default jobs run ``REPEATS`` times per executor and the fastest counts
  (the 2 cores are shared with other work); ``*_speedup`` = sequential / executor seconds.
- ``cancel_*``: latency from ``CancelToken.cancel()`` to the job raising, for cancels at
  random moments during training (trees and torch).
- ``progress_*``: intervals between updates forwarded by a 300 ms ProgressBridge.
- ``async_loop_lag_*``: how late a 10 ms ``asyncio.sleep`` wakes up while
  ``train_job_async`` boosts LightGBM in its worker thread (the event loop must stay
  responsive), and ``async_cancel_ms``: from ``task.cancel()`` to the task having stopped.

Run: ``.venv/bin/python benchmarks/run.py training``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphaops.core.errors import CancelledError
from alphaops.data.candles import Candles
from alphaops.features import LabelRule
from alphaops.registry import open_registry
from alphaops.training import (
    CancelToken,
    ProgressBridge,
    TrainingJob,
    publish_trained,
    train_job,
    train_job_async,
)
from alphaops.training.fanout import run_jobs

DATA = Path(
    os.environ.get("ALPHAOPS_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "ADAUSDT")
RULE = LabelRule(kind="ternary", horizon=4, threshold=0.01)
TORCH_EPOCHS = 1
CANCEL_SAMPLES = 12
REPEATS = 3  # runs of the five default jobs per executor; the fastest counts (shared machine)


def _candles(symbol: str, bars: int | None = None) -> Candles:
    frame = pd.read_parquet(DATA / f"{symbol}-1h.parquet")
    if bars is not None:
        frame = frame.tail(bars)
    return Candles.from_frame(frame, symbol=symbol, timeframe="1h")


def _job(model: str, symbol: str = "BTCUSDT", **params: Any) -> TrainingJob:
    return TrainingJob(symbols=(symbol,), timeframe="1h", model=model, label=RULE, params=params)


def _end_to_end(model: str, candles: dict[str, Candles], **params: Any) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, open_registry(Path(tmp) / "home") as registry:
        started = time.perf_counter()
        trained = train_job(_job(model, **params), candles)
        publish_trained(trained, registry)
        total = time.perf_counter() - started
    return {
        f"{model}_e2e_s": total,
        f"{model}_fit_s": trained.metrics["fit_seconds"],
        f"{model}_train_rows": trained.metrics["train_rows"],
        f"{model}_val_accuracy": trained.metrics["val_accuracy"],
        f"{model}_parity_max_abs_diff": trained.metrics["onnx_parity_max_abs_diff"],
    }


def _cancel_latency(model: str, candles: dict[str, Candles], params: dict[str, Any]) -> list[float]:
    rng = random.Random(0)
    latencies: list[float] = []
    job = _job(model, **params)
    for _ in range(CANCEL_SAMPLES):
        token = CancelToken()
        training = threading.Event()
        stopped: list[float] = []

        def work(
            token: CancelToken = token,
            training: threading.Event = training,
            stopped: list[float] = stopped,
        ) -> None:
            try:
                train_job(job, candles, callbacks=[lambda *_: training.set()], cancel=token)
            except CancelledError:
                stopped.append(time.monotonic())

        thread = threading.Thread(target=work)
        thread.start()
        training.wait(timeout=600)
        time.sleep(rng.uniform(0.0, 0.5))  # cancel at a random moment during training
        token.cancel()
        thread.join()
        if stopped and token.cancelled_at is not None:
            latencies.append(stopped[0] - token.cancelled_at)
    return latencies


def _percentiles(prefix: str, values: list[float]) -> dict[str, float]:
    if not values:
        return {f"{prefix}_samples": 0}
    array = np.asarray(values) * 1000
    return {
        f"{prefix}_p50_ms": float(np.percentile(array, 50)),
        f"{prefix}_p95_ms": float(np.percentile(array, 95)),
        f"{prefix}_max_ms": float(array.max()),
        f"{prefix}_samples": len(values),
    }


def _progress(model: str, candles: dict[str, Candles], **params: Any) -> dict[str, float]:
    raw: list[int] = []
    bridge = ProgressBridge(lambda _: None, interval=0.3)
    train_job(_job(model, **params), candles, callbacks=[lambda *_: raw.append(1), bridge])
    bridge.flush()
    gaps = np.asarray(bridge.intervals) * 1000
    return {
        f"progress_{model}_callbacks": len(raw),
        f"progress_{model}_forwarded": len(gaps) + 1,
        f"progress_{model}_interval_min_ms": float(gaps.min()) if gaps.size else 0.0,
        f"progress_{model}_interval_p50_ms": float(np.percentile(gaps, 50)) if gaps.size else 0.0,
        f"progress_{model}_interval_p95_ms": float(np.percentile(gaps, 95)) if gaps.size else 0.0,
    }


def _async_loop(candles: dict[str, Candles]) -> dict[str, float]:
    job = _job("lightgbm", n_estimators=100_000, early_stopping_rounds=0)

    async def scenario() -> tuple[list[float], float]:
        loop = asyncio.get_running_loop()
        boosting = asyncio.Event()

        def started(*_: Any) -> None:
            loop.call_soon_threadsafe(boosting.set)

        task = asyncio.create_task(train_job_async(job, candles, callbacks=[started]))
        await asyncio.wait_for(boosting.wait(), timeout=600)
        lags = []
        for _ in range(200):
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)
        task.cancel()
        asked = time.perf_counter()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return lags, time.perf_counter() - asked

    lags, stop = asyncio.run(scenario())
    array = np.asarray(lags) * 1000
    return {
        "async_loop_lag_p50_ms": float(np.percentile(array, 50)),
        "async_loop_lag_p99_ms": float(np.percentile(array, 99)),
        "async_loop_lag_max_ms": float(array.max()),
        "async_cancel_ms": stop * 1000,
    }


class _Cluster:
    """A two-node Ray cluster on loopback (one CPU each), each node in its own session."""

    def __init__(self, folder: Path) -> None:
        self.env = os.environ | {"RAY_AUTH_MODE": "token"}
        self.address = f"127.0.0.1:{_free_port()}"
        self.nodes: list[subprocess.Popen[bytes]] = []
        head = ["--head", f"--port={self.address.split(':')[1]}", "--include-dashboard=false"]
        self._start(folder / "head", head)
        self._start(folder / "worker", [f"--address={self.address}"])

    def _start(self, folder: Path, extra: list[str]) -> None:
        folder.mkdir()
        ports = ("dashboard-agent-listen", "dashboard-agent-grpc", "runtime-env-agent")
        args = [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            f"--temp-dir={folder}",
            "--object-store-memory=200000000",
            "--disable-usage-stats",
            *(f"--{name}-port={_free_port()}" for name in ports),
            *extra,
        ]
        log = folder / "start.log"
        with log.open("wb") as out:
            node = subprocess.Popen(
                args, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.nodes.append(node)
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in log.read_bytes():
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        for node in reversed(self.nodes):  # ray start --block stops its own processes
            node.send_signal(signal.SIGTERM)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(30)
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _fanout(market: dict[str, Candles]) -> dict[str, Any]:
    """Five LightGBM jobs on 2 workers: sequential, process, Ray local and a loopback cluster."""
    import ray

    figures: dict[str, Any] = {}
    variants = {"": {}, "_600r": {"n_estimators": 600, "early_stopping_rounds": 0}}
    modes = ("sequential", "process", "ray_local", "ray_cluster")
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="aoray-", dir="/tmp") as tmp:
            # Started only now, so that its idle processes do not slow the other modes.
            cluster = _Cluster(Path(tmp)) if mode == "ray_cluster" else None
            options: dict[str, Any] = {"executor": mode.removesuffix("_local")}
            if cluster is not None:
                os.environ["RAY_AUTH_MODE"] = "token"  # as for the nodes (Ray's token file)
                options = {"executor": "ray", "ray_address": cluster.address}
            try:
                for name, params in variants.items():
                    jobs = [_job("lightgbm", s, **params) for s in SYMBOLS]
                    key = f"symbols5{name}_{mode}"
                    if mode.startswith("ray"):  # the first run, then warm ones (that count)
                        started = time.perf_counter()
                        run_jobs(jobs, market, max_workers=2, **options)
                        figures[f"{key}_first_s"] = time.perf_counter() - started
                    seconds = []
                    for _ in range(REPEATS if not name else 1):
                        started = time.perf_counter()
                        outcomes = run_jobs(jobs, market, max_workers=2, **options)
                        seconds.append(time.perf_counter() - started)
                    figures[f"{key}_s"] = min(seconds)
                    figures[f"{key}_ok"] = sum(o.status == "trained" for o in outcomes)
                    if cluster is not None:
                        figures[f"{key}_nodes"] = len({o.node for o in outcomes})
            finally:
                if mode.startswith("ray"):
                    ray.shutdown()
                if cluster is not None:
                    cluster.stop()
    for name in variants:
        for mode in ("process", "ray_local", "ray_cluster"):
            figures[f"symbols5{name}_{mode}_speedup"] = (
                figures[f"symbols5{name}_sequential_s"] / figures[f"symbols5{name}_{mode}_s"]
            )
    return figures


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    btc = {"BTCUSDT": _candles("BTCUSDT")}
    figures["btc_bars"] = len(btc["BTCUSDT"])
    figures |= _end_to_end("lightgbm", btc)
    fixed = {"max_epochs": TORCH_EPOCHS, "patience": TORCH_EPOCHS}
    figures |= _end_to_end("lstm", btc, **fixed)
    figures |= _end_to_end("patchtst", btc, **fixed)

    figures |= _fanout({s: _candles(s) for s in SYMBOLS})

    small = {"BTCUSDT": _candles("BTCUSDT", 20_000)}
    trees: list[float] = []
    trees += _cancel_latency(
        "lightgbm", small, {"n_estimators": 100_000, "early_stopping_rounds": 0}
    )
    trees += _cancel_latency(
        "xgboost", small, {"n_estimators": 100_000, "early_stopping_rounds": 0}
    )
    trees += _cancel_latency("random_forest", small, {"n_estimators": 100_000})
    figures |= _percentiles("cancel_trees", trees)
    torch_latencies: list[float] = []
    torch_params = {"max_epochs": 1000, "patience": 1000}
    torch_latencies += _cancel_latency("lstm", small, torch_params)
    torch_latencies += _cancel_latency("patchtst", small, torch_params)
    figures |= _percentiles("cancel_torch", torch_latencies)
    figures |= _percentiles("cancel_all", trees + torch_latencies)

    figures |= _progress("lightgbm", btc, n_estimators=2000, early_stopping_rounds=0)
    figures |= _progress("lstm", small, max_epochs=3, patience=3)
    figures |= _async_loop(small)
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
