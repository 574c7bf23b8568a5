"""The registry enforces gate clearance itself: no caller can put an ungated version live.

Every test calls :class:`~alphaops.registry.Registry` directly (no CLI, no services), on
SQLite and on PostgreSQL, with real tiny ONNX bundles.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from alphaops.core.errors import GateFailedError, UsageError
from alphaops.registry import Registry
from alphaops.registry.testing import publish_cleared, record_passing_gates

KEY = "BTCUSDT/logreg"


def record_failing_gates(registry: Registry, ref: str, check: str = "majority_share") -> None:
    version = registry.resolve(ref)
    registry.record_gates(
        version,
        manifest_sha256=version.manifest_sha256,
        passed=False,
        document={"gates": [{"gate": "quality", "checks": [{"name": check, "passed": False}]}]},
    )


def test_promote_of_a_version_whose_gates_never_ran_is_refused_and_nothing_moves(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    registry.publish(make_bundle())
    generation = registry.generation()
    with pytest.raises(GateFailedError, match="gates never ran") as caught:
        registry.promote(f"{KEY}/1", expect=None, reason="no gates")
    assert caught.value.exit_code == 2
    assert registry.aliases(KEY) == {}
    assert registry.generation() == generation
    assert [r.action for r in registry.history(KEY)] == ["publish"]


def test_promote_after_failed_gates_is_refused_and_names_the_failed_checks(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    registry.publish(make_bundle())
    record_failing_gates(registry, f"{KEY}/1")
    with pytest.raises(GateFailedError, match=r"quality\.majority_share") as caught:
        registry.promote(f"{KEY}/1", expect=None, reason="failed gates")
    assert caught.value.details["failed_checks"] == ["quality.majority_share"]
    assert registry.aliases(KEY) == {}


def test_the_newest_gate_run_decides_so_a_later_failure_withdraws_clearance(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    publish_cleared(registry, make_bundle())
    assert registry.clearance(f"{KEY}/1").passed
    record_failing_gates(registry, f"{KEY}/1", check="sharpe")
    with pytest.raises(GateFailedError, match=r"quality\.sharpe"):
        registry.promote(f"{KEY}/1", expect=None, reason="was cleared once")
    record_passing_gates(registry, f"{KEY}/1")
    move = registry.promote(f"{KEY}/1", expect=None, reason="cleared again")
    assert move.to_version == 1
    assert [r.reason for r in registry.history(KEY) if r.action == "promote"] == ["cleared again"]


def test_forcing_past_the_gates_needs_a_reason_and_the_audit_log_says_it_was_forced(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    registry.publish(make_bundle())
    with pytest.raises(UsageError, match="needs a reason"):
        registry.promote(f"{KEY}/1", expect=None, reason=" ", force=True)
    registry.promote(f"{KEY}/1", expect=None, reason="exchange outage hotfix", force=True)
    (record,) = [r for r in registry.history(KEY) if r.action == "promote"]
    assert record.reason == "exchange outage hotfix [FORCED past gates: gates never ran]"
    assert registry.aliases(KEY) == {"champion": 1}


def test_user_aliases_take_no_live_traffic_and_need_no_clearance(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    registry.publish(make_bundle())
    registry.promote(f"{KEY}/1", expect=None, reason="for review", alias="staging")
    assert registry.aliases(KEY) == {"staging": 1}


def test_a_rollout_cannot_go_live_with_a_challenger_whose_gates_failed(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    publish_cleared(registry, make_bundle())
    registry.publish(make_bundle())
    registry.promote(f"{KEY}/1", expect=None, reason="first")
    record_failing_gates(registry, f"{KEY}/2")
    rollout = registry.create_rollout(
        KEY, 2, steps=(100,), phase="canary", step=0, percentage=100, interval_s=60.0,
        max_failures=3, reason="try v2", force=True,
    )  # fmt: skip
    with pytest.raises(GateFailedError, match="majority_share"):
        registry.transition_rollout(
            rollout.id, expect=("canary", 0, 0), phase="live", step=0, paused_from=None,
            percentage=100, failures=0, trigger="advance", reason="interval passed",
            effect="promote_challenger",
        )  # fmt: skip
    assert registry.get_rollout(rollout.id).phase == "canary"
    assert registry.aliases(KEY) == {"champion": 1, "challenger": 2}


def test_the_generation_reader_sees_every_move_and_holds_no_snapshot_between_reads(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    reader = registry.generation_reader()
    try:
        start = reader.read()
        assert start == registry.generation()
        publish_cleared(registry, make_bundle())
        registry.promote(f"{KEY}/1", expect=None, reason="first")
        assert reader.read() == start + 1  # a snapshot kept open would still say start
        reader.close()
        registry.promote(f"{KEY}/1", expect=None, reason="again", alias="staging")
        assert reader.read() == start + 2  # reopens on its own after close
    finally:
        reader.close()


def test_a_rollout_with_canary_steps_needs_clearance_and_a_shadow_only_one_does_not(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    publish_cleared(registry, make_bundle())
    registry.publish(make_bundle())
    registry.promote(f"{KEY}/1", expect=None, reason="first")
    generation = registry.generation()
    canary = {"phase": "canary", "step": 0, "percentage": 10, "interval_s": 60.0,
              "max_failures": 3}  # fmt: skip
    with pytest.raises(GateFailedError, match="gates never ran"):
        registry.create_rollout(KEY, 2, steps=(10, 100), reason="try v2", **canary)
    assert (registry.active_rollout(KEY), registry.generation()) == (None, generation)
    assert registry.aliases(KEY) == {"champion": 1}
    with pytest.raises(UsageError, match="needs a reason"):
        registry.create_rollout(KEY, 2, steps=(10, 100), reason=" ", force=True, **canary)
    shadow = registry.create_rollout(
        KEY, 2, steps=(None,), phase="shadow", step=0, percentage=0, interval_s=60.0,
        max_failures=3, reason="watch v2",
    )  # fmt: skip
    assert shadow.phase == "shadow"
    registry.transition_rollout(
        shadow.id, expect=("shadow", 0, 0), phase="rolled_back", step=0, paused_from=None,
        percentage=0, failures=0, trigger="abort", reason="seen enough",
        effect="remove_challenger",
    )  # fmt: skip
    forced = registry.create_rollout(
        KEY, 2, steps=(10, 100), reason="exchange outage hotfix", force=True, **canary
    )
    assert forced.reason == "exchange outage hotfix [FORCED past gates: gates never ran]"
    started = [r for r in registry.history(KEY) if r.alias == "challenger" and r.to_version]
    assert [r.reason.endswith("[FORCED past gates: gates never ran]") for r in started] == [
        False,  # the shadow-only rollout needed no clearance
        True,
    ]


@pytest.mark.parametrize(
    ("window_start", "why"),
    [
        ("2024-03-01T00:00:00+00:00", "inside its training data"),
        ("2024-06-30T23:00:00+00:00", "inside its training data"),  # the last training bar
        (None, "names no evaluation window"),
    ],
)
def test_gates_passed_on_bars_the_version_was_trained_on_do_not_clear_it(
    registry: Registry, make_bundle: Callable[..., Path], window_start: str | None, why: str
) -> None:
    version = registry.publish(make_bundle())  # trained on 2024-01-01 .. 2024-06-30 23:00
    document: dict[str, object] = {"gates": []}
    if window_start is not None:
        document |= {"window_start": window_start, "window_end": "2024-12-31T00:00:00+00:00"}
    registry.record_gates(
        version, manifest_sha256=version.manifest_sha256, passed=True, document=document
    )
    with pytest.raises(GateFailedError, match=why):
        registry.promote(version.ref, expect=None, reason="in-sample gates")
    assert registry.aliases(KEY) == {}
    record_passing_gates(registry, version.ref)  # the same gates on bars after training
    assert registry.promote(version.ref, expect=None, reason="out of sample").to_version == 1
