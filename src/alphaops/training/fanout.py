"""Run many training jobs: one after another, on a local process pool, or on Ray actors.

Workers train and export; the calling process is the only one that publishes, so a Ray
cluster needs no access to the registry and a cancelled or failed job never reaches it.
A failure in one job is recorded in its :class:`JobOutcome` and the others go on. Progress
is throttled in the worker (:class:`ProgressBridge`) and forwarded as ``(job index,
update)``; cancellation reaches every worker within one batch, round or tree chunk.

A pool worker never outlives the process that submitted its job: it watches that process
and exits as soon as it is gone (killed, crashed), and it exits on its own when a cancelled
job has not stopped within ``_STOP_GRACE_SECONDS`` (stuck between two checks). The Ray
executor lives in :mod:`alphaops.training._ray` (warm actors, candles shipped once).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import queue as queue_module
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from alphaops.core.errors import AlphaOpsError, CancelledError, UsageError
from alphaops.data.candles import Candles
from alphaops.registry import ModelVersion
from alphaops.training._control import (
    CancelToken,
    EventLike,
    ProgressBridge,
    ProgressUpdate,
    interrupts_cancel,
)
from alphaops.training._ray import RayWhere, run_ray
from alphaops.training.executor import TrainedBundle, train_job
from alphaops.training.job import TrainingJob

__all__ = ["EXECUTORS", "ExecutorKind", "JobOutcome", "ProgressSink", "run_jobs"]

ExecutorKind = Literal["sequential", "process", "ray"]
Status = Literal["published", "trained", "failed", "cancelled"]
EXECUTORS: tuple[str, ...] = ("sequential", "process", "ray")
ProgressSink = Callable[[int, ProgressUpdate], None]
Publisher = Callable[[TrainedBundle], ModelVersion]
_POLL_SECONDS = 0.02
_PRELOAD = ["alphaops.training.executor", "alphaops.training.tabular"]
_WATCH_SECONDS = 0.1
_STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one job: published (with its version), trained, failed or cancelled."""

    index: int
    job: TrainingJob
    status: Status
    seconds: float
    version: int | None = None
    ref: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    node: str | None = None
    """The Ray node id that ran the job (Ray executor only)."""
    pid: int | None = None
    """The Ray worker process that ran the job (Ray executor only)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (with ``node``/``pid`` when Ray ran the job)."""
        where = {} if self.node is None else {"node": self.node, "pid": self.pid}
        return where | {
            "symbol": self.job.registry_symbol,
            "model": self.job.model,
            "status": self.status,
            "version": self.version,
            "ref": self.ref,
            "seconds": round(self.seconds, 3),
            "metrics": self.metrics,
            "error": self.error,
        }


def run_jobs(
    jobs: Sequence[TrainingJob],
    candles: Mapping[str, Candles],
    *,
    executor: ExecutorKind = "process",
    max_workers: int | None = None,
    ray_address: str | None = None,
    publish: Publisher | None = None,
    progress: ProgressSink | None = None,
    cancel: CancelToken | None = None,
    on_done: Callable[[JobOutcome], None] | None = None,
    progress_interval: float = 0.3,
) -> list[JobOutcome]:
    """Train every job (in parallel unless ``executor="sequential"``); return their outcomes.

    ``publish`` is called in this process for each trained bundle, as soon as it arrives;
    ``on_done`` gets each outcome as it is known. Cancelling ``cancel`` (or Ctrl-C, which
    cancels it) stops the running jobs at their next check; jobs not yet published end
    ``cancelled``, nothing more is published, and the outcomes are returned as usual. A
    publish under way when Ctrl-C comes completes (see :func:`interrupts_cancel`).
    """
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}", fix=f"use one of {list(EXECUTORS)}")
    token = cancel or CancelToken()
    workers = max(1, min(len(jobs), max_workers or os.cpu_count() or 1))
    collector = _Collector(jobs, publish, token, on_done)
    try:
        with interrupts_cancel(token):
            if executor == "ray":
                run_ray(
                    jobs,
                    candles,
                    collector.accept,
                    progress,
                    token,
                    max_workers,
                    progress_interval,
                    ray_address,
                )
            else:
                run = _run_sequential if executor == "sequential" else _run_process
                run(jobs, candles, collector, progress, token, workers, progress_interval)
    except KeyboardInterrupt:  # a second Ctrl-C, or SIGINT handled by the application
        token.cancel()
    return collector.outcomes()


