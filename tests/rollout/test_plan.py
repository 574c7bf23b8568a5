"""The rollout lifecycle: an explicit transition table, analysis verdicts, never an illegal state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaops.core.errors import UsageError
from alphaops.rollout import (
    TRANSITIONS,
    AnalysisPolicy,
    IllegalTransitionError,
    IntervalStats,
    Phase,
    RolloutState,
    Trigger,
    Verdict,
    judge,
    parse_steps,
)

STEPS = parse_steps("shadow,10,50,100")


def fresh(max_failures: int = 2) -> RolloutState:
    return RolloutState.start("r1", steps=STEPS, max_failures=max_failures)


def test_advancing_walks_shadow_then_each_canary_percentage_then_live() -> None:
    state, seen = fresh(), []
    while not state.terminal:
        state = state.fire(Trigger.ADVANCE)
        seen.append((state.phase.value, state.percentage, state.shadow))
    assert seen == [
        ("shadow", 0, True),
        ("canary", 10, False),
        ("canary", 50, False),
        ("canary", 100, False),
        ("live", 100, False),
    ]


def test_pause_keeps_the_traffic_split_and_resume_returns_to_the_same_step() -> None:
    canary = fresh().fire(Trigger.ADVANCE).fire(Trigger.ADVANCE)
    paused = canary.fire(Trigger.PAUSE, reason="operator")
    assert (paused.phase, paused.percentage) == (Phase.PAUSED, 10)
    resumed = paused.fire(Trigger.RESUME)
    assert (resumed.phase, resumed.step, resumed.percentage) == (Phase.CANARY, canary.step, 10)


@pytest.mark.parametrize("trigger", list(Trigger))
def test_every_trigger_is_illegal_once_rolled_back_or_live(trigger: Trigger) -> None:
    rolled_back = fresh().fire(Trigger.ABORT)
    live = fresh()
    while not live.terminal:
        live = live.fire(Trigger.ADVANCE)
    for ended in (rolled_back, live):
        with pytest.raises(IllegalTransitionError, match=f"cannot {trigger.value} while"):
            ended.fire(trigger)


def test_resume_without_a_pause_is_refused_and_names_the_legal_moves() -> None:
    with pytest.raises(IllegalTransitionError, match=r"legal now: \['abort', 'advance'"):
        fresh().fire(Trigger.RESUME)


def test_failures_up_to_the_limit_roll_back_automatically() -> None:
    state = fresh(max_failures=2).fire(Trigger.ADVANCE)
    state = state.after_analysis(Verdict.FAIL, detail="error rate")
    assert (state.phase, state.failures) == (Phase.SHADOW, 1)
    state = state.after_analysis(Verdict.FAIL, detail="error rate")
    assert state.phase == Phase.ROLLED_BACK
    assert "error rate" in state.reason


def test_inconclusive_analysis_pauses_and_never_promotes() -> None:
    state = fresh()
    for _ in range(4):  # up to canary 100, one step before live
        state = state.fire(Trigger.ADVANCE)
    paused = state.after_analysis(Verdict.INCONCLUSIVE)
    assert paused.phase == Phase.PAUSED
    with pytest.raises(IllegalTransitionError):
        paused.after_analysis(Verdict.PASS)


@given(st.lists(st.sampled_from(list(Trigger)), max_size=30), st.integers(1, 3))
def test_random_trigger_sequences_never_reach_an_illegal_state(
    triggers: list[Trigger], max_failures: int
) -> None:
    state = fresh(max_failures)
    for trigger in triggers:
        before = state
        try:
            state = state.fire(trigger)
        except IllegalTransitionError:
            assert (before.phase, trigger) not in TRANSITIONS
            continue
        assert state.phase in TRANSITIONS[(before.phase, trigger)]
        assert not before.terminal
        if state.phase == Phase.LIVE:
            assert before.phase == Phase.CANARY
            assert before.percentage == 100
        assert 0 <= state.percentage <= 100


@given(st.lists(st.sampled_from(list(Verdict)), max_size=20))
def test_analysis_never_promotes_after_an_inconclusive_interval(verdicts: list[Verdict]) -> None:
    state = fresh(3)
    for verdict in verdicts:
        try:
            nxt = state.after_analysis(verdict)
        except IllegalTransitionError:
            assert state.phase in (Phase.PAUSED, Phase.LIVE, Phase.ROLLED_BACK)
            continue
        if verdict == Verdict.INCONCLUSIVE:
            assert nxt.phase == Phase.PAUSED
        if nxt.phase == Phase.LIVE:
            assert verdict == Verdict.PASS
        state = nxt


@pytest.mark.parametrize("text", ["10,shadow", "50,10", "shadow,shadow,10", "10,x", "", "10,150"])
def test_malformed_steps_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match=r"rollout step|from 0 to 100"):
        parse_steps(text)


@pytest.mark.parametrize(
    ("stats", "verdict", "why"),
    [
        (IntervalStats(100, 0, 0.001, 0.9), Verdict.PASS, "all limits met"),
        (IntervalStats(10, 0, 0.001, 0.9), Verdict.INCONCLUSIVE, "10 predictions < 30"),
        (IntervalStats(100, 5, 0.001, 0.9), Verdict.FAIL, "error rate 0.050"),
        (IntervalStats(100, 0, 0.02, 0.9), Verdict.FAIL, "latency p99 20.00 ms"),
        (IntervalStats(100, 0, 0.001, 0.2), Verdict.FAIL, "agreement 0.20"),
    ],
)
def test_interval_analysis_names_the_failed_limit(
    stats: IntervalStats, verdict: Verdict, why: str
) -> None:
    got, reason = judge(stats, AnalysisPolicy())
    assert got == verdict
    assert reason.startswith(why)


def test_hit_rate_is_judged_once_outcomes_are_known() -> None:
    policy = AnalysisPolicy(min_hit_rate=0.5)
    assert judge(IntervalStats(100, 0, 0.001, 0.9), policy)[0] == Verdict.INCONCLUSIVE
    assert judge(IntervalStats(100, 0, 0.001, 0.9, hit_rate=0.4), policy)[0] == Verdict.FAIL
    assert judge(IntervalStats(100, 0, 0.001, 0.9, hit_rate=0.6), policy)[0] == Verdict.PASS
