"""Persisted rollouts: one active per model, compare-and-swap moves, events, restarts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alphaops.core.errors import NotFoundError, UsageError, VersionConflictError
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import publish_cleared

KEY = "BTCUSDT/logreg"


@pytest.fixture
def two_versions(registry: Registry, make_bundle: Callable[..., Path]) -> Registry:
    publish_cleared(registry, make_bundle())
    publish_cleared(registry, make_bundle())
    registry.promote(f"{KEY}/1", expect=None, reason="first")
    return registry


def start(registry: Registry, version: int = 2) -> str:
    return registry.create_rollout(
        KEY,
        version,
        steps=(None, 10, 100),
        phase="shadow",
        step=0,
        percentage=0,
        interval_s=3600.0,
        max_failures=3,
        reason="try v2",
    ).id


def test_starting_a_rollout_sets_the_challenger_bumps_the_generation_and_logs_a_start(
    two_versions: Registry,
) -> None:
    before = two_versions.generation()
    rollout_id = start(two_versions)
    found = two_versions.active_rollout(KEY)
    assert found is not None
    assert (found.id, found.phase, found.step, found.champion_version) == (
        rollout_id,
        "shadow",
        0,
        1,
    )
    assert found.steps == (None, 10, 100)
    assert two_versions.aliases(KEY)["challenger"] == 2
    assert two_versions.generation() == before + 1
    [event] = two_versions.rollout_events(rollout_id)
    assert (event.trigger, event.from_phase, event.to_phase) == ("start", "pending", "shadow")
    assert two_versions.history(KEY)[-1].action == "alias_set"


def test_a_second_active_rollout_of_the_same_model_is_refused_naming_the_first(
    two_versions: Registry,
) -> None:
    rollout_id = start(two_versions)
    with pytest.raises(VersionConflictError, match=rollout_id) as caught:
        start(two_versions)
    assert "abort" in (caught.value.fix or "")
    assert len(two_versions.list_rollouts(KEY)) == 1


def test_a_transition_with_a_stale_expectation_is_refused_and_changes_nothing(
    two_versions: Registry,
) -> None:
    rollout_id = start(two_versions)
    move: dict[str, Any] = {
        "phase": "canary",
        "step": 1,
        "paused_from": None,
        "percentage": 10,
        "failures": 0,
    }
    two_versions.transition_rollout(
        rollout_id, expect=("shadow", 0, 0), trigger="advance", reason="ok", **move
    )
    with pytest.raises(VersionConflictError, match="not the expected shadow at step 0"):
        two_versions.transition_rollout(
            rollout_id, expect=("shadow", 0, 0), trigger="advance", reason="again", **move
        )
    assert len(two_versions.rollout_events(rollout_id)) == 2
    assert two_versions.get_rollout(rollout_id).percentage == 10


def test_rolling_back_removes_the_challenger_in_the_same_transaction_and_frees_the_model(
    two_versions: Registry,
) -> None:
    rollout_id = start(two_versions)
    done = two_versions.transition_rollout(
        rollout_id,
        expect=("shadow", 0, 0),
        phase="rolled_back",
        step=0,
        paused_from=None,
        percentage=0,
        failures=0,
        trigger="abort",
        reason="bad",
        effect="remove_challenger",
    )
    assert not done.active
    assert "challenger" not in two_versions.aliases(KEY)
    assert two_versions.active_rollout(KEY) is None
    assert start(two_versions) != rollout_id  # a new rollout may start


def test_going_live_promotes_by_compare_and_swap_against_the_champion_at_start(
    two_versions: Registry, make_bundle: Callable[..., Path]
) -> None:
    rollout_id = start(two_versions)
    publish_cleared(two_versions, make_bundle())
    two_versions.promote(f"{KEY}/3", expect=1, reason="someone else")
    live: dict[str, Any] = {
        "phase": "live",
        "step": 3,
        "paused_from": None,
        "percentage": 100,
        "failures": 0,
    }
    with pytest.raises(VersionConflictError, match="champion is 3, not the expected 1"):
        two_versions.transition_rollout(
            rollout_id,
            expect=("shadow", 0, 0),
            trigger="advance",
            reason="done",
            effect="promote_challenger",
            **live,
        )
    assert two_versions.get_rollout(rollout_id).phase == "shadow"  # nothing changed
    two_versions.rollback(KEY, reason="undo")
    two_versions.transition_rollout(
        rollout_id,
        expect=("shadow", 0, 0),
        trigger="advance",
        reason="done",
        effect="promote_challenger",
        **live,
    )
    assert two_versions.aliases(KEY) == {"champion": 2, "previous": 1}


def test_a_rollout_survives_reopening_the_registry(
    two_versions: Registry, db_url: str, tmp_path: Path
) -> None:
    rollout_id = start(two_versions)
    two_versions.close()
    with open_registry(db_url, artifacts=tmp_path / "artifacts") as again:
        found = again.active_rollout(KEY)
        assert found is not None
        assert (found.id, found.phase, found.interval_s, found.max_failures) == (
            rollout_id,
            "shadow",
            3600.0,
            3,
        )


def test_rollout_events_are_append_only_in_the_database(two_versions: Registry) -> None:
    start(two_versions)
    with (
        pytest.raises(sa.exc.DBAPIError, match="append-only"),
        two_versions.database.write() as conn,
    ):
        conn.execute(sa.text("DELETE FROM rollout_events"))


def test_an_unknown_rollout_id_is_not_found_with_a_fix(two_versions: Registry) -> None:
    with pytest.raises(NotFoundError, match="'nope' does not exist") as caught:
        two_versions.get_rollout("nope")
    assert "rollout status" in (caught.value.fix or "")


def test_a_rollout_move_wakes_listeners_on_postgres_and_bumps_the_generation_everywhere(
    two_versions: Registry,
) -> None:
    rollout_id = start(two_versions)
    before = two_versions.generation()
    move: dict[str, Any] = {"phase": "paused", "step": 0, "paused_from": "shadow"}
    if two_versions.database.dialect != "postgresql":
        with pytest.raises(UsageError, match="poll"):
            two_versions.listen()
        two_versions.transition_rollout(
            rollout_id, expect=("shadow", 0, 0), trigger="pause", reason="hold",
            percentage=0, failures=0, **move,
        )  # fmt: skip
    else:
        with two_versions.listen() as listener:
            two_versions.transition_rollout(
                rollout_id, expect=("shadow", 0, 0), trigger="pause", reason="hold",
                percentage=0, failures=0, **move,
            )  # fmt: skip
            note = listener.wait(10.0)
        assert note == {"rollout": rollout_id, "phase": "paused", "generation": before + 1}
    assert two_versions.generation() == before + 1
