"""Outcome drift: has the bot's win rate (or return) changed? River's detectors decide.

:class:`OutcomeDrift` feeds a stream of trade outcomes to ``river.drift.ADWIN`` (default: a
change of the mean of a 0/1 win stream or of returns, in either direction) or to
``river.drift.binary.DDM`` (a rise of the loss rate). Detection latches until :meth:`reset`.
ADWIN's bound assumes values in [0, 1]: feed win flags, or returns scaled to about that
range (in units of the stop distance, say) — raw returns of 1% are too small for it.
river is imported on first construction (it takes about a second), from the ``monitor`` extra.

>>> import random
>>> rng = random.Random(3)
>>> monitor = OutcomeDrift()
>>> for _ in range(1500):
...     monitor.update(rng.random() < 0.6)
>>> monitor.drift_detected
False
>>> for _ in range(1500):
...     monitor.update(rng.random() < 0.3)
>>> monitor.drift_detected, monitor.detected_at is not None and monitor.detected_at > 1500
(True, True)
"""

from __future__ import annotations

from typing import Literal, Protocol

from alphaops.core.errors import UsageError

__all__ = ["OutcomeDrift"]


class _Detector(Protocol):
    """What alphaops uses of a river drift detector (river's own signatures are untyped)."""

    @property
    def drift_detected(self) -> bool: ...

    def update(self, x: float, /) -> None: ...


class OutcomeDrift:
    """Detect a change in a stream of trade outcomes with river's ADWIN or DDM.

    ``update(won)`` takes a win flag (``True``/``False``) or a return (a float; a win when
    positive). ADWIN (``delta`` its significance) watches the values themselves, so it flags a
    change of the win rate or mean return either way; DDM (``drift_threshold`` standard
    deviations, river's default 3.0) watches losses and flags only a rising loss rate, judged
    after ``warm_start`` outcomes. River's default warm-up of 30 lets a lucky early streak set
    a minimum loss rate later drops never exceed (1 in 30 seeded 0.6 → 0.3 streams went
    undetected); 100 detected all of them.
    ``drift_detected`` stays True from the first detection until :meth:`reset`.
    """

    def __init__(
        self,
        detector: Literal["adwin", "ddm"] = "adwin",
        *,
        delta: float = 0.002,
        drift_threshold: float = 3.0,
        warm_start: int = 100,
    ) -> None:
        if detector not in ("adwin", "ddm"):
            raise UsageError(
                f"unknown outcome drift detector {detector!r}", fix="use 'adwin' or 'ddm'"
            )
        self.detector = detector
        self.delta = delta
        self.drift_threshold = drift_threshold
        self.warm_start = warm_start
        self._detector = self._new_detector()
        self.n = 0
        """The number of outcomes seen since construction or :meth:`reset`."""
        self.wins = 0
        self.detected_at: int | None = None
        """The outcome count at the first detection since the last reset, if any."""

    def _new_detector(self) -> _Detector:
        try:
            from river.drift import ADWIN
            from river.drift.binary import DDM
        except ImportError as exc:  # pragma: no cover - the extra is part of dev
            raise UsageError(
                "outcome drift needs river, which is not installed",
                fix="pip install 'alphaops[monitor]'",
            ) from exc
        if self.detector == "adwin":
            return ADWIN(delta=self.delta)  # type: ignore[no-untyped-call]
        return DDM(warm_start=self.warm_start, drift_threshold=self.drift_threshold)

    def update(self, won: bool | float) -> None:
        """Add one outcome: a win flag, or a return (positive counts as a win)."""
        value = float(won)
        self.n += 1
        self.wins += value > 0
        if self.detector == "adwin":
            self._detector.update(value)
        else:
            self._detector.update(value <= 0)  # DDM watches errors: a loss is one
        if self._detector.drift_detected and self.detected_at is None:
            self.detected_at = self.n

    @property
    def drift_detected(self) -> bool:
        """Return whether a change was detected since construction or the last reset."""
        return self.detected_at is not None

    @property
    def win_rate(self) -> float:
        """Return the share of wins since construction or the last reset (NaN before any)."""
        return self.wins / self.n if self.n else float("nan")

    def reset(self) -> None:
        """Start over: a fresh detector, no outcomes, no detection."""
        self._detector = self._new_detector()
        self.n = 0
        self.wins = 0
        self.detected_at = None