class _Collector:
    """Turns worker results into outcomes and publishes, in the calling process."""

    def __init__(
        self,
        jobs: Sequence[TrainingJob],
        publish: Publisher | None,
        token: CancelToken,
        on_done: Callable[[JobOutcome], None] | None,
    ):
        self.jobs = jobs
        self.publish = publish
        self.token = token
        self.on_done = on_done
        self.started = time.perf_counter()
        self.done: dict[int, JobOutcome] = {}

    def accept(
        self, index: int, result: tuple[str, Any], seconds: float, where: RayWhere | None = None
    ) -> None:
        outcome = self._outcome(index, result, seconds)
        if where is not None:
            outcome = replace(outcome, node=where[0], pid=where[1])
        self.done[index] = outcome
        if self.on_done is not None:
            self.on_done(self.done[index])

    def _outcome(self, index: int, result: tuple[str, Any], seconds: float) -> JobOutcome:
        job = self.jobs[index]
        kind, payload = result
        if kind == "error":
            # Once cancelled, a job that ends in error (a worker stopped, a future cancelled
            # before it ran) was cancelled, not a failure.
            cancelled = self.token.cancelled or payload.get("error") == CancelledError.code
            status: Status = "cancelled" if cancelled else "failed"
            return JobOutcome(index, job, status, seconds, error=payload)
        trained: TrainedBundle = payload
        if self.token.cancelled:
            return JobOutcome(
                index, job, "cancelled", seconds, metrics=trained.metrics, error=_cancelled()
            )
        if self.publish is None:
            return JobOutcome(index, job, "trained", seconds, metrics=trained.metrics)
        try:
            version = self.publish(trained)
        except AlphaOpsError as exc:
            return JobOutcome(index, job, "failed", seconds, error=exc.to_dict())
        return JobOutcome(
            index, job, "published", seconds, version.version, version.ref, trained.metrics
        )

    def outcomes(self) -> list[JobOutcome]:
        elapsed = time.perf_counter() - self.started
        return [
            self.done.get(i) or JobOutcome(i, job, "cancelled", elapsed, error=_cancelled())
            for i, job in enumerate(self.jobs)
        ]


def _cancelled() -> dict[str, Any]:
    return CancelledError("cancelled before it was published", fix="run it again").to_dict()


# -- the work done in a worker (module level so that it pickles) ---------------------------

_WORKER_EVENT: EventLike | None = None
_WORKER_QUEUE: Any = None


def _work(
    index: int,
    job: TrainingJob,
    candles: Mapping[str, Candles],
    interval: float,
    token: CancelToken,
    sink: Callable[[int, ProgressUpdate], None] | None,
) -> tuple[str, Any]:
    bridge = ProgressBridge(
        (lambda update: sink(index, update)) if sink is not None else (lambda _: None),
        interval=interval,
    )
    try:
        trained = train_job(job, candles, callbacks=[bridge], cancel=token)
        bridge.flush()
        return ("ok", trained)
    except AlphaOpsError as exc:
        return ("error", exc.to_dict())
    except KeyboardInterrupt:
        token.cancel()  # Ctrl-C in the sequential executor: stop this job and the rest
        return ("error", _cancelled())
    except Exception as exc:  # isolate the failure: report it, let the other jobs run
        return ("error", {"error": "training_failed", "message": f"{type(exc).__name__}: {exc}"})


def _subset(job: TrainingJob, candles: Mapping[str, Candles]) -> dict[str, Candles]:
    return {s: candles[s] for s in job.symbols if s in candles}


