"""The registry's gate policy: only a passed run judged under the policy in force clears a version.

Every test calls :class:`~alphaops.registry.Registry` directly, on SQLite and PostgreSQL, with
real tiny ONNX bundles: the guarantee lives in the registry, not in the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from alphaops.core.errors import GateFailedError, UsageError
from alphaops.core.specs import canonical_json, sha256_hex
from alphaops.registry import ModelVersion, Registry

KEY = "BTCUSDT/logreg"
STRICT = {"backtest": {"max_drawdown": 0.2}, "quality": {"max_majority_share": 0.6}}
LENIENT = {"backtest": {"max_drawdown": 1.0}, "quality": {"max_majority_share": 1.0}}


def hash_of(document: dict[str, object]) -> str:
    return sha256_hex(canonical_json(document))


def record_pass(registry: Registry, version: ModelVersion, policy_hash: str | None) -> None:
    out_of_sample = version.manifest.data.end + timedelta(hours=1)
    registry.record_gates(
        version,
        manifest_sha256=version.manifest_sha256,
        passed=True,
        document={"gates": [], "window_start": out_of_sample.isoformat()},
        policy_hash=policy_hash,
    )


def test_the_policy_is_set_with_a_reason_hashed_like_the_gates_and_kept_as_history(
    registry: Registry,
) -> None:
    assert registry.gate_policy() is None
    with pytest.raises(UsageError, match="needs a reason"):
        registry.set_gate_policy(STRICT, reason="  ")
    first = registry.set_gate_policy(STRICT, reason="tighter drawdown after March")
    assert first.policy_hash == hash_of(STRICT)
    assert (first.actor, first.reason) == ("tester", "tighter drawdown after March")
    assert first.document == STRICT
    # Setting the policy already in force adds nothing.
    assert registry.set_gate_policy(dict(STRICT), reason="again") == first
    second = registry.set_gate_policy(LENIENT, reason="research registry")
    assert registry.gate_policy() == second
    assert [p.reason for p in registry.gate_policy_history()] == [
        "tighter drawdown after March",
        "research registry",
    ]


def test_the_policy_history_cannot_be_edited_even_behind_the_api(registry: Registry) -> None:
    registry.set_gate_policy(STRICT, reason="strict")
    for statement in (
        "UPDATE gate_policies SET reason = 'forged'",
        "DELETE FROM gate_policies",
    ):
        with pytest.raises(DBAPIError, match="append-only"), registry.database.write() as conn:
            conn.execute(text(statement))
    assert [p.reason for p in registry.gate_policy_history()] == ["strict"]


def test_a_pass_under_a_lenient_policy_does_not_clear_and_nothing_moves(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    registry.set_gate_policy(STRICT, reason="strict")
    version = registry.publish(make_bundle())
    record_pass(registry, version, hash_of(LENIENT))
    generation = registry.generation()
    with pytest.raises(GateFailedError, match="not the registry's gate policy") as caught:
        registry.promote(version.ref, expect=None, reason="lenient file said pass")
    assert caught.value.exit_code == 2
    assert registry.aliases(KEY) == {}
    assert registry.generation() == generation
    # Nor may a rollout take it live.
    with pytest.raises(GateFailedError, match="not the registry's gate policy"):
        registry.clearance(version.ref)
    # A run under the policy in force clears it.
    record_pass(registry, version, hash_of(STRICT))
    assert registry.clearance(version.ref).passed
    assert registry.promote(version.ref, expect=None, reason="strict pass").to_version == 1


def test_changing_the_policy_withdraws_clearance_until_gated_again(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    registry.set_gate_policy(STRICT, reason="strict")
    version = registry.publish(make_bundle())
    record_pass(registry, version, hash_of(STRICT))
    assert registry.clearance(version.ref).passed
    registry.set_gate_policy(LENIENT, reason="research registry")
    refused = registry.clearance(version.ref, force=True, reason="why not")
    assert (refused.passed, refused.forced) == (False, True)
    assert "not the registry's gate policy" in refused.why
    # Forcing stays possible, with the policy mismatch in the audit reason.
    move = registry.promote(version.ref, expect=None, reason="known risk", force=True)
    assert move.to_version == 1
    (promote,) = [r for r in registry.history(KEY) if r.action == "promote"]
    assert "[FORCED past gates: its gates passed under policy" in promote.reason


def test_a_run_that_recorded_no_policy_does_not_clear_once_a_policy_is_set(
    registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    version = registry.publish(make_bundle())
    record_pass(registry, version, None)
    assert registry.clearance(version.ref).passed  # no policy set: nothing to compare with
    registry.set_gate_policy(STRICT, reason="strict")
    with pytest.raises(GateFailedError, match="policy none recorded"):
        registry.clearance(version.ref)
