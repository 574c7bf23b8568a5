"""The autopilot retrains through gates and rollouts, never straight to live."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alphaops.autopilot import Autopilot, AutopilotLog
from alphaops.core.config import AlphaOpsConfig
from alphaops.data import Candles
from alphaops.journal import Decision, Journal
from alphaops.registry import HOLD_ALARM, Registry
from alphaops.registry.refs import CHALLENGER, CHAMPION, parse_key
from alphaops.runtime import LivePredictor, bars_of
from alphaops.services.data import open_store
from alphaops.services.rollout import RolloutController

from .conftest import BEATS_CHAMPION, FIRST, LOSES_TO_CHAMPION, make_policy, model_policy

KEY = parse_key("BTCUSDT/lightgbm")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _losing_trades(registry: Registry, version: int, at: datetime, n: int = 20) -> None:
    # What a bot's journal holds after the champion's trades lost: n round trips at -2%.
    journal = Journal(registry, actor="bot")
    sha = registry.get(KEY, version).manifest_sha256
    for i in range(n):
        opened = at - timedelta(hours=2 * (n - i))
        journal.write_decisions(
            [
                Decision(
                    id=f"d{version}-{i}-{side}",
                    at=opened + timedelta(hours=side),
                    bar_time=opened,
                    symbol="BTCUSDT",
                    model_type="lightgbm",
                    version=version,
                    manifest_sha256=sha,
                    role="champion",
                    rollout_id=None,
                    routing_key=None,
                    action=1 if side == 0 else 0,
                    probabilities=(0.1, 0.2, 0.7),
                    input_sha256="0" * 32,
                )
                for side in (0, 1)
            ]
        )
        for side, price in ((0, 100.0), (1, 98.0)):
            journal.record_fill(
                client_order_id=f"ao-d{version}-{i}-{side}-0",
                side="buy" if side == 0 else "sell",
                qty=1.0,
                price=price,
                fee=0.0,
                at=opened + timedelta(hours=side, minutes=1),
                decision_id=f"d{version}-{i}-{side}",
            )


def test_the_first_version_is_promoted_after_passing_and_a_scheduled_retrain_only_rolls_out(
    pilot: Autopilot,
) -> None:
    (first,) = pilot.check(FIRST)
    assert [s.step for s in first.steps] == ["fired", "published", "gated", "promoted"]
    assert pilot.registry.aliases(KEY)[CHAMPION] == 1
    # Missed schedule times coalesce: one retrain at BEATS_CHAMPION, not fifteen.
    (second,) = pilot.check(BEATS_CHAMPION)
    assert second.kind == "scheduled"
    assert [s.step for s in second.steps] == ["fired", "published", "gated", "rollout_started"]
    aliases = pilot.registry.aliases(KEY)
    assert aliases[CHAMPION] == 1
    assert aliases[CHALLENGER] == 2
    (rollout,) = pilot.registry.list_rollouts(KEY, active_only=True)
    assert rollout.challenger_version == 2
    assert rollout.phase == "shadow"
    assert second.steps[-1].rollout_id == rollout.id
    # The retrain saw nothing from after its moment, and trained before its gate window.
    manifest = pilot.registry.get(KEY, 2).manifest
    gated = second.steps[2].detail["window"].split("..")
    assert manifest.data.end <= datetime.fromisoformat(gated[0]) < BEATS_CHAMPION
    assert datetime.fromisoformat(gated[1]) <= BEATS_CHAMPION
    # While the bot judges the rollout, nothing new starts, even when due.
    assert pilot.check(BEATS_CHAMPION + timedelta(days=8)) == []


def test_a_candidate_that_fails_its_gates_never_serves(config: AlphaOpsConfig) -> None:
    # One boosting round of depth-one trees at a tiny learning rate: a near-constant model.
    dull = model_policy()
    dull["job"] = dull["job"] | {
        "params": {"n_estimators": 1, "learning_rate": 1e-6, "early_stopping_rounds": 0}
    }
    with Autopilot(config, make_policy(dull), executor="sequential") as pilot:
        (run,) = pilot.check(FIRST)
        assert run.state == "blocked"
        assert "did not pass its gates" in run.steps[-1].reason
        assert pilot.registry.aliases(KEY) == {}
        assert pilot.registry.list_rollouts(KEY) == []
        assert pilot.registry.get(KEY, 1).version == 1  # published, a candidate only


def test_losing_trades_fire_an_emergency_retrain_after_hysteresis_and_it_rolls_out(
    config: AlphaOpsConfig,
) -> None:
    model = model_policy(
        schedule={"every": "200d"},
        triggers={"win_rate_below": 0.4, "min_trades": 20, "consecutive": 2},
    )
    with Autopilot(config, make_policy(model), executor="sequential") as pilot:
        pilot.check(FIRST)
        _losing_trades(pilot.registry, 1, BEATS_CHAMPION - timedelta(hours=1))
        # One breaching check is not enough (hysteresis) ...
        assert pilot.check(BEATS_CHAMPION - timedelta(minutes=10)) == []
        # ... the second in a row fires.
        (run,) = pilot.check(BEATS_CHAMPION)
        assert run.kind == "emergency"
        assert "win rate 0.0% over the last 20 trades" in run.reason
        assert run.state == "rollout_started"
        assert pilot.registry.aliases(KEY)[CHAMPION] == 1
        # Cooldown: still breaching an hour later, but nothing starts.
        RolloutController(pilot.registry).abort(KEY, reason="test: judge nothing")
        assert pilot.due(BEATS_CHAMPION + timedelta(hours=1)) == []
        assert pilot.due(BEATS_CHAMPION + timedelta(hours=2)) == []


def test_an_emergency_with_no_passing_candidate_holds_every_bot_until_acknowledged(
    config: AlphaOpsConfig, load_real: object
) -> None:
    model = model_policy(
        schedule={"every": "200d"},
        triggers={"win_rate_below": 0.4, "min_trades": 20, "consecutive": 1},
        on_no_candidate="hold",
    )
    with Autopilot(config, make_policy(model), executor="sequential") as pilot:
        pilot.check(FIRST)
        _losing_trades(pilot.registry, 1, LOSES_TO_CHAMPION - timedelta(hours=1))
        (run,) = pilot.check(LOSES_TO_CHAMPION)
        assert run.kind == "emergency"
        assert run.state == "safe_action"
        assert run.steps[-1].detail["action"] == "hold"
        (alarm,) = pilot.registry.alarms(KEY, open_only=True)
        assert alarm.kind == HOLD_ALARM
        (status,) = pilot.status(LOSES_TO_CHAMPION)
        assert not status.healthy
        assert status.alarm is not None
        # A bot serving the model acts HOLD on real candles, and journals it so.
        candles = open_store(config).load("BTCUSDT", "1h")
        cut = int(np.searchsorted(candles.timestamps_ms, _ms(LOSES_TO_CHAMPION)))
        journal = Journal(pilot.registry, actor="bot")
        with journal, LivePredictor(pilot.registry, KEY, start=False, journal=journal) as live:
            live.warm_up(_slice(candles, cut - 600, cut))
            bars = bars_of(_slice(candles, cut, cut + 48))
            held = [live.on_bar(bar, routing_key=bar.timestamp_ms) for bar in bars]
            assert {p.action for p in held} == {0}
            assert any(e.kind == "hold" for e in live.events)
            pilot.registry.acknowledge_alarms(KEY, reason="looked at it", actor="ops")
            live.poll()
            served = [live.on_bar(bar) for bar in bars_of(_slice(candles, cut + 48, cut + 200))]
            assert {p.action for p in served} != {0}  # the model's own actions again
        journal.flush()
        rows = [d for d in journal.decisions(KEY, role="champion") if d.bar_time is not None]
        live_rows = [d for d in rows if d.bar_time >= LOSES_TO_CHAMPION]
        assert len(live_rows) == 48 + 152
        assert {d.action for d in live_rows[:48]} == {0}


def _slice(candles: Candles, start: int, stop: int) -> Candles:
    return Candles.from_frame(
        candles.frame.iloc[start:stop], symbol=candles.symbol, timeframe=candles.timeframe
    )


def test_budget_and_cooldown_are_read_back_from_the_log(config: AlphaOpsConfig) -> None:
    eth = model_policy()
    eth["job"] = eth["job"] | {"symbols": ["ETHUSDT"]}
    policy = make_policy(model_policy(), eth, budget={"retrains_per_day": 1})
    with Autopilot(config, policy, executor="sequential") as pilot:
        # Neither model has a version: both are due, the budget allows one a day.
        assert len(pilot.due(FIRST)) == 1
        log = AutopilotLog(pilot.registry)
        log.append("r1", KEY, "scheduled", "fired", at=FIRST, detail={"due_at": FIRST.isoformat()})
        log.append("r1", KEY, "scheduled", "blocked", at=FIRST)
        assert pilot.due(FIRST + timedelta(hours=1)) == []  # budget spent for 24 hours
        later = [str(f.model.key) for f in pilot.due(FIRST + timedelta(days=1, hours=1))]
        # BTC's first attempt served its schedule time (next: a week later); ETH, never
        # tried, is due, and the day's budget is free again.
        assert later == ["ETHUSDT/lightgbm"]
        assert pilot.next_scheduled(policy.models[0], FIRST) == FIRST + timedelta(days=7)


def test_a_run_cut_short_is_closed_as_abandoned_and_the_model_is_due_again(
    pilot: Autopilot,
) -> None:
    log = pilot.log
    log.append("cut", KEY, "scheduled", "fired", at=FIRST, detail={"due_at": FIRST.isoformat()})
    assert pilot.due(FIRST) == []  # a run is under way
    (closed,) = pilot.recover(FIRST + timedelta(minutes=5))
    assert closed.run_id == "cut"
    (run,) = pilot.check(FIRST + timedelta(minutes=5))
    assert run.state == "promoted"
    states = [r.state for r in log.runs(KEY)]
    assert states == ["abandoned", "promoted"]


def test_a_drift_alarm_fires_one_emergency_whose_rollout_answers_it(
    config: AlphaOpsConfig,
) -> None:
    model = model_policy(schedule={"every": "200d"}, triggers={"consecutive": 1})
    with Autopilot(config, make_policy(model), executor="sequential") as pilot:
        pilot.check(FIRST)
        alarm = pilot.registry.raise_alarm(
            KEY, kind="feature_drift", detail={"summary": "alarm on atr_14"}, version=1
        )
        (run,) = pilot.check(BEATS_CHAMPION)
        assert run.kind == "emergency"
        assert "alarm on atr_14" in run.reason
        assert run.steps[0].detail["alarm_ids"] == [alarm.id]
        assert run.state == "rollout_started"
        # The passing retrain acknowledged the alarm it answered (audited), so the rollout
        # can go live; the same alarm never fires again.
        assert pilot.registry.alarms(KEY, open_only=True) == []
        (ack,) = [a for a in pilot.registry.alarms(KEY) if a.id == alarm.id]
        assert ack.acknowledged_by == "autopilot"
        RolloutController(pilot.registry).abort(KEY, reason="test: make room")
        assert pilot.due(BEATS_CHAMPION + timedelta(days=3)) == []


def test_an_emergency_supersedes_a_rollout_that_an_alarm_paused(config: AlphaOpsConfig) -> None:
    model = model_policy(schedule={"every": "7d"}, triggers={"consecutive": 1})
    with Autopilot(config, make_policy(model), executor="sequential") as pilot:
        pilot.check(FIRST)
        (scheduled,) = pilot.check(BEATS_CHAMPION)
        assert scheduled.state == "rollout_started"
        # A scheduled retrain waits for the rollout; an alarm pauses it ...
        assert pilot.due(BEATS_CHAMPION + timedelta(days=8)) == []
        pilot.registry.raise_alarm(KEY, kind="feature_drift", detail={"summary": "drift"})
        (paused,) = pilot.registry.list_rollouts(KEY, active_only=True)
        assert paused.phase == "paused"
        # ... and the emergency it fires aborts the paused rollout (audited) and retrains.
        (run,) = pilot.check(BEATS_CHAMPION + timedelta(days=3))
        assert run.kind == "emergency"
        aborted = next(s for s in run.steps if s.step == "rollout_aborted")
        assert aborted.rollout_id == paused.id
        assert paused.id not in [r.id for r in pilot.registry.list_rollouts(KEY, active_only=True)]
        history = pilot.registry.history(KEY)
        assert any("supersedes" in h.reason for h in history)


def test_the_fallback_safe_action_retrains_the_simpler_model_type_through_its_gates(
    config: AlphaOpsConfig,
) -> None:
    model = model_policy(
        schedule={"every": "200d"},
        triggers={"win_rate_below": 0.4, "min_trades": 20, "consecutive": 1},
        on_no_candidate="fallback",
        fallback_model="random_forest",
    )
    model["job"] = model["job"] | {"params": {"n_estimators": 60, "early_stopping_rounds": 0}}
    with Autopilot(config, make_policy(model), executor="sequential") as pilot:
        pilot.check(FIRST)
        _losing_trades(pilot.registry, 1, LOSES_TO_CHAMPION - timedelta(hours=1))
        (run,) = pilot.check(LOSES_TO_CHAMPION)
        assert run.kind == "emergency"
        assert run.state == "safe_action"
        fallback = parse_key("BTCUSDT/random_forest")
        published = [s for s in run.steps if s.step == "published"]
        assert [s.detail["ref"].rsplit("/", 1)[0] for s in published] == [
            "BTCUSDT/lightgbm",
            "BTCUSDT/random_forest",
        ]
        gated = [s for s in run.steps if s.step == "gated"]
        assert len(gated) == 2
        if gated[1].detail["passed"]:
            assert run.steps[-1].detail["action"] == "fallback"
            assert pilot.registry.aliases(fallback)[CHAMPION] == 1
        else:  # the fallback failed too: keep the champion, loudly
            assert run.steps[-1].detail["action"] == "keep"
            assert CHAMPION not in pilot.registry.aliases(fallback)
            assert pilot.registry.alarms(KEY, open_only=True)
        assert pilot.registry.aliases(KEY)[CHAMPION] == 1


def test_refresh_download_fetches_the_missing_candles_up_to_now_before_training(
    tmp_path: Path, load_real: Callable[[str, str], Candles]
) -> None:
    from alphaops.core.config import load_config
    from alphaops.testing import FakeExchange

    btc = load_real("BTCUSDT", "1h")
    config = load_config(environ={"ALPHAOPS_HOME": str(tmp_path / "home")})
    cut = int(np.searchsorted(btc.timestamps_ms, _ms(datetime(2024, 12, 1, tzinfo=UTC))))
    open_store(config).write(_slice(btc, 0, cut))  # the store stops a month short
    model = model_policy(refresh="download", exchange="fakex")
    exchange = FakeExchange(btc)
    with Autopilot(config, make_policy(model), executor="sequential", exchange=exchange) as pilot:
        (run,) = pilot.check(FIRST)
    refreshed = next(s for s in run.steps if s.step == "refreshed")
    assert refreshed.detail["added"] == (FIRST - datetime(2024, 12, 1, tzinfo=UTC)) // timedelta(
        hours=1
    )
    stored = open_store(config).load("BTCUSDT", "1h")
    assert int(stored.timestamps_ms[-1]) == _ms(FIRST) - 3_600_000  # nothing from after now
    assert run.state in ("promoted", "blocked")


def test_prometheus_says_so_loudly_when_the_autopilot_needs_a_person(
    pilot: Autopilot,
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from alphaops.serve.metrics import RegistryCollector

    pilot.check(FIRST)
    collectors = CollectorRegistry()
    collectors.register(RegistryCollector(pilot.registry, pilot.registry.list_models))

    def sample(name: str) -> str:
        text = generate_latest(collectors).decode()
        return next(line for line in text.splitlines() if line.startswith(name + "{"))

    assert sample("alphaops_autopilot_needs_attention").endswith(" 0.0")
    assert 'kind="scheduled"' in sample("alphaops_autopilot_runs_total")
    log = pilot.log
    log.append("e1", KEY, "emergency", "fired", at=FIRST, reason="win rate")
    log.append("e1", KEY, "emergency", "safe_action", at=FIRST, detail={"action": "hold"})
    pilot.registry.raise_alarm(KEY, kind=HOLD_ALARM, detail={"summary": "no candidate"})
    assert sample("alphaops_autopilot_needs_attention").endswith(" 1.0")
    assert sample("alphaops_autopilot_holding").endswith(" 1.0")


def test_a_run_another_live_autopilot_is_running_is_left_alone(pilot: Autopilot) -> None:
    import os
    import socket
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here = {"host": socket.gethostname(), "pid": other.pid, "due_at": FIRST.isoformat()}
        pilot.log.append("theirs", KEY, "scheduled", "fired", at=FIRST, detail=here)
        away = {"host": "another-host", "pid": os.getpid()}
        eth = parse_key("ETHUSDT/lightgbm")
        pilot.log.append("remote", eth, "scheduled", "fired", at=FIRST, detail=away)
        assert pilot.recover(FIRST) == []  # both owners are alive (the remote one recently)
        assert pilot.due(FIRST) == []  # and the model waits for its run
    finally:
        other.kill()
        other.wait()
    (closed,) = pilot.recover(FIRST)  # its process is gone now
    assert closed.run_id == "theirs"


def test_a_bug_inside_a_retrain_ends_the_run_visibly_and_reaches_the_caller(
    config: AlphaOpsConfig,
) -> None:
    def broken(job: object) -> None:
        raise KeyError("a bug")

    with Autopilot(config, make_policy(), executor="sequential", fault=broken) as pilot:
        with pytest.raises(KeyError):
            pilot.check(FIRST)
        (run,) = pilot.log.runs(KEY)
        assert run.state == "failed"
        assert "internal error" in run.outcome
