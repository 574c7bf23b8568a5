"""A bot judges its own rollout: the predictor counts the challenger, the monitor analyses it.

Real registries (SQLite and PostgreSQL), real tiny ONNX bundles and a fake clock: no sleeps,
no wall-clock assertions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from alphaops.core.errors import GateFailedError, VersionConflictError
from alphaops.registry import Registry
from alphaops.registry.testing import publish_cleared
from alphaops.rollout import AnalysisPolicy, IntervalStats, Verdict, bucket
from alphaops.runtime import LivePredictor
from alphaops.runtime._tally import ChallengerTally
from alphaops.services.monitor import RolloutMonitor
from alphaops.services.rollout import RolloutController

from .conftest import ACTIONS, wait_until
from .test_rollout_controller import pass_gates

KEY = "BTCUSDT/logreg"
INTERVAL_S = 60.0
# Latency is wall time (a garbage collection pause counts): tests never judge it by accident.
POLICY = AnalysisPolicy(min_predictions=20, max_latency_p99_s=5.0)
AGREEING = [np.full(4, i / 40) for i in range(40)]
"""Rows on which versions 1 and 2 (seeds 1 and 2) both say ``down`` (action -1)."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = INTERVAL_S) -> None:
        self.now += seconds


class _BrokenSession:
    def run(self, *args: object) -> list[np.ndarray]:
        raise RuntimeError("simulated onnxruntime failure")


def break_challenger(live: LivePredictor) -> None:
    # A verified model only fails at inference if its session is replaced (kept on reloads).
    slot = live._slot
    assert slot.challenger is not None
    broken = replace(slot.challenger, session=_BrokenSession())
    live._cache[broken.version] = broken
    live._slot = replace(slot, challenger=broken)


def actions_of(registry: Registry, version: int, rows: np.ndarray) -> np.ndarray:
    # Independent of the predictor: the bundle's own ONNX run, argmax over down/up.
    probs = np.asarray(registry.load(f"{KEY}/{version}").predict(rows))
    return np.where(probs.argmax(axis=1) == 1, 1, -1)


@pytest.fixture
def served(registry: Registry, make_bundle: Callable[..., Path]) -> Registry:
    """Champion 1, version 2 published and gated (the challenger to roll out)."""
    publish_cleared(registry, make_bundle(seed=1))
    publish_cleared(registry, make_bundle(seed=2))
    registry.promote(f"{KEY}/1", expect=None, reason="first")
    pass_gates(registry, 2)
    return registry


@pytest.fixture
def ctl(served: Registry) -> RolloutController:
    return RolloutController(served, actor="operator")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bot(
    served: Registry, open_reg: Callable[[str], Registry], clock: FakeClock
) -> Iterator[tuple[LivePredictor, RolloutMonitor]]:
    """The bot process: its own registry connection, a predictor and a monitor (no threads)."""
    bot_registry = open_reg("bot")
    live = LivePredictor(bot_registry, KEY, actions=ACTIONS, start=False)
    monitor = RolloutMonitor(bot_registry, live, policy=POLICY, clock=clock, start=False)
    yield live, monitor
    monitor.close()
    live.close()


def predict_agreeing(live: LivePredictor, n: int = 40, *, prefix: str = "k") -> None:
    for i in range(n):
        live.predict(AGREEING[i % len(AGREEING)], routing_key=f"{prefix}{i}")


