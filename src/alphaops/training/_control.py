"""Progress callbacks, the throttling progress bridge and the cancellation token.

Every model family reports progress through callbacks with one signature,
``(epoch, total_epochs, metrics)`` (an epoch is a torch epoch, a boosting round or a chunk of
trees), and checks a :class:`CancelToken` at least once per batch, round or chunk.
:func:`interrupts_cancel` turns Ctrl-C into a cancel of a token while jobs run.

>>> seen = []
>>> bridge = ProgressBridge(lambda u: seen.append(u.epoch), interval=0.3, clock=iter([0.0, 0.1, 0.2, 0.5]).__next__)
>>> for epoch in range(1, 5):
...     bridge(epoch, 4, {})
>>> seen                     # 1 passes, 2 and 3 come too fast, 4 is 0.5 s after 1
[1, 4]
>>> token = CancelToken()
>>> token.cancel()
>>> token.raise_if_cancelled("boosting round 3")
Traceback (most recent call last):
...
alphaops.core.errors.CancelledError: training cancelled at boosting round 3...
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from alphaops.core.errors import CancelledError

__all__ = [
    "CancelToken",
    "EventLike",
    "ProgressBridge",
    "ProgressCallback",
    "ProgressUpdate",
    "interrupts_cancel",
    "notify",
]

ProgressCallback = Callable[[int, int, Mapping[str, float]], None]
"""``(epoch, total_epochs, metrics)``: called once per epoch, boosting round or tree chunk."""


class EventLike(Protocol):
    """A settable flag: :class:`threading.Event`, or a multiprocessing ``Event`` for pools."""

    def set(self) -> None:
        """Raise the flag."""
        ...

    def is_set(self) -> bool:
        """Return whether the flag is raised."""
        ...


class CancelToken:
    """A cancellation flag that training checks every batch, boosting round or tree chunk.

    Pass a ``multiprocessing`` event to share one token with worker processes.
    """

    __slots__ = ("_cancelled_at", "_event")

    def __init__(self, event: EventLike | None = None) -> None:
        self._event: EventLike = event if event is not None else threading.Event()
        self._cancelled_at: float | None = None

    def cancel(self) -> None:
        """Ask every job holding this token to stop at its next check."""
        if self._cancelled_at is None:
            self._cancelled_at = time.monotonic()
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Return whether :meth:`cancel` was called."""
        return self._event.is_set()

    @property
    def cancelled_at(self) -> float | None:
        """Return the ``time.monotonic()`` of the first :meth:`cancel` in this process."""
        return self._cancelled_at

    def raise_if_cancelled(self, where: str) -> None:
        """Raise :class:`CancelledError` naming ``where`` if the token was cancelled."""
        if self._event.is_set():
            raise CancelledError(
                f"training cancelled at {where}",
                fix="nothing to clean up: a cancelled job publishes nothing; start it again",
                where=where,
            )


@dataclass(frozen=True)
class ProgressUpdate:
    """One throttled progress update; ``final`` marks the last one of a job."""

    epoch: int
    total: int
    metrics: Mapping[str, float]
    at: float
    final: bool = False


@dataclass
class ProgressBridge:
    """Forward progress to a UI at most about once per ``interval`` seconds.

    Call it like a progress callback. An update passes when ``interval`` has elapsed since the
    last one that passed, so slow epochs all pass and fast boosting rounds are thinned to
    about one every ``interval``; the last epoch of a job (``epoch == total``) always passes,
    and :meth:`flush` sends whatever is pending. ``intervals`` records the gaps between
    forwarded updates (for the benchmark).
    """

    sink: Callable[[ProgressUpdate], None]
    interval: float = 0.3
    clock: Callable[[], float] = time.monotonic
    intervals: list[float] = field(default_factory=list)
    _last: float | None = None
    _pending: tuple[int, int, Mapping[str, float]] | None = None

    def __call__(self, epoch: int, total: int, metrics: Mapping[str, float]) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval and epoch < total:
            self._pending = (epoch, total, metrics)
            return
        self._emit(epoch, total, metrics, now, final=epoch >= total)

    def flush(self) -> None:
        """Forward the last held-back update, if any, as final."""
        if self._pending is not None:
            epoch, total, metrics = self._pending
            self._emit(epoch, total, metrics, self.clock(), final=True)

    def _emit(
        self, epoch: int, total: int, metrics: Mapping[str, float], now: float, *, final: bool
    ) -> None:
        if self._last is not None:
            self.intervals.append(now - self._last)
        self._last = now
        self._pending = None
        self.sink(ProgressUpdate(epoch, total, dict(metrics), now, final))


def notify(
    callbacks: Sequence[ProgressCallback], epoch: int, total: int, metrics: Mapping[str, float]
) -> None:
    """Call every callback with ``(epoch, total, metrics)``, unchanged."""
    for callback in callbacks:
        callback(epoch, total, metrics)


@contextlib.contextmanager
def interrupts_cancel(token: CancelToken) -> Iterator[None]:
    """While inside, let Ctrl-C (``SIGINT``) cancel ``token`` instead of raising.

    A ``KeyboardInterrupt`` strikes wherever the main thread happens to be, for instance
    between the steps of a registry publish; a cancel is seen at the next check, so a publish
    under way completes and no new one starts. A second Ctrl-C raises ``KeyboardInterrupt``
    as usual, to force a stop. Outside the main thread, or when ``SIGINT`` is not Python's
    default handler (ignored, or handled by the application), this changes nothing.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    received: list[int] = []

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        token.cancel()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
