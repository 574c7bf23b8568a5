"""The rollout controller over a real registry (SQLite and PostgreSQL), and bots following it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from alphaops.core.errors import GateFailedError, NotFoundError, VersionConflictError
from alphaops.gates.records import GateRecord, GateRecordStore, ensure_policy
from alphaops.registry import Registry
from alphaops.registry.testing import publish_cleared
from alphaops.rollout import IllegalTransitionError, IntervalStats, Trigger, Verdict, bucket
from alphaops.runtime import LivePredictor
from alphaops.services.rollout import RolloutController

from .conftest import ACTIONS, wait_until

KEY = "BTCUSDT/logreg"
ROW = np.array([0.1, -0.2, 0.3, 0.4])
GOOD = IntervalStats(predictions=100, errors=0, latency_p99_s=0.001, agreement=0.9)
BAD = IntervalStats(predictions=100, errors=50, latency_p99_s=0.001, agreement=0.9)
THIN = IntervalStats(predictions=3, errors=0, latency_p99_s=0.001, agreement=0.9)


def pass_gates(registry: Registry, version: int) -> None:
    v = registry.get(KEY, version)
    now = datetime.now(UTC)
    policy = ensure_policy(registry)  # a pass clears only under the registry's policy
    GateRecordStore(registry).save(
        GateRecord(
            symbol=v.key.symbol,
            model_type=v.key.model_type,
            version=version,
            manifest_sha256=v.manifest_sha256,
            champion=None,
            passed=True,
            gates=(),
            window_start=now,
            window_end=now,
            policy=policy.to_dict(),
            policy_hash=policy.policy_hash,
            run_at=now,
            code_version="test",
        )
    )


@pytest.fixture
def served(registry: Registry, make_bundle: Callable[..., Path]) -> Registry:
    """Champion 1, version 2 published and gated (the challenger to roll out)."""
    publish_cleared(registry, make_bundle())
    publish_cleared(registry, make_bundle())
    registry.promote(f"{KEY}/1", expect=None, reason="first")
    pass_gates(registry, 2)
    return registry


@pytest.fixture
def ctl(served: Registry) -> RolloutController:
    return RolloutController(served, actor="controller")


def test_passing_intervals_walk_shadow_canary_live_and_promote_keeping_previous(
    ctl: RolloutController, served: Registry
) -> None:
    ctl.start(f"{KEY}/2", steps="shadow,10,100", interval_s=60, reason="try v2")
    seen = []
    for _ in range(3):
        outcome = ctl.analyse(KEY, GOOD)
        assert outcome.verdict == Verdict.PASS
        seen.append((outcome.rollout.phase, outcome.rollout.percentage))
    assert seen == [("canary", 10), ("canary", 100), ("live", 100)]
    assert served.aliases(KEY) == {"champion": 2, "previous": 1}
    assert served.active_rollout(KEY) is None
    promote = [r for r in served.history(KEY) if r.action == "promote"][-1]
    assert (promote.from_version, promote.to_version, promote.actor) == (1, 2, "controller")


def test_failures_up_to_the_limit_roll_back_automatically_and_remove_the_challenger(
    ctl: RolloutController, served: Registry
) -> None:
    started = ctl.start(f"{KEY}/2", steps="10,50", max_failures=2)
    first = ctl.analyse(KEY, BAD)
    assert (first.verdict, first.rollout.phase, first.rollout.failures) == (
        Verdict.FAIL,
        "canary",
        1,
    )
    second = ctl.analyse(KEY, BAD)
    assert second.rollout.phase == "rolled_back"
    assert served.aliases(KEY) == {"champion": 1}
    removed = served.history(KEY)[-1]
    assert (removed.action, removed.alias, removed.from_version) == ("alias_rm", "challenger", 2)
    events = served.rollout_events(started.id)
    assert [e.trigger for e in events] == ["start", "fail", "fail"]
    assert events[-1].analysis is not None
    assert "error rate" in events[-1].analysis["detail"]


def test_an_inconclusive_interval_pauses_and_a_paused_rollout_is_never_promoted(
    ctl: RolloutController, served: Registry
) -> None:
    ctl.start(f"{KEY}/2", steps="100")
    assert ctl.analyse(KEY, THIN).rollout.phase == "paused"
    with pytest.raises(IllegalTransitionError, match="cannot advance while paused"):
        ctl.advance(KEY)
    with pytest.raises(IllegalTransitionError, match="resume the rollout first"):
        ctl.analyse(KEY, GOOD)
    assert served.aliases(KEY)["champion"] == 1
    assert ctl.resume(KEY).phase == "canary"


def test_going_live_with_an_ungated_challenger_is_refused_and_the_rollout_stays(
    ctl: RolloutController, served: Registry, make_bundle: Callable[..., Path]
) -> None:
    served.publish(make_bundle())  # version 3, never gated
    with pytest.raises(GateFailedError, match="never ran"):
        ctl.start(f"{KEY}/3", steps="50")  # canary traffic needs clearance
    assert served.active_rollout(KEY) is None
    ctl.start(f"{KEY}/3", steps="50", force=True, reason="try it on live traffic")
    with pytest.raises(GateFailedError, match="never ran"):
        ctl.advance(KEY)  # forcing the canary does not force going live
    assert ctl.active(KEY).phase == "canary"
    assert served.aliases(KEY)["champion"] == 1


def test_abort_rolls_back_with_the_reason_audited_and_a_second_abort_finds_nothing(
    ctl: RolloutController, served: Registry
) -> None:
    ctl.start(f"{KEY}/2", steps="shadow,10")
    done = ctl.abort(KEY, reason="latency spike")
    assert done.phase == "rolled_back"
    assert "latency spike" in served.history(KEY)[-1].reason
    with pytest.raises(NotFoundError, match="no active rollout"):
        ctl.abort(KEY, reason="again")


def test_a_controller_acting_on_a_stale_read_is_refused(
    ctl: RolloutController, served: Registry
) -> None:
    ctl.start(f"{KEY}/2", steps="shadow,10,50")
    stale = ctl.active(KEY)
    ctl.advance(KEY)
    with pytest.raises(VersionConflictError, match="not the expected shadow at step 0"):
        ctl._fire(stale, Trigger.ADVANCE, "late")
    assert ctl.active(KEY).percentage == 10


def test_a_bot_follows_canary_percentage_and_abort_within_one_polling_interval(
    ctl: RolloutController, open_reg: Callable[[str], Registry]
) -> None:
    bot_registry = open_reg("bot")  # the bot is another process with its own connection
    with LivePredictor(bot_registry, KEY, actions=ACTIONS, poll_interval_s=0.05) as bot:
        started = ctl.start(f"{KEY}/2", steps="shadow,50")
        wait_until(lambda: bot.routing is not None and bot.routing.shadow)
        bot.predict(ROW, routing_key="order-1")
        assert bot.shadow_log[-1][1].version == 2  # the challenger saw it, never acted
        ctl.advance(KEY)
        wait_until(lambda: bot.routing is not None and bot.routing.percentage == 50)
        keys = [f"order-{i}" for i in range(200)]
        roles = {k: bot.predict(ROW, routing_key=k).version for k in keys}
        assert roles == {k: 2 if bucket(started.id, k) <= 50 else 1 for k in keys}
        ctl.abort(KEY, reason="stop")
        # One interval is 0.05 s; allow scheduling slack on a busy machine, not a second poll.
        wait_until(
            lambda: bot.routing is None and "challenger" not in bot.versions(), timeout_s=1.0
        )
        assert {bot.predict(ROW, routing_key=k).version for k in keys} == {1}