def test_passing_intervals_walk_shadow_canary_live_and_the_routing_follows_at_once(
    ctl: RolloutController,
    served: Registry,
    bot: tuple[LivePredictor, RolloutMonitor],
    clock: FakeClock,
) -> None:
    live, monitor = bot
    ctl.start(f"{KEY}/2", steps="shadow,50,100", interval_s=INTERVAL_S)
    assert monitor.tick() is None  # the first interval begins (and the predictor follows)
    assert live.routing is not None
    assert live.routing.shadow
    predict_agreeing(live)
    clock.advance(INTERVAL_S - 1)
    assert monitor.tick() is None  # not due yet: nothing taken
    assert live.peek_interval_stats().predictions == 40
    clock.advance(1)
    outcome = monitor.tick()
    assert outcome is not None
    assert (outcome.verdict, outcome.rollout.phase, outcome.rollout.percentage) == (
        Verdict.PASS,
        "canary",
        50,
    )
    assert live.routing is not None
    assert live.routing.percentage == 50
    assert live.peek_interval_stats() == IntervalStats(0, 0, 0.0, 0.0, None)
    for step in ("canary", "live"):
        predict_agreeing(live, 200)  # half the keys reach the challenger at 50 %
        clock.advance()
        outcome = monitor.tick()
        assert outcome is not None
        assert outcome.verdict == Verdict.PASS
        assert outcome.rollout.phase == step
    assert served.aliases(KEY) == {"champion": 2, "previous": 1}
    assert live.versions() == {"champion": 2, "previous": 1}
    assert live.routing is None
    assert [o.rollout.percentage for o in monitor.outcomes] == [50, 100, 100]
    events = served.rollout_events(outcome.rollout.id)
    assert [e.trigger for e in events] == ["start", "advance", "advance", "advance"]
    assert {e.actor for e in events[1:]} == {"bot"}
    clock.advance()
    assert monitor.tick() is None  # nothing left to analyse


@pytest.mark.parametrize("steps", ["shadow,100", "50"])
def test_a_challenger_failing_at_inference_is_rolled_back_after_max_failures_intervals(
    steps: str,
    ctl: RolloutController,
    served: Registry,
    bot: tuple[LivePredictor, RolloutMonitor],
    clock: FakeClock,
) -> None:
    live, monitor = bot
    started = ctl.start(f"{KEY}/2", steps=steps, interval_s=INTERVAL_S, max_failures=2)
    monitor.tick()
    break_challenger(live)
    phases = []
    for _ in range(2):
        predict_agreeing(live, 200)
        stats = live.peek_interval_stats()
        assert stats.errors == stats.predictions > 0  # every challenger answer failed
        clock.advance()
        outcome = monitor.tick()
        assert outcome is not None
        assert outcome.verdict == Verdict.FAIL
        assert "error rate 1.000" in outcome.detail
        phases.append((outcome.rollout.phase, outcome.rollout.failures))
    first = "shadow" if steps.startswith("shadow") else "canary"
    assert phases == [(first, 1), ("rolled_back", 2)]
    events = served.rollout_events(started.id)
    assert [e.trigger for e in events] == ["start", "fail", "fail"]
    assert events[-1].analysis is not None
    assert events[-1].analysis["stats"]["errors"] == events[-1].analysis["stats"]["predictions"]
    removed = served.history(KEY)[-1]
    assert (removed.action, removed.alias, removed.from_version) == ("alias_rm", "challenger", 2)
    # The bot serves only the champion now, for every key, and counts nothing more.
    assert live.versions() == {"champion": 1}
    assert live.routing is None
    roles = {(p.version, p.role) for p in (live.predict(AGREEING[0], routing_key=k) for k in "abc")}
    assert roles == {(1, "champion")}
    assert live.peek_interval_stats().predictions == 0


def test_too_few_challenger_answers_pause_the_rollout_and_it_is_never_promoted(
    ctl: RolloutController,
    served: Registry,
    bot: tuple[LivePredictor, RolloutMonitor],
    clock: FakeClock,
) -> None:
    live, monitor = bot
    ctl.start(f"{KEY}/2", steps="100", interval_s=INTERVAL_S)
    monitor.tick()
    predict_agreeing(live, 5)
    clock.advance()
    outcome = monitor.tick()
    assert outcome is not None
    assert (outcome.verdict, outcome.rollout.phase) == (Verdict.INCONCLUSIVE, "paused")
    assert "5 predictions < 20 needed" in outcome.detail
    for _ in range(3):  # paused: the monitor waits for a person, however long
        predict_agreeing(live, 40)
        clock.advance(10 * INTERVAL_S)
        assert monitor.tick() is None
    assert served.aliases(KEY)["champion"] == 1
    assert served.active_rollout(KEY) is not None
    # A resume starts a fresh interval: what was counted while paused is dropped.
    ctl.resume(KEY)
    assert monitor.tick() is None
    assert live.peek_interval_stats().predictions == 0


