"""Rollout: shadow → canary → live, with deterministic routing and automatic rollback.

:mod:`~alphaops.rollout.routing` maps routing keys to buckets (the Unleash murmur3 scheme);
:mod:`~alphaops.rollout.plan` is the lifecycle as a transition table plus the per-interval
analysis.
"""

from alphaops.rollout.plan import (
    TRANSITIONS,
    AnalysisPolicy,
    IllegalTransitionError,
    IntervalStats,
    Phase,
    RolloutState,
    Step,
    Trigger,
    Verdict,
    judge,
    parse_interval,
    parse_steps,
)
from alphaops.rollout.routing import bucket, check_percentage, routes_to_challenger

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
    "bucket",
    "check_percentage",
    "judge",
    "parse_interval",
    "parse_steps",
    "routes_to_challenger",
]
