"""A drift alarm pauses the model's rollout and blocks its promotion until acknowledged.

Enforced by the registry itself (library, CLI, rollout controller alike), audited, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from alphaops.core.errors import DriftAlarmError, NotFoundError
from alphaops.registry import Registry
from alphaops.registry.testing import publish_cleared
from alphaops.services.rollout import RolloutController

KEY = "BTCUSDT/logreg"
DRIFT = {"summary": "PSI 0.31 on ret_1", "features": {"ret_1": 0.31}}


@pytest.fixture
def served(registry: Registry, make_bundle: Callable[..., Path]) -> Registry:
    for _ in range(3):
        publish_cleared(registry, make_bundle())
    registry.promote(f"{KEY}/1", expect=None, reason="first")
    return registry


def test_an_alarm_pauses_the_canary_and_blocks_promotion_until_acknowledged(
    served: Registry,
) -> None:
    controller = RolloutController(served, actor="ops")
    controller.start(f"{KEY}/2", steps="shadow,10,100", reason="try v2")
    controller.advance(KEY, reason="shadow looked fine")
    generation = served.generation()
    alarm = served.raise_alarm(KEY, kind="feature_drift", detail=DRIFT, version=1)
    assert served.generation() > generation  # running bots re-read the routing
    rollout = controller.active(KEY)
    assert (rollout.phase, rollout.paused_from, alarm.rollout_id) == (
        "paused",
        "canary",
        rollout.id,
    )
    assert alarm.open
    with pytest.raises(DriftAlarmError, match=r"PSI 0\.31 on ret_1") as blocked:
        served.promote(f"{KEY}/3", expect=1, reason="try to skip ahead")
    assert blocked.value.exit_code == 2
    assert "alphaops alarm ack" in str(blocked.value)
    with pytest.raises(DriftAlarmError, match="resuming rollout"):
        controller.resume(KEY, reason="carry on")
    assert served.aliases(KEY)["champion"] == 1

    [acked] = served.acknowledge_alarms(KEY, reason="regime change expected; v1 still fine")
    assert (acked.id, acked.open, acked.acknowledged_by) == (alarm.id, False, served.actor)
    assert served.alarms(KEY, open_only=True) == []
    assert controller.resume(KEY, reason="alarm reviewed").phase == "canary"
    served.promote(f"{KEY}/3", expect=1, reason="reviewed")
    actions = [(r.action, r.reason) for r in served.history(KEY)]
    assert ("alarm", f"#{alarm.id} feature_drift: PSI 0.31 on ret_1") in actions
    assert any(a == "alarm_ack" and "regime change" in r for a, r in actions)
    with pytest.raises(NotFoundError, match="no open drift alarm"):
        served.acknowledge_alarms(KEY, reason="again")


def test_forcing_a_promotion_past_an_alarm_is_recorded_as_forced(served: Registry) -> None:
    served.raise_alarm(KEY, kind="outcome_drift", detail={"summary": "win rate 0.6 -> 0.3"})
    with pytest.raises(DriftAlarmError):
        served.promote(f"{KEY}/2", expect=1, reason="")
    served.promote(f"{KEY}/2", expect=1, reason="hotfix, drift understood", force=True)
    assert served.history(KEY)[-1].reason.startswith("[FORCED past drift alarm #1]")


def test_a_rollout_cannot_take_a_version_live_while_an_alarm_is_open(served: Registry) -> None:
    controller = RolloutController(served, actor="ops")
    served.raise_alarm(KEY, kind="feature_drift", detail=DRIFT)  # no rollout to pause
    controller.start(f"{KEY}/2", steps="10,100", reason="try v2")
    controller.advance(KEY, reason="more traffic")
    with pytest.raises(DriftAlarmError, match="taking BTCUSDT/logreg/2 live"):
        controller.advance(KEY, reason="go live")
    assert served.aliases(KEY)["champion"] == 1
    assert controller.active(KEY).percentage == 100  # nothing moved


def test_alarms_and_acknowledgements_are_append_only(served: Registry) -> None:
    served.raise_alarm(KEY, kind="feature_drift", detail=DRIFT)
    served.acknowledge_alarms(KEY, reason="seen")
    for table in ("alarms", "alarm_acks"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), served.database.write() as c:
            c.execute(sa.text(f"DELETE FROM {table}"))
    assert not served.alarms(KEY)[0].open