def test_outcomes_recorded_by_routing_key_feed_the_hit_rate(
    ctl: RolloutController,
    served: Registry,
    bot: tuple[LivePredictor, RolloutMonitor],
    clock: FakeClock,
) -> None:
    live, monitor = bot
    ctl.start(f"{KEY}/2", steps="shadow,100", interval_s=INTERVAL_S)
    monitor.tick()
    predict_agreeing(live, 40)  # every answer is SELL (-1)
    assert all(live.record_outcome(f"k{i}", -0.01) for i in range(10))  # 10 hits
    assert all(live.record_outcome(f"k{i}", +0.02) for i in range(10, 25))  # 15 misses
    assert not live.record_outcome("k0", -0.01)  # scored once only
    assert not live.record_outcome("never-predicted", 0.5)
    assert not live.record_outcome("k30", float("nan"))  # not an outcome
    assert live.peek_interval_stats().hit_rate == pytest.approx(10 / 25)
    monitor.policy = replace(POLICY, min_hit_rate=0.5)
    clock.advance()
    outcome = monitor.tick()
    assert outcome is not None
    assert outcome.verdict == Verdict.FAIL
    assert outcome.detail == "hit rate 0.40"
    # Outcomes realised later count in the interval in which they arrive.
    assert live.record_outcome("k30", -0.03)
    assert live.peek_interval_stats().hit_rate == 1.0


def test_canary_counts_exactly_the_keys_routed_to_the_challenger(
    ctl: RolloutController,
    served: Registry,
    bot: tuple[LivePredictor, RolloutMonitor],
    clock: FakeClock,
) -> None:
    live, monitor = bot
    started = ctl.start(f"{KEY}/2", steps="50", interval_s=INTERVAL_S)
    monitor.tick()
    rows = np.random.default_rng(7).normal(size=(300, 4))
    keys = [f"order-{i}" for i in range(len(rows))]
    for key, row in zip(keys, rows, strict=True):
        live.predict(row, routing_key=key)
    for row in rows[:50]:
        live.predict(row)  # no routing key: the champion, never counted
    mine = np.array([bucket(started.id, k) <= 50 for k in keys])
    agree = actions_of(served, 1, rows[mine]) == actions_of(served, 2, rows[mine])
    stats = live.take_interval_stats()
    assert 0 < stats.predictions == int(mine.sum()) < len(keys)
    assert stats.errors == 0
    assert 0 < agree.mean() < 1  # the two versions disagree on some rows
    assert stats.agreement == pytest.approx(agree.mean())
    assert stats.latency_p99_s > 0
    assert stats.hit_rate is None
    # The stats were reset by the take: the next interval starts from nothing.
    assert live.take_interval_stats() == IntervalStats(0, 0, 0.0, 0.0, None)
    # Only challenger-served keys wait for an outcome.
    assert [live.record_outcome(k, 0.01) for k in keys[:20]] == mine[:20].tolist()


def test_a_disagreeing_or_slow_challenger_fails_its_interval(
    ctl: RolloutController,
    bot: tuple[LivePredictor, RolloutMonitor],
    clock: FakeClock,
) -> None:
    live, monitor = bot
    ctl.start(f"{KEY}/2", steps="shadow,100", interval_s=INTERVAL_S, max_failures=3)
    monitor.tick()
    for i in range(30):  # version 1 says BUY, version 2 SELL on this row
        live.predict(np.array([1.0, 0.0, 0.0, 0.0]), routing_key=i)
    clock.advance()
    outcome = monitor.tick()
    assert outcome is not None
    assert outcome.detail == "agreement 0.00"
    monitor.policy = replace(POLICY, max_latency_p99_s=0.0)  # any real inference is too slow
    predict_agreeing(live, 30)
    clock.advance()
    outcome = monitor.tick()
    assert outcome is not None
    assert outcome.detail.startswith("latency p99")
    assert (outcome.rollout.phase, outcome.rollout.failures) == ("shadow", 2)


