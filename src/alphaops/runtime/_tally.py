"""What the challenger did since the last reading: the live side of a rollout's analysis.

The :class:`~alphaops.runtime.LivePredictor` feeds a :class:`ChallengerTally` from its
challenger path only (canary-served and shadow predictions); the champion path never touches
it. :meth:`ChallengerTally.take` turns the counts into the
:class:`~alphaops.rollout.IntervalStats` that :func:`~alphaops.rollout.judge` reads, and resets
them in the same locked step.

Memory is bounded: the latency samples live in a preallocated ring (the p99 is over the most
recent ``latency_samples`` answers of the interval) and the actions awaiting an outcome in an
insertion-ordered map of at most ``pending_outcomes`` routing keys (the oldest is dropped).

>>> tally = ChallengerTally(latency_samples=4)
>>> tally.answer(2, 0.001, 1, champion_action=1, routing_key="order-1")
>>> tally.answer(2, 0.003, -1, champion_action=1, routing_key="order-2")
>>> tally.error()
>>> tally.outcome("order-1", 0.02, challenger_version=2), tally.outcome("nope", 0.1, 2)
(True, False)
>>> s = tally.take()
>>> s.predictions, s.errors, s.agreement, s.hit_rate
(3, 1, 0.5, 1.0)
>>> tally.take().predictions  # the counts were reset by the first take
0
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np

from alphaops.rollout import IntervalStats

__all__ = ["LATENCY_SAMPLES", "PENDING_OUTCOMES", "ChallengerTally"]

LATENCY_SAMPLES = 4096
"""Challenger latencies kept per interval (a ring: the most recent ones; 32 KiB)."""
PENDING_OUTCOMES = 10_000
"""Routing keys whose challenger action waits for its realised outcome (oldest dropped)."""


class ChallengerTally:
    """Thread-safe counts of the challenger's answers, errors, latency, agreement and hits."""

    def __init__(
        self, *, latency_samples: int = LATENCY_SAMPLES, pending_outcomes: int = PENDING_OUTCOMES
    ) -> None:
        self._lock = threading.Lock()
        self._latencies = np.zeros(max(1, latency_samples), dtype=np.float64)
        self._max_pending = max(1, pending_outcomes)
        # routing key -> (challenger version, action): the latest answer for that key.
        self._pending: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._predictions = self._errors = self._samples = 0
        self._pairs = self._agreed = self._outcomes = self._hits = 0

    def answer(
        self,
        version: int,
        latency_s: float,
        action: int,
        *,
        champion_action: int | None,
        routing_key: str | int | None,
    ) -> None:
        """Count one challenger answer; ``champion_action`` is the champion's action on the same
        input (``None``: unknown, not counted in the agreement)."""
        with self._lock:
            self._predictions += 1
            self._latencies[self._samples % len(self._latencies)] = latency_s
            self._samples += 1
            if champion_action is not None:
                self._pairs += 1
                self._agreed += action == champion_action
            if routing_key is not None:
                key = str(routing_key)
                pending = self._pending
                pending[key] = (version, action)
                pending.move_to_end(key)
                if len(pending) > self._max_pending:
                    pending.popitem(last=False)

    def error(self) -> None:
        """Count one input the challenger was asked to answer and failed on."""
        with self._lock:
            self._predictions += 1
            self._errors += 1

    def outcome(
        self, routing_key: str | int, realised_return: float, challenger_version: int | None
    ) -> bool:
        """Score the challenger's latest action on ``routing_key`` against the realised return.

        A non-flat action is a hit when the return has its sign; a flat action is not scored.
        Return whether an action of ``challenger_version`` was waiting for this key (it is
        consumed: each answer is scored at most once).
        """
        if not math.isfinite(realised_return):
            return False
        with self._lock:
            found = self._pending.pop(str(routing_key), None)
            if found is None or found[0] != challenger_version:
                return False
            action = found[1]
            if action != 0:
                self._outcomes += 1
                self._hits += realised_return > 0 if action > 0 else realised_return < 0
            return True

    def take(self) -> IntervalStats:
        """Return the interval's stats and start a new interval (one atomic step)."""
        return self._read(reset=True)

    def peek(self) -> IntervalStats:
        """Return the stats so far without resetting them."""
        return self._read(reset=False)

    def _read(self, *, reset: bool) -> IntervalStats:
        with self._lock:
            counts = (self._predictions, self._errors, self._pairs, self._agreed)
            outcomes, hits = self._outcomes, self._hits
            latencies = self._latencies[: min(self._samples, len(self._latencies))].copy()
            if reset:
                self._predictions = self._errors = self._samples = 0
                self._pairs = self._agreed = self._outcomes = self._hits = 0
        predictions, errors, pairs, agreed = counts
        return IntervalStats(
            predictions=predictions,
            errors=errors,
            latency_p99_s=float(np.percentile(latencies, 99)) if len(latencies) else 0.0,
            # No pair to compare is no evidence of agreement: 0.0 fails closed.
            agreement=agreed / pairs if pairs else 0.0,
            hit_rate=hits / outcomes if outcomes else None,
        )
