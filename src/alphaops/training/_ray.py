"""The Ray executor: a warm pool of trainer actors; each symbol's candles shipped once.

One :class:`_Trainer` actor per CPU slot (``num_cpus=1``, spread over the nodes) imports the
training modules once when it starts and then trains job after job; the driver hands a job
to an actor only when it is idle, so a cancelled run never starts the jobs it still holds.
Each symbol's candles go to the object store once per run (``ray.put``) and every job that
needs them gets the reference, so a symbol trained with several models is shipped once.

The driver connection is kept for the life of the process (connecting, or starting a local
runtime, costs seconds) and so are the warm actors: on a local runtime alphaops started
(nobody else uses it) for good; on a cluster alphaops connected to by address until they
have been idle for ``IDLE_RELEASE_SECONDS``, so that idle alphaops actors do not hold CPUs
another driver needs. On a Ray the caller connected (``ray.init`` before ``run_jobs``) the
actors are released at the end of each run.

Cancellation goes through the actors' control methods (a second concurrency group), not
``ray.cancel``: the job stops at its next boosting round, epoch or tree chunk and reports
``cancelled``; an actor that has not stopped after ``STOP_GRACE_SECONDS`` is killed.
"""

from __future__ import annotations

import atexit
import importlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alphaops.core.errors import CancelledError, ExternalServiceError, UsageError
from alphaops.data.candles import Candles
from alphaops.training._control import CancelToken, ProgressUpdate
from alphaops.training.job import TrainingJob

__all__ = ["RayWhere", "run_ray"]

RayWhere = tuple[str, int]
"""``(node id, worker pid)`` of the actor that ran a job."""
Accept = Callable[[int, tuple[str, Any], float, RayWhere | None], None]
ProgressSink = Callable[[int, ProgressUpdate], None]
PRELOAD = ("alphaops.training.executor", "alphaops.training.tabular")
POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 5.0
IDLE_RELEASE_SECONDS = 15.0
"""How long warm actors outlive a run on a cluster alphaops connected to by address."""


def _cancelled_error() -> dict[str, Any]:
    return CancelledError(
        "stopped: the job did not reach a cancellation check in time",
        fix="nothing to clean up: a cancelled job publishes nothing; start it again",
    ).to_dict()


class _Trainer:
    """A Ray actor that trains one job at a time; ``cancel``/``progress`` run alongside."""

    def __init__(self) -> None:
        for name in PRELOAD:  # warm: the first job does not pay for the imports
            importlib.import_module(name)
        import ray

        self.where: RayWhere = (ray.get_runtime_context().get_node_id(), os.getpid())
        self.lock = threading.Lock()
        self.events: dict[str, threading.Event] = {}  # run id → its cancel flag
        self.updates: list[tuple[str, int, ProgressUpdate]] = []  # (run id, job index, update)

    def train(
        self,
        run: str,
        index: int,
        job: TrainingJob,
        interval: float,
        report: bool,
        symbols: tuple[str, ...],
        *candles: Candles,
    ) -> tuple[tuple[str, Any], RayWhere]:
        from alphaops.training.fanout import _work

        with self.lock:
            event = self.events.setdefault(run, threading.Event())

        def sink(i: int, update: ProgressUpdate) -> None:
            if report:
                with self.lock:
                    self.updates.append((run, i, update))

        data = dict(zip(symbols, candles, strict=True))
        return _work(index, job, data, interval, CancelToken(event), sink), self.where

    def cancel(self, run: str) -> None:
        with self.lock:
            self.events.setdefault(run, threading.Event()).set()

    def progress(self, run: str) -> list[tuple[int, ProgressUpdate]]:
        with self.lock:
            mine = [(i, u) for r, i, u in self.updates if r == run]
            self.updates = [item for item in self.updates if item[0] != run]
        return mine

    def finish(self, run: str) -> None:
        with self.lock:
            self.events.pop(run, None)
            self.updates = [item for item in self.updates if item[0] != run]