def test_a_move_made_elsewhere_starts_a_fresh_interval_and_a_stale_analysis_is_refused(
    ctl: RolloutController,
    bot: tuple[LivePredictor, RolloutMonitor],
    clock: FakeClock,
) -> None:
    live, monitor = bot
    measured = ctl.start(f"{KEY}/2", steps="shadow,50,100", interval_s=INTERVAL_S)
    monitor.tick()
    predict_agreeing(live, 40)
    ctl.advance(KEY, reason="by hand")  # shadow -> canary 50 while the bot measured shadow
    clock.advance()
    assert monitor.tick() is None  # the shadow interval is void; the canary one begins
    assert live.routing is not None
    assert live.routing.percentage == 50
    assert live.peek_interval_stats().predictions == 0
    with pytest.raises(VersionConflictError, match="not the measured shadow at step 0"):
        ctl.analyse(KEY, live.peek_interval_stats(), POLICY, expect=measured)
    assert ctl.active(KEY).phase == "canary"


def test_a_restarted_bot_starts_a_fresh_full_interval(
    ctl: RolloutController,
    served: Registry,
    open_reg: Callable[[str], Registry],
    clock: FakeClock,
) -> None:
    ctl.start(f"{KEY}/2", steps="shadow,100", interval_s=INTERVAL_S)
    clock.advance(10 * INTERVAL_S)  # the rollout started long before this bot
    with LivePredictor(open_reg("bot"), KEY, actions=ACTIONS, start=False) as live:
        monitor = RolloutMonitor(live.registry, live, policy=POLICY, clock=clock, start=False)
        assert monitor.tick() is None
        predict_agreeing(live)
        clock.advance(INTERVAL_S / 2)
        assert monitor.tick() is None
        clock.advance(INTERVAL_S / 2)
        outcome = monitor.tick()
        assert outcome is not None
        assert outcome.rollout.phase == "canary"


def test_going_live_with_an_ungated_challenger_raises_and_measures_the_step_again(
    ctl: RolloutController,
    served: Registry,
    make_bundle: Callable[..., Path],
    bot: tuple[LivePredictor, RolloutMonitor],
    clock: FakeClock,
) -> None:
    live, monitor = bot
    served.publish(make_bundle(seed=11))  # version 3, never gated (agrees on AGREEING rows)
    ctl.start(f"{KEY}/3", steps="100", interval_s=INTERVAL_S, force=True, reason="forced canary")
    monitor.tick()
    predict_agreeing(live)
    clock.advance()
    with pytest.raises(GateFailedError, match="never ran"):
        monitor.tick()
    assert ctl.active(KEY).phase == "canary"
    assert monitor.tick() is None  # a new interval began: no analysis on empty stats
    assert served.aliases(KEY)["champion"] == 1


def test_the_background_thread_performs_a_due_tick(
    ctl: RolloutController,
    served: Registry,
    open_reg: Callable[[str], Registry],
    clock: FakeClock,
) -> None:
    ctl.start(f"{KEY}/2", steps="shadow,50", interval_s=INTERVAL_S)
    bot_registry = open_reg("bot")
    seen = []
    with (
        LivePredictor(bot_registry, KEY, actions=ACTIONS, poll_interval_s=0.05) as live,
        RolloutMonitor(
            bot_registry, live, policy=POLICY, clock=clock, period_s=0.005, on_outcome=seen.append
        ) as monitor,
    ):
        wait_until(lambda: monitor.interval_began is not None)  # its first tick began one
        predict_agreeing(live)
        clock.advance()
        wait_until(lambda: len(monitor.outcomes) == 1)
        assert served.active_rollout(KEY).percentage == 50  # type: ignore[union-attr]
        assert seen == list(monitor.outcomes)
        assert not monitor.errors


