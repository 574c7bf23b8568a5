"""Hot-swap under load: threads predict while the champion is promoted and rolled back.

Every prediction must succeed, be attributable to the version that served it (its
probabilities equal that version's), and never come from a rolled-back version more than one
polling interval (plus the poll's own two reads, see ``SLACK_S``) after the rollback call
returned (the moment its commit is confirmed to the caller). A
promotion to a version not yet loaded also waits for its verified load (``LOAD_BUDGET_S``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from alphaops.registry import Registry
from alphaops.runtime import LivePredictor

from .conftest import ACTIONS, wait_until

ROW = np.array([0.3, -0.1, 0.2, 0.5])
INTERVAL_S = 0.05
SLACK_S = 0.05
"""Allowance for the poll's two small reads while predicting threads hold the GIL (2 CPUs)."""
LOAD_BUDGET_S = 1.0
"""Allowance for loading and verifying a version the runtime has not loaded yet."""


@dataclass
class _Moves:
    # (issued at, confirmed committed at, champion after it, kind).
    timeline: list[tuple[float, float, int, str]] = field(default_factory=list)
    rollbacks: int = 0
    promotions: int = 0


def _mover(registry: Registry, live: LivePredictor, versions: list[int], n: int) -> _Moves:
    moves = _Moves()
    champion = versions[0]
    moves.timeline.append((0.0, 0.0, champion, "start"))
    for step in range(n):
        aliases = registry.aliases("BTCUSDT/logreg")
        before = time.monotonic()
        kind = "rollback" if step % 3 == 2 and "previous" in aliases else "promote"
        if kind == "rollback":
            move = registry.rollback("BTCUSDT/logreg", reason=f"load {step}", expect=champion)
            moves.rollbacks += 1
        else:
            target = next(v for v in versions[(step % len(versions)) :] + versions if v != champion)
            move = registry.promote(
                f"BTCUSDT/logreg/{target}", expect=champion, reason=f"load {step}"
            )
            moves.promotions += 1
        assert move.to_version is not None
        champion = move.to_version
        moves.timeline.append((before, time.monotonic(), champion, kind))
        if step % 2 == 0:  # every other move waits to be observed; the rest come in bursts
            wait_until(lambda gen=move.generation: live.generation >= gen)
    return moves


def _stale_by(
    timeline: list[tuple[float, float, int, str]], at: float, version: int
) -> tuple[float, str]:
    """Return how long after the move away from ``version`` was confirmed committed a
    prediction started at ``at`` was served by it (0 when it still was champion; inf when it
    never was before ``at``), and the kind of that move.
    """
    best, ended_by = float("inf"), "never"
    for i, (issued, _, champion, _) in enumerate(timeline):
        if champion != version or issued > at:
            continue
        end, kind = (
            (timeline[i + 1][1], timeline[i + 1][3])
            if i + 1 < len(timeline)
            else (float("inf"), "")
        )
        if max(0.0, at - end) < best:
            best, ended_by = max(0.0, at - end), kind
    return best, ended_by


def run_load(
    registry: Registry,
    bot: Registry,
    versions: list[int],
    *,
    predictions: int,
    moves: int,
    threads: int,
) -> dict[str, float]:
    expected = {
        v: np.asarray(registry.load(f"BTCUSDT/logreg/{v}").predict(ROW[np.newaxis]))[0]
        for v in versions
    }
    live = LivePredictor(bot, "BTCUSDT/logreg", actions=ACTIONS, poll_interval_s=INTERVAL_S)
    per_thread = predictions // threads
    records: list[list[tuple[float, int, tuple[float, ...]]]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def predict(out: list[tuple[float, int, tuple[float, ...]]]) -> None:
        try:
            for _ in range(per_thread):
                at = time.monotonic()
                p = live.predict(ROW)
                out.append((at, p.version, p.probabilities))
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=predict, args=(r,)) for r in records]
    for w in workers:
        w.start()
    try:
        done = _mover(registry, live, versions, moves)
    finally:
        for w in workers:
            w.join(600)
        live.close()
    assert failures == []
    flat = [r for rs in records for r in rs]
    assert len(flat) == per_thread * threads
    worst = {"rollback": 0.0, "promote": 0.0, "": 0.0}
    for at, version, probs in flat:
        np.testing.assert_allclose(probs, expected[version], rtol=1e-5)
        stale, ended_by = _stale_by(done.timeline, at, version)
        assert ended_by in worst, f"v{version} served at {at} but was never champion before"
        worst[ended_by] = max(worst[ended_by], stale)
    assert worst["rollback"] <= INTERVAL_S + SLACK_S, worst
    assert worst["promote"] <= INTERVAL_S + SLACK_S + LOAD_BUDGET_S, worst
    assert done.rollbacks + done.promotions == moves
    assert done.rollbacks >= moves // 4
    refused = [e for e in live.events if e.kind in ("refused", "poll_failed")]
    assert refused == []
    return {
        "predictions": len(flat),
        "stale_after_rollback_s": worst["rollback"],
        "stale_after_promote_s": worst["promote"],
    }


@pytest.fixture
def three_versions(registry: Registry, make_bundle: Callable[..., Path]) -> list[int]:
    versions = [registry.publish(make_bundle()).version for _ in range(3)]
    registry.promote("BTCUSDT/logreg/1", expect=None, reason="start")
    return versions


def test_predictions_never_fail_during_promotions_and_rollbacks(
    registry: Registry, open_reg: Callable[[str], Registry], three_versions: list[int]
) -> None:
    run_load(registry, open_reg("bot"), three_versions, predictions=6_000, moves=24, threads=3)


@pytest.mark.stress
def test_stress_100k_predictions_with_over_100_moves_never_fail(
    registry: Registry, open_reg: Callable[[str], Registry], three_versions: list[int]
) -> None:
    run_load(registry, open_reg("bot"), three_versions, predictions=120_000, moves=120, threads=4)


def test_corrupted_version_promoted_under_load_is_refused_and_the_old_keeps_serving(
    registry: Registry,
    open_reg: Callable[[str], Registry],
    make_bundle: Callable[..., Path],
    tmp_path: Path,
) -> None:
    registry.publish(make_bundle())
    registry.promote("BTCUSDT/logreg/1", expect=None, reason="start")
    bad = registry.publish(make_bundle()).version
    onnx = next((tmp_path / "artifacts").rglob(f"BTCUSDT/logreg/{bad}/model.onnx"))
    onnx.write_bytes(onnx.read_bytes().replace(b"logistic_regression", b"LOGISTIC_REGRESSION"))
    live = LivePredictor(open_reg("bot"), "BTCUSDT/logreg", actions=ACTIONS, poll_interval_s=0.02)
    served: set[int] = set()
    stop = threading.Event()

    def predict() -> None:
        while not stop.is_set():
            served.add(live.predict(ROW).version)

    worker = threading.Thread(target=predict)
    worker.start()
    try:
        registry.promote(f"BTCUSDT/logreg/{bad}", expect=1, reason="corrupted upload")
        wait_until(lambda: any(e.kind == "refused" for e in live.events))
    finally:
        stop.set()
        worker.join(10)
        live.close()
    assert served == {1}
    assert [e.version for e in live.events if e.kind == "refused"] == [bad]