@dataclass
class _Session:
    """The driver's Ray connection and, for a runtime started here, its warm actors."""

    address: str | None
    owned: bool
    actors: list[Any] = field(default_factory=list)
    runs: int = 0  # runs under way (several threads may share the session)
    idle_mark: object | None = None  # the pending idle release, if any


_SESSION: _Session | None = None
_SESSION_LOCK = threading.Lock()


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError("the ray executor needs Ray", fix="pip install 'alphaops[ray]'") from exc
    return ray


def _connect(ray: Any, address: str | None) -> _Session:
    """Return the live session for ``address``, connecting (or starting Ray) when needed."""
    global _SESSION
    session = _SESSION
    if session is not None and ray.is_initialized() and session.owned:
        if address is None or address == session.address:
            return session
        _check_reachable(address)
        _release(ray, session)
        ray.shutdown()  # ours, and the caller wants another cluster
    _SESSION = None
    if ray.is_initialized():  # the caller connected Ray: use it as it is, own nothing
        return _Session(address=None, owned=False)
    if address is not None:
        _check_reachable(address)
    try:
        if address is None:
            ray.init(  # sized to the machine: the runtime stays up for later runs
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ExternalServiceError(
            f"cannot connect to the Ray cluster at {address!r}: {exc}",
            fix="check the address printed by `ray start --head`; a cluster with token "
            "authentication needs RAY_AUTH_MODE=token and its token in this environment",
        ) from exc
    _SESSION = _Session(address=address, owned=True)
    atexit.unregister(_shutdown_at_exit)  # once, however often we reconnect
    atexit.register(_shutdown_at_exit)
    return _SESSION


def _check_reachable(address: str) -> None:
    """Fail fast on a malformed or silent address (``ray.init`` would retry for a minute)."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(
            f"Ray address {address!r} is not HOST:PORT",
            fix="pass the address printed by `ray start --head`, e.g. 127.0.0.1:6379",
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3.0).close()
    except OSError as exc:
        raise ExternalServiceError(
            f"no Ray cluster answers at {address}: {exc}",
            fix="start one with `ray start --head --port=PORT`, or check the address and port",
        ) from exc


def _shutdown_at_exit() -> None:
    ray = _ray()
    if _SESSION is not None and ray.is_initialized():
        ray.shutdown()


def _release(ray: Any, session: _Session) -> None:
    for actor in session.actors:
        ray.kill(actor)
    session.actors.clear()


def _pool(ray: Any, session: _Session, wanted: int) -> list[Any]:
    """Return ``wanted`` trainer actors, reusing the session's warm ones (call under the lock)."""
    actor_class = ray.remote(
        num_cpus=1,
        max_restarts=0,
        concurrency_groups={"control": 2},
        scheduling_strategy="SPREAD",
    )(_Trainer)
    actors = session.actors
    while len(actors) < wanted:
        actors.append(actor_class.remote())
    return actors[:wanted]


def _keep_warm(ray: Any, session: _Session) -> None:
    """After a run (under the lock): keep the actors, or release them when idle too long."""
    if not session.owned:
        _release(ray, session)
    elif session.address is not None and session.runs == 0:  # a cluster others may share
        mark = object()
        session.idle_mark = mark
        timer = threading.Timer(IDLE_RELEASE_SECONDS, _release_idle, (ray, session, mark))
        timer.daemon = True
        timer.start()


def _release_idle(ray: Any, session: _Session, mark: object) -> None:
    with _SESSION_LOCK:
        if session.runs == 0 and session.idle_mark is mark and ray.is_initialized():
            _release(ray, session)


def run_ray(
    jobs: Sequence[TrainingJob],
    candles: Mapping[str, Candles],
    accept: Accept,
    progress: ProgressSink | None,
    token: CancelToken,
    max_workers: int | None,
    interval: float,
    ray_address: str | None,
) -> None:
    """Train ``jobs`` on Ray; call ``accept(index, result, seconds, where)`` for each one."""
    ray = _ray()
    with _SESSION_LOCK:
        session = _connect(ray, ray_address)
        slots = max_workers or int(ray.cluster_resources().get("CPU", 1))
        actors = _pool(ray, session, max(1, min(len(jobs), slots)))
        session.runs += 1
        session.idle_mark = None
    run = uuid.uuid4().hex
    try:
        _dispatch(ray, session, actors, run, jobs, candles, accept, progress, token, interval)
    finally:
        for actor in actors:
            actor.finish.options(concurrency_group="control").remote(run)
        with _SESSION_LOCK:
            session.runs -= 1
            _keep_warm(ray, session)


def _dispatch(
    ray: Any,
    session: _Session,
    actors: list[Any],
    run: str,
    jobs: Sequence[TrainingJob],
    candles: Mapping[str, Candles],
    accept: Accept,
    progress: ProgressSink | None,
    token: CancelToken,
    interval: float,
) -> None:
    """Hand each job to an idle actor; collect results, progress and cancellation."""
    # Each symbol's candles go to the object store once; every job needing them gets the ref.
    refs = {s: ray.put(c) for s, c in candles.items() if any(s in j.symbols for j in jobs)}
    started = time.perf_counter()
    waiting = list(range(len(jobs)))
    running: dict[Any, tuple[int, Any]] = {}  # result ref → (job index, actor)
    idle = list(actors)
    cancel_sent: float | None = None
    last_poll = 0.0

    def drop(actor: Any) -> None:  # dead or killed: never reuse it
        with _SESSION_LOCK:
            if actor in session.actors:
                session.actors.remove(actor)

    try:
        while waiting or running:
            while idle and waiting and not token.cancelled:
                index, actor = waiting.pop(0), idle.pop(0)
                symbols = tuple(s for s in jobs[index].symbols if s in refs)
                ref = actor.train.remote(
                    run,
                    index,
                    jobs[index],
                    interval,
                    progress is not None,
                    symbols,
                    *(refs[s] for s in symbols),
                )
                running[ref] = (index, actor)
            if token.cancelled:
                waiting.clear()  # never handed to an actor: the collector ends them cancelled
                if cancel_sent is None:
                    cancel_sent = time.monotonic()
                    _send_cancel(running, run)
                elif time.monotonic() - cancel_sent > STOP_GRACE_SECONDS:
                    for ref, (index, actor) in list(running.items()):  # stuck: stop it hard
                        ray.kill(actor)
                        drop(actor)
                        running.pop(ref)
                        accept(index, ("error", _cancelled_error()), 0.0, None)
                    continue
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            now = time.monotonic()
            if progress is not None and (done or now - last_poll >= interval):
                last_poll = now
                _forward_progress(ray, {a for _, a in running.values()}, run, progress)
            for ref in done:
                index, actor = running.pop(ref)
                result, where = _result(ray, ref)
                if where is None:
                    drop(actor)
                else:
                    idle.append(actor)
                accept(index, result, time.perf_counter() - started, where)
    except KeyboardInterrupt:
        token.cancel()
        _send_cancel(running, run)
        raise


def _send_cancel(running: Mapping[Any, tuple[int, Any]], run: str) -> None:
    for _, actor in running.values():
        actor.cancel.options(concurrency_group="control").remote(run)


def _forward_progress(ray: Any, actors: set[Any], run: str, progress: ProgressSink) -> None:
    refs = [a.progress.options(concurrency_group="control").remote(run) for a in actors]
    try:
        batches = ray.get(refs, timeout=5.0)
    except Exception:  # an actor died or is overloaded: progress is best effort
        return
    for batch in batches:
        for index, update in batch:
            progress(index, update)


def _result(ray: Any, ref: Any) -> tuple[tuple[str, Any], RayWhere | None]:
    try:
        result, where = ray.get(ref)
        return result, where
    except Exception as exc:  # the actor or its worker process died
        message = f"{type(exc).__name__}: {exc}"
        return ("error", {"error": "training_failed", "message": message}), None
