"""Judge a rollout from inside the bot: every interval, what the live challenger did is analysed.

A :class:`RolloutMonitor` sits next to the bot's :class:`~alphaops.runtime.LivePredictor`. Each
:meth:`~RolloutMonitor.tick` reads the model's active rollout; once its ``interval_s`` has
passed since the interval began (in shadow or canary, never while paused), it takes the
predictor's interval stats (:meth:`~alphaops.runtime.LivePredictor.take_interval_stats`),
hands them to :meth:`RolloutController.analyse` (pass advances, a failure counts and the
``max_failures``-th rolls back, inconclusive pauses and never promotes; every move audited),
and polls the predictor so its routing follows the move at once.

An interval begins when the monitor first sees the rollout at a position (rollout, phase,
step, failures): at its first tick, after each analysis, and after a move made elsewhere (a
hand ``advance``, a ``resume``, another bot's analysis). What the predictor counted before
that belongs to no interval and is dropped, so a restarted bot starts a fresh, full interval.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from alphaops.core.errors import NotFoundError, UsageError, VersionConflictError
from alphaops.registry import Registry, RolloutRecord
from alphaops.rollout import AnalysisPolicy, Phase
from alphaops.runtime import LivePredictor
from alphaops.services.rollout import AnalysisOutcome, RolloutController

__all__ = ["RolloutMonitor"]

_MEASURED = (Phase.SHADOW.value, Phase.CANARY.value)
"""The phases whose traffic is analysed (a paused rollout waits for a person)."""


@dataclass(frozen=True)
class _Interval:
    position: tuple[str, str, int, int]  # rollout id, phase, step, failures
    began: float


def _position(record: RolloutRecord) -> tuple[str, str, int, int]:
    return record.id, record.phase, record.step, record.failures


class RolloutMonitor:
    """Analyse the active rollout of ``live``'s model every ``interval_s`` of the rollout.

    ``registry`` is where the rollout moves are written (``actor`` names who moved it in the
    audit log; default: the registry's actor); ``policy`` holds the limits an interval must
    meet; ``clock`` measures the intervals (inject a fake in tests); ``period_s`` is how often
    the background thread ticks (started by the constructor unless ``start=False``).
    ``on_outcome`` is called with every analysis; the last ``max_log`` outcomes and the errors
    of the background thread are kept in :attr:`outcomes` and :attr:`errors`.

    >>> import tempfile, pathlib, numpy as np
    >>> from alphaops.registry import open_registry
    >>> from alphaops.registry.testing import build_tiny_bundle, publish_cleared
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> reg = open_registry(tmp / "home")
    >>> for seed in (1, 2):
    ...     _ = publish_cleared(reg, build_tiny_bundle(tmp / f"b{seed}", seed=seed))
    >>> _ = reg.promote("BTCUSDT/logreg/1", expect=None, reason="first")
    >>> _ = RolloutController(reg).start("BTCUSDT/logreg/2", steps="shadow,50", interval_s=60)
    >>> now = [0.0]
    >>> live = LivePredictor(reg, "BTCUSDT/logreg", actions={"down": -1, "up": 1}, start=False)
    >>> policy = AnalysisPolicy(min_predictions=30, max_latency_p99_s=0.5)
    >>> monitor = RolloutMonitor(reg, live, policy=policy, clock=lambda: now[0], start=False)
    >>> monitor.tick() is None  # the first interval begins
    True
    >>> for i in range(40):
    ...     _ = live.predict(np.full(4, i / 40), routing_key=i)
    >>> now[0] = 60.0
    >>> outcome = monitor.tick()
    >>> outcome.verdict.value, outcome.rollout.phase, live.routing.percentage
    ('pass', 'canary', 50)
    >>> monitor.close(); live.close(); reg.close()
    """

    def __init__(
        self,
        registry: Registry,
        live: LivePredictor,
        *,
        policy: AnalysisPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        period_s: float = 1.0,
        actor: str | None = None,
        on_outcome: Callable[[AnalysisOutcome], None] | None = None,
        max_log: int = 1000,
        start: bool = True,
    ) -> None:
        if period_s <= 0:
            raise UsageError(f"period_s={period_s} must be positive", fix="pass e.g. 1.0")
        self.registry = registry
        self.live = live
        self.policy = policy or AnalysisPolicy()
        self.period_s = period_s
        self.outcomes: deque[AnalysisOutcome] = deque(maxlen=max_log)
        self.errors: deque[Exception] = deque(maxlen=max_log)
        self._controller = RolloutController(registry, actor=actor)
        self._clock = clock
        self._on_outcome = on_outcome
        self._interval: _Interval | None = None
        self._lock = threading.Lock()  # a manual tick and the thread's never interleave
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def tick(self) -> AnalysisOutcome | None:
        """Analyse the interval if it is due and return the outcome; otherwise return ``None``.

        Raises what the analysis raises (e.g. :class:`~alphaops.core.errors.GateFailedError`
        when the last step would promote an ungated challenger); the interval then starts
        again. A rollout moved by someone else meanwhile is not an error: a new interval
        begins on it.
        """
        with self._lock:
            record = self.registry.active_rollout(self.live.key)
            if record is None or record.phase not in _MEASURED:
                self._interval = None
                return None
            now = self._clock()
            interval = self._interval
            if interval is None or interval.position != _position(record):
                self._begin(record, now)
                return None
            if now - interval.began < record.interval_s:
                return None
            stats = self.live.take_interval_stats()
            try:
                outcome = self._controller.analyse(record.key, stats, self.policy, expect=record)
            except (VersionConflictError, NotFoundError):
                self._interval = None  # moved meanwhile: the next tick measures it afresh
                return None
            except Exception:
                self._begin(record, now)  # e.g. gates refused going live: measure again
                raise
            self._begin(outcome.rollout, now)
            self.outcomes.append(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        return outcome

    @property
    def interval_began(self) -> float | None:
        """Return when (by ``clock``) the interval being measured began; ``None`` when idle."""
        interval = self._interval
        return None if interval is None else interval.began

    def _begin(self, record: RolloutRecord, now: float) -> None:
        self.live.poll()  # the routing follows the rollout before counting starts
        self.live.take_interval_stats()  # what came before belongs to no interval: dropped
        measured = record.active and record.phase in _MEASURED
        self._interval = _Interval(_position(record), now) if measured else None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that ticks every ``period_s`` (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"alphaops-monitor-{self.live.key}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a failed analysis or a database hiccup must not stop it
                self.errors.append(exc)
            self._stop.wait(self.period_s)

    def close(self) -> None:
        """Stop the thread (the rollout stays where it is)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.period_s))
            self._thread = None

    def __enter__(self) -> RolloutMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RolloutMonitor({self.live.key}, every {self.period_s}s)"
