"""The rollout lifecycle as an explicit transition table: an illegal move raises.

PENDING → SHADOW → CANARY(p) … → LIVE, or PAUSED / ROLLED_BACK. A :class:`RolloutState` is
immutable; :meth:`RolloutState.fire` returns the next state or raises
:class:`IllegalTransitionError`. An interval's analysis (:func:`judge`) passes, fails or is
inconclusive: passing advances, failures up to ``max_failures`` roll back, inconclusive pauses
and never promotes.

>>> s = RolloutState.start("r1", steps=parse_steps("shadow,10,100"), max_failures=2)
>>> s = s.fire(Trigger.ADVANCE); s.phase, s.percentage
(<Phase.SHADOW: 'shadow'>, 0)
>>> s = s.fire(Trigger.ADVANCE); s.phase, s.percentage
(<Phase.CANARY: 'canary'>, 10)
>>> s.fire(Trigger.RESUME)
Traceback (most recent call last):
...
alphaops.core.errors.IllegalTransitionError: rollout r1: cannot resume while canary. Fix: ...
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from alphaops.core.errors import IllegalTransitionError, UsageError
from alphaops.rollout.routing import check_percentage

__all__ = [
    "TRANSITIONS",
    "AnalysisPolicy",
    "IllegalTransitionError",
    "IntervalStats",
    "Phase",
    "RolloutState",
    "Step",
    "Trigger",
    "Verdict",
    "judge",
    "parse_interval",
    "parse_steps",
]


class Phase(enum.StrEnum):
    """Where a rollout is."""

    PENDING = "pending"
    SHADOW = "shadow"
    CANARY = "canary"
    LIVE = "live"
    PAUSED = "paused"
    ROLLED_BACK = "rolled_back"


class Trigger(enum.StrEnum):
    """What moves a rollout."""

    ADVANCE = "advance"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    FAIL = "fail"


TERMINAL = frozenset({Phase.LIVE, Phase.ROLLED_BACK})
ACTIVE = (Phase.PENDING, Phase.SHADOW, Phase.CANARY)

TRANSITIONS: dict[tuple[Phase, Trigger], frozenset[Phase]] = {
    **{(p, Trigger.ADVANCE): frozenset({Phase.SHADOW, Phase.CANARY, Phase.LIVE}) for p in ACTIVE},
    **{(p, Trigger.PAUSE): frozenset({Phase.PAUSED}) for p in ACTIVE},
    (Phase.PAUSED, Trigger.RESUME): frozenset(ACTIVE),
    **{(p, Trigger.ABORT): frozenset({Phase.ROLLED_BACK}) for p in (*ACTIVE, Phase.PAUSED)},
    **{(p, Trigger.FAIL): frozenset({Phase.ROLLED_BACK}) for p in (*ACTIVE, Phase.PAUSED)},
}
"""``(phase, trigger) -> phases it may lead to``; anything missing is illegal."""


Step = int | None
"""One rollout step: ``None`` for shadow, else the canary percentage 1..100."""


def parse_steps(text: str) -> tuple[Step, ...]:
    """Parse ``shadow,10,50,100`` into steps; percentages must rise strictly.

    >>> parse_steps("shadow,10,50,100")
    (None, 10, 50, 100)
    """
    steps: list[Step] = []
    for raw in (part.strip() for part in text.split(",")):
        if raw == "shadow":
            steps.append(None)
            continue
        try:
            steps.append(check_percentage(int(raw)))
        except ValueError:
            raise UsageError(
                f"rollout step {raw!r} is neither 'shadow' nor a percentage",
                fix="pass steps like shadow,10,50,100",
            ) from None
    canary = [s for s in steps if s is not None]
    if (
        not steps
        or steps.count(None) > 1
        or canary != sorted(set(canary))
        or None in steps[len(steps) - len(canary) :]
    ):
        raise UsageError(
            f"rollout steps {text!r} must be an optional 'shadow' then rising percentages",
            fix="pass steps like shadow,10,50,100",
        )
    return tuple(steps)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_interval(text: str) -> float:
    """Parse an analysis interval such as ``90s``, ``15m``, ``1h`` or ``1d`` into seconds.

    >>> parse_interval("1h"), parse_interval("90s"), parse_interval("1.5m")
    (3600.0, 90.0, 90.0)
    """
    raw = text.strip().lower()
    try:
        seconds = float(raw[:-1]) * _UNITS[raw[-1:]]
    except (KeyError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(
            f"interval {text!r} is not a positive duration", fix="pass e.g. 90s, 15m, 1h or 1d"
        )
    return seconds


@dataclass(frozen=True)
class RolloutState:
    """One rollout's position: phase, current step, failures so far."""

    rollout_id: str
    steps: tuple[Step, ...]
    max_failures: int
    phase: Phase = Phase.PENDING
    step: int = -1
    failures: int = 0
    paused_from: Phase | None = None
    reason: str = ""

    @classmethod
    def start(cls, rollout_id: str, *, steps: tuple[Step, ...], max_failures: int) -> RolloutState:
        """Return a new, pending rollout."""
        if max_failures < 1:
            raise UsageError(
                f"max_failures={max_failures} must be at least 1", fix="pass 1 or more"
            )
        return cls(rollout_id, steps, max_failures)

    @property
    def percentage(self) -> int:
        """Return the share of routing keys served by the challenger now (0 in shadow)."""
        if self.phase == Phase.LIVE:
            return 100
        if self.phase not in (Phase.CANARY, Phase.PAUSED) or self.step < 0:
            return 0
        return self.steps[self.step] or 0

    @property
    def shadow(self) -> bool:
        """Return whether the challenger runs in shadow (sees every input, never acts)."""
        return self.phase == Phase.SHADOW

    @property
    def terminal(self) -> bool:
        """Return whether the rollout ended (live or rolled back)."""
        return self.phase in TERMINAL

    def fire(self, trigger: Trigger, *, reason: str = "") -> RolloutState:
        """Return the state after ``trigger``; raise :class:`IllegalTransitionError` if illegal."""
        allowed = TRANSITIONS.get((self.phase, trigger))
        if allowed is None:
            legal = sorted(t.value for (p, t) in TRANSITIONS if p == self.phase)
            raise IllegalTransitionError(
                f"rollout {self.rollout_id}: cannot {trigger.value} while {self.phase.value}",
                fix=f"legal now: {legal or 'nothing (the rollout ended)'}",
            )
        nxt = self._target(trigger, reason)
        assert nxt.phase in allowed, (self.phase, trigger, nxt.phase)
        return nxt

    def _target(self, trigger: Trigger, reason: str) -> RolloutState:
        if trigger == Trigger.ADVANCE:
            step = self.step + 1
            if step >= len(self.steps):
                return replace(self, phase=Phase.LIVE, step=step, reason=reason)
            phase = Phase.SHADOW if self.steps[step] is None else Phase.CANARY
            return replace(self, phase=phase, step=step, reason=reason)
        if trigger == Trigger.PAUSE:
            return replace(self, phase=Phase.PAUSED, paused_from=self.phase, reason=reason)
        if trigger == Trigger.RESUME:
            assert self.paused_from is not None
            return replace(self, phase=self.paused_from, paused_from=None, reason=reason)
        return replace(self, phase=Phase.ROLLED_BACK, reason=reason)

    def after_analysis(self, verdict: Verdict, *, detail: str = "") -> RolloutState:
        """Apply one interval's verdict: pass advances, inconclusive pauses, a failure counts
        and the ``max_failures``-th rolls back. Only a running rollout is analysed."""
        if self.phase not in ACTIVE:
            raise IllegalTransitionError(
                f"rollout {self.rollout_id}: cannot apply an analysis while {self.phase.value}",
                fix="resume the rollout first" if self.phase == Phase.PAUSED else "start a new one",
            )
        if verdict == Verdict.PASS:
            return self.fire(Trigger.ADVANCE, reason=f"analysis passed {detail}".strip())
        if verdict == Verdict.INCONCLUSIVE:
            return self.fire(Trigger.PAUSE, reason=f"analysis inconclusive {detail}".strip())
        failed = replace(self, failures=self.failures + 1)
        if failed.failures >= self.max_failures:
            return failed.fire(Trigger.FAIL, reason=f"analysis failed {detail}".strip())
        return failed