def _run_sequential(
    jobs: Sequence[TrainingJob],
    candles: Mapping[str, Candles],
    collector: _Collector,
    progress: ProgressSink | None,
    token: CancelToken,
    workers: int,
    interval: float,
) -> None:
    for index, job in enumerate(jobs):
        if token.cancelled:
            return
        started = time.perf_counter()
        result = _work(index, job, _subset(job, candles), interval, token, progress)
        collector.accept(index, result, time.perf_counter() - started)


def _init_process_worker(event: EventLike, updates: Any) -> None:
    global _WORKER_EVENT, _WORKER_QUEUE
    # Ctrl-C reaches the whole process group; the parent turns it into a cancel instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_EVENT, _WORKER_QUEUE = event, updates
    parent = mp.parent_process()
    threading.Thread(
        target=_watch, args=(parent, event), name="alphaops-worker-watch", daemon=True
    ).start()


def _watch(parent: mp.process.BaseProcess | None, event: EventLike) -> None:
    # A pool worker is a child of the fork server, not of the process that submitted its
    # job, so nothing tells it when that process is killed or crashes. parent_process() is
    # the submitting process (its sentinel is a pipe end it holds open until it dies). A hard
    # exit is safe: a worker publishes nothing.
    cancelled_at: float | None = None
    while True:
        if parent is not None:
            parent.join(_WATCH_SECONDS)
            if not parent.is_alive():
                os._exit(1)
        else:
            time.sleep(_WATCH_SECONDS)
        if event.is_set():
            cancelled_at = cancelled_at or time.monotonic()
            if time.monotonic() - cancelled_at > _STOP_GRACE_SECONDS:
                os._exit(1)


def _process_work(
    index: int, job: TrainingJob, candles: Mapping[str, Candles], interval: float
) -> tuple[str, Any]:
    assert _WORKER_EVENT is not None
    updates = _WORKER_QUEUE
    return _work(
        index,
        job,
        candles,
        interval,
        CancelToken(_WORKER_EVENT),
        lambda i, u: updates.put((i, u)),
    )


def _run_process(
    jobs: Sequence[TrainingJob],
    candles: Mapping[str, Candles],
    collector: _Collector,
    progress: ProgressSink | None,
    token: CancelToken,
    workers: int,
    interval: float,
) -> None:
    # forkserver, not fork: forking a process that already runs torch/OpenMP threads can
    # deadlock. The server preloads the training modules once, so a worker starts in
    # milliseconds instead of re-importing them (seconds) as with spawn.
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    event = context.Event()
    updates = context.Queue()
    with cf.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_process_worker, initargs=(event, updates)
    ) as pool:
        started = time.perf_counter()
        pending = {
            pool.submit(_process_work, i, job, _subset(job, candles), interval): i
            for i, job in enumerate(jobs)
        }
        try:
            while pending:
                done, _ = cf.wait(pending, timeout=_POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
                _drain(updates, progress)
                if token.cancelled:
                    event.set()
                    for future in pending:  # jobs not handed to a worker yet never start
                        future.cancel()
                for future in done:
                    index = pending.pop(future)
                    collector.accept(index, _result(future), time.perf_counter() - started)
        except KeyboardInterrupt:
            event.set()
            token.cancel()
            for future in list(pending):  # each stops at its next check
                collector.accept(pending.pop(future), _result(future), 0.0)
        finally:
            _drain(updates, progress)


def _result(future: cf.Future[tuple[str, Any]]) -> tuple[str, Any]:
    try:
        return future.result()
    except cf.CancelledError:
        return ("error", _cancelled())
    except Exception as exc:  # a worker process died (e.g. out of memory)
        return ("error", {"error": "training_failed", "message": f"{type(exc).__name__}: {exc}"})


def _drain(updates: Any, progress: ProgressSink | None) -> None:
    while True:
        try:
            index, update = updates.get_nowait()
        except queue_module.Empty:
            return
        if progress is not None:
            progress(index, update)
