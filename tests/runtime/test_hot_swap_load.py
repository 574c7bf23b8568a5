"""Hot-swap under load: threads predict while the champion is promoted and rolled back.

Every prediction must succeed and be attributable to the version that served it (its
probabilities equal that version's). Following the registry is checked as causality, not
against a wall clock that a loaded 2-core machine can stretch:

- every move is picked up by the first poll that starts after the move's commit was confirmed
  (so a bot follows within one polling interval plus that poll's own duration);
- no prediction that started after that poll returned is served by the version moved away
  from, whether the move was a rollback or a promotion to a version not loaded yet.

How long that takes in wall-clock time is measured by ``benchmarks/bench_runtime.py``
(``promote_to_first_new_ms``) and returned here for reading, never asserted.
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
from alphaops.registry.testing import publish_cleared
from alphaops.runtime import LivePredictor

from .conftest import ACTIONS, wait_until

ROW = np.array([0.3, -0.1, 0.2, 0.5])
INTERVAL_S = 0.05


@dataclass(frozen=True)
class _Move:
    issued: float
    confirmed: float  # the call returned: its commit is visible to every reader
    champion: int  # after the move
    generation: int
    kind: str


@dataclass
class _Moves:
    timeline: list[_Move] = field(default_factory=list)
    rollbacks: int = 0
    promotions: int = 0


@dataclass(frozen=True)
class _Poll:
    started: float
    ended: float
    generation: int  # the generation the served models reflect once the poll returned


def _record_polls(live: LivePredictor) -> list[_Poll]:
    """Record every poll of ``live``'s own polling thread (start it after this)."""
    polls: list[_Poll] = []
    poll = live.poll

    def recorded() -> bool:
        started = time.monotonic()
        try:
            return poll()
        finally:
            polls.append(_Poll(started, time.monotonic(), live.generation))

    live.poll = recorded  # type: ignore[method-assign]
    return polls


def _mover(registry: Registry, live: LivePredictor, versions: list[int], n: int) -> _Moves:
    moves = _Moves()
    champion = versions[0]
    moves.timeline.append(_Move(0.0, 0.0, champion, live.generation, "start"))
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
        moves.timeline.append(_Move(before, time.monotonic(), champion, move.generation, kind))
        if step % 2 == 0:  # every other move waits to be observed; the rest come in bursts
            wait_until(lambda gen=move.generation: live.generation >= gen)
    return moves


def _first_poll_after(polls: list[_Poll], moment: float) -> _Poll | None:
    return next((p for p in polls if p.started > moment), None)


def _check_served_versions(
    moves: list[_Move], polls: list[_Poll], served: dict[int, np.ndarray]
) -> dict[str, float]:
    """Check that every prediction was served by a version it may have been served by, and
    return the longest wall-clock time a version served after a rollback or promotion away
    from it was confirmed (for reading only).

    ``served`` maps a version to the (started, ended) times of the predictions it served. A
    prediction may have been served by ``version`` if it read the served models after
    ``version`` became champion and no later than the end of the first poll that started
    after the move away from it was confirmed.
    """
    stale = {"rollback": 0.0, "promote": 0.0}
    for version, spans in served.items():
        became, bound, away, kinds = [], [], [], []
        for i, move in enumerate(moves):
            if move.champion != version:
                continue
            became.append(move.issued)
            nxt = moves[i + 1] if i + 1 < len(moves) else None
            first = None if nxt is None else _first_poll_after(polls, nxt.confirmed)
            bound.append(np.inf if first is None else first.ended)
            away.append(np.inf if nxt is None else nxt.confirmed)
            kinds.append("" if nxt is None else nxt.kind)
        started, ended = spans[:, :1], spans[:, 1:]
        fits = (ended >= np.array(became)) & (started <= np.array(bound))
        lost = ~fits.any(axis=1)
        assert not lost.any(), (
            f"v{version} served a prediction from {spans[lost][0]} outside its time as "
            f"champion; moves {moves}; polls {polls}"
        )
        late = np.where(fits, np.maximum(0.0, started - np.array(away)), np.inf)
        best = late.argmin(axis=1)
        for j, kind in enumerate(kinds):
            after = late[best == j, j]
            if kind and after.size:
                stale[kind] = max(stale[kind], float(after.max()))
    return stale


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
    live = LivePredictor(
        bot, "BTCUSDT/logreg", actions=ACTIONS, poll_interval_s=INTERVAL_S, start=False
    )
    polls = _record_polls(live)
    live.start()
    per_thread = predictions // threads
    # (started, ended, version, probabilities) of every prediction.
    Record = tuple[float, float, int, tuple[float, ...]]
    records: list[list[Record]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def predict(out: list[Record]) -> None:
        try:
            for _ in range(per_thread):
                at = time.monotonic()
                p = live.predict(ROW)
                out.append((at, time.monotonic(), p.version, p.probabilities))
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
    timeline = done.timeline
    for move in timeline[1:]:
        first = _first_poll_after(polls, move.confirmed)
        if first is not None:
            assert first.generation >= move.generation, (move, first)
    for _, _, version, probs in flat:
        np.testing.assert_allclose(probs, expected[version], rtol=1e-5)
    served = {
        v: np.array([(s, e) for s, e, version, _ in flat if version == v], dtype=float)
        for v in {r[2] for r in flat}
    }
    stale = _check_served_versions(timeline, polls, served)
    assert done.rollbacks + done.promotions == moves
    assert done.rollbacks >= moves // 4
    refused = [e for e in live.events if e.kind in ("refused", "poll_failed")]
    assert refused == []
    return {
        "predictions": len(flat),
        "stale_after_rollback_s": stale["rollback"],
        "stale_after_promote_s": stale["promote"],
    }


@pytest.fixture
def three_versions(registry: Registry, make_bundle: Callable[..., Path]) -> list[int]:
    versions = [publish_cleared(registry, make_bundle()).version for _ in range(3)]
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
    publish_cleared(registry, make_bundle())
    registry.promote("BTCUSDT/logreg/1", expect=None, reason="start")
    bad = publish_cleared(registry, make_bundle()).version
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