class Verdict(enum.StrEnum):
    """The outcome of one interval's analysis."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class IntervalStats:
    """What the challenger did during one interval (agreement is with the champion)."""

    predictions: int
    errors: int
    latency_p99_s: float
    agreement: float
    hit_rate: float | None = None


@dataclass(frozen=True)
class AnalysisPolicy:
    """Limits the challenger must meet per interval."""

    min_predictions: int = 30
    max_error_rate: float = 0.01
    max_latency_p99_s: float = 0.010
    min_agreement: float = 0.5
    min_hit_rate: float | None = None


def judge(stats: IntervalStats, policy: AnalysisPolicy) -> tuple[Verdict, str]:
    """Return the verdict on one interval and why.

    >>> judge(IntervalStats(100, 0, 0.001, 0.9), AnalysisPolicy())
    (<Verdict.PASS: 'pass'>, 'all limits met')
    >>> judge(IntervalStats(5, 0, 0.001, 0.9), AnalysisPolicy())[0]
    <Verdict.INCONCLUSIVE: 'inconclusive'>
    """
    if stats.predictions < policy.min_predictions:
        return Verdict.INCONCLUSIVE, (
            f"{stats.predictions} predictions < {policy.min_predictions} needed"
        )
    problems = []
    if stats.errors / stats.predictions > policy.max_error_rate:
        problems.append(f"error rate {stats.errors / stats.predictions:.3f}")
    if stats.latency_p99_s > policy.max_latency_p99_s:
        problems.append(f"latency p99 {stats.latency_p99_s * 1e3:.2f} ms")
    if stats.agreement < policy.min_agreement:
        problems.append(f"agreement {stats.agreement:.2f}")
    if policy.min_hit_rate is not None:
        if stats.hit_rate is None:
            return Verdict.INCONCLUSIVE, "hit rate required but no outcomes known yet"
        if stats.hit_rate < policy.min_hit_rate:
            problems.append(f"hit rate {stats.hit_rate:.2f}")
    if problems:
        return Verdict.FAIL, "; ".join(problems)
    return Verdict.PASS, "all limits met"