def test_the_tally_is_exact_under_concurrent_answers_and_its_memory_is_bounded() -> None:
    tally = ChallengerTally(latency_samples=8, pending_outcomes=100)

    def answer(worker: int) -> None:
        for i in range(1000):
            tally.answer(
                2, 0.001, 1, champion_action=1 if i % 2 else -1, routing_key=f"{worker}-{i}"
            )
            if i % 10 == 0:
                tally.error()

    threads = [threading.Thread(target=answer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = tally.peek()
    assert (stats.predictions, stats.errors, stats.agreement) == (4400, 400, 0.5)
    assert len(tally._latencies) == 8
    assert len(tally._pending) == 100
    # The ring keeps the most recent latencies: the p99 is over them only.
    for latency in (1.0, *[0.002] * 8):
        tally.answer(2, latency, 1, champion_action=None, routing_key=None)
    assert tally.take().latency_p99_s == pytest.approx(0.002)
    # Answers of another challenger version are not scored.
    tally.answer(2, 0.001, -1, champion_action=None, routing_key="x")
    assert not tally.outcome("x", -0.1, challenger_version=3)
    assert tally.take().hit_rate is None


def test_champion_served_predictions_count_nothing(
    served: Registry, bot: tuple[LivePredictor, RolloutMonitor]
) -> None:
    live, _ = bot
    predict_agreeing(live)
    assert live.take_interval_stats() == IntervalStats(0, 0, 0.0, 0.0, None)
    assert not live.record_outcome("k1", 0.1)


BOT_GOING_LIVE = """
import sys
import numpy as np
from alphaops.journal import Journal
from alphaops.registry import open_registry
from alphaops.rollout import AnalysisPolicy
from alphaops.runtime import LivePredictor
from alphaops.services.monitor import RolloutMonitor

class Clock:
    now = 1000.0
    def __call__(self):
        return self.now

clock = Clock()
registry = open_registry(sys.argv[1])
journal = Journal(registry)
live = LivePredictor(
    registry, "BTCUSDT/logreg", actions={"down": -1, "up": 1}, start=False, journal=journal
)
policy = AnalysisPolicy(min_predictions=20, max_latency_p99_s=5.0)
monitor = RolloutMonitor(registry, live, policy=policy, clock=clock, start=False)
monitor.tick()
for i in range(200):
    live.predict(np.full(4, (i % 40) / 40), routing_key=f"k{i}")
clock.now += 60.0
outcome = monitor.tick()
print(outcome.rollout.phase, registry.aliases("BTCUSDT/logreg")["champion"])
journal.flush()
print(journal.count_decisions())
heavy = ("alphaops.gates", "alphaops.training", "alphaops.monitoring", "scipy", "river",
         "matplotlib", "sklearn")
print(sorted({m for m in sys.modules if m.startswith(heavy)}))
"""


def test_a_bot_journaling_and_taking_its_rollout_live_imports_no_gates_or_scipy(
    tmp_path: Path, make_bundle: Callable[..., Path]
) -> None:
    import subprocess
    import sys

    from alphaops.registry import open_registry

    home = tmp_path / "home"
    with open_registry(home) as registry:
        publish_cleared(registry, make_bundle(seed=1))
        publish_cleared(registry, make_bundle(seed=2))
        registry.promote(f"{KEY}/1", expect=None, reason="first")
        RolloutController(registry, actor="operator").start(
            f"{KEY}/2", steps="100", interval_s=INTERVAL_S
        )
    done = subprocess.run(
        [sys.executable, "-c", BOT_GOING_LIVE, str(home)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    went_live, journaled, imported = done.stdout.strip().splitlines()
    assert went_live == "live 2"
    assert journaled == "200"
    assert imported == "[]"
