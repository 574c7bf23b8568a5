"""What the journal costs: latency added to live predictions, write throughput, drift reports.

The served model is real: LightGBM (ternary, 100 rounds at most, ``FeatureSpec.default()``,
11 features) trained like ``bench_livebar`` on ``TRAIN_BARS`` BTCUSDT 1h bars of
``$ALPHAOPS_TEST_DATA`` (or ``../shared/data``), published in a temporary SQLite registry and
served by ``LivePredictor(..., start=False, load_in="thread")``: one with ``journal=None``
(off), one with ``journal=Journal(registry)`` on the same SQLite registry (on, default
``JournalConfig``: background writer, 100 ms flush interval, batches of 5,000), and one whose
journal's writer stays idle during the timing (below). Every bar fed is one the model never
saw (after a warm-up of ``WARM_BARS``); every predictor gets the same bars.

Figures:

- ``onbar_*``: ``on_bar(bar)`` back to back (the stress case: the writer thread competes for
  the GIL with a predictor that never idles), ``ROUNDS`` alternating blocks of ``BLOCK_BARS``
  bars per side (the order flips every round, so machine noise hits both sides alike). After
  each ``on`` block the writer's tail is flushed untimed, so an ``off`` block never pays for
  the ``on`` block's writes (the tail is what arrived since the writer last woke, less than
  one flush interval: the ``on`` block pays for most, not all, of its own writes;
  ``*_committed_during_blocks`` is the share the writer committed while the blocks ran).
  p50/p99/p99.9 µs per bar; ``onbar_added_p50_us`` (goal: at most 5 µs) and
  ``onbar_p99_on_over_off`` (goal: at most 1.5). A third side, ``idle``, journals through a
  writer that sleeps through every block (flush interval one hour, flushed between blocks):
  ``*_hot_path_added_p50_us`` is what the prediction itself pays (decision id, tuple, queue
  append; a copy of the row for ``predict``), the rest of ``*_added_p50_us`` is the writer
  thread competing for the GIL and the CPU.
- ``predict_*``: the same for ``predict(row)`` on ready real feature rows (float32, 11 values).
- ``paced_*``: ``on_bar`` at a bot's pace: one bar every ``PACE_S`` (sleeping in between),
  ``PACED_ROUNDS`` alternating blocks of ``PACED_BLOCK`` bars per side (off and on only).
  After a sleep the CPU caches are cold, so both sides are slower than back to back.
- ``*_written`` / ``*_dropped``: the writer's counters over each run (a drop is a decision
  the full queue refused; the paced run must drop none).
- ``submit_per_s``: ``N_DECISIONS`` pending decisions (tuples exactly as the live predictor
  builds them: real feature rows and the model's real probabilities) through
  ``Journal.submit`` as fast as possible, then ``flush()``; decisions committed per second
  end to end (goal: at least 20,000/s) with a queue large enough to drop none;
  ``submit_call_us``: mean time of one ``submit`` call (what a prediction pays);
  ``submit_cpu_us_per_decision``: process CPU time per decision over the run (the writer's).
- ``write_decisions_per_s``: the same decisions as ready ``Decision`` objects (built
  untimed) through ``Journal.write_decisions`` in batches of 5,000 (synchronous reference).
- ``sqlite_floor_per_s``: bare ``sqlite3`` ``executemany`` of the stored rows (read back from
  the journal) into a fresh file with the same ``decisions`` DDL and indexes and the same
  pragmas (WAL, synchronous=NORMAL), in one transaction per 5,000 rows: the floor.
  ``floor_over_submit`` / ``floor_over_write_decisions`` are the ratios.
- ``writer_row_us``: the writer's Python work per decision on SQLite (datetimes and JSON as
  stored text, BLAKE2b of the input), all of it holding the GIL the bot also needs;
  ``core_insert_us``: SQLAlchemy Core's insert and commit of ready rows (the PostgreSQL
  path), measured alone as a reference.
- ``drift_report_ms``: ``FeatureDrift(profile, window=10000).update_many(rows)`` +
  ``report()`` over ``DRIFT_ROWS`` real feature rows of unseen bars (``InputContract.history``)
  for the 11 features, against the bundle's stored profile (``profile_of``); median of
  ``DRIFT_REPEATS``. The peer (evidently is not installed): a plain scipy loop with
  ``ks_2samp(method="asymp")`` and ``wasserstein_distance`` on the raw reference sample (the
  validation features the profile summarises) plus a NumPy PSI on the same decile bins;
  ``drift_scipy_over_alphaops``. ``drift_max_*_diff`` say how close the figures agree (the
  profile keeps a 512-quantile sketch, not the raw sample).

On a shared 2-core machine the p99 figures vary run to run; compare within one run.

Reading them: the prediction itself pays ``*_hot_path_added_p50_us`` (a tuple on a deque).
Back to back, the writer thread needs the GIL for about ``writer_row_us`` per decision while
the predictor never lets go of it except inside onnxruntime, so every prediction made while
the writer works pays a GIL handoff: that, not the hot path, is ``onbar_added_p50_us`` and
the p99 ratio. At a bot's pace (``paced_*``), or in a burst of bars shorter than the flush
interval, the writer works between predictions and the goals hold. ``*_proc_*``: the same
predictions journaled with ``JournalConfig(writer="process")`` (one pipe write per
decision, the writing in a helper process): no writer thread in the bot, so back to back
it pays about its hot path only; ``proc_dropped`` counts what a full pipe refused.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alphaops.data.candles import Candles
from alphaops.data.readers import read_candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.journal import Decision, Journal, JournalConfig, PendingDecision
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import record_passing_gates
from alphaops.runtime import LivePredictor, bars_of
from alphaops.scoring import InputContract, profile_of

REPO = Path(__file__).resolve().parents[1]
KEY = "BTCUSDT/lightgbm"
TRAIN_BARS = 4000
WARM_BARS = 1000
BLOCK_BARS = 8000  # ~0.3 s of back-to-back bars: several writer wake-ups per block
ROUNDS = 4
PREDICT_BLOCK = 16_000
PACE_S = 0.001
PACED_BLOCK = 500
PACED_ROUNDS = 6
N_DECISIONS = 200_000
BATCH = 5_000
DRIFT_ROWS = 10_000
DRIFT_REPEATS = 15
UNSEEN = WARM_BARS + (ROUNDS + 1) * BLOCK_BARS + PACED_ROUNDS * PACED_BLOCK + 10


def _data() -> Path:
    folder = Path(os.environ.get("ALPHAOPS_TEST_DATA", REPO.parent / "shared" / "data"))
    return folder / "BTCUSDT-1h.parquet"


def _pcts(samples: Sequence[float], prefix: str) -> dict[str, float]:
    values = np.asarray(samples) * 1e6
    return {
        f"{prefix}_p50_us": float(np.percentile(values, 50)),
        f"{prefix}_p99_us": float(np.percentile(values, 99)),
        f"{prefix}_p99_9_us": float(np.percentile(values, 99.9)),
    }


def _timed(fn: Callable[[Any], Any], items: Sequence[Any], out: list[float]) -> None:
    clock = time.perf_counter
    for item in items:
        began = clock()
        fn(item)
        out.append(clock() - began)


def _paced(fn: Callable[[Any], Any], items: Sequence[Any], out: list[float]) -> None:
    clock = time.perf_counter
    due = clock()
    for item in items:
        due += PACE_S
        began = clock()
        fn(item)
        out.append(clock() - began)
        wait = due - clock()
        if wait > 0:
            time.sleep(wait)


def _interleaved(
    sides: dict[str, tuple[Callable[[Any], Any], Journal | None]],
    blocks: Sequence[Sequence[Any]],
    runner: Callable[[Callable[[Any], Any], Sequence[Any], list[float]], None] = _timed,
    *,
    warm_block: bool = True,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Run every side on each block in turn, the order reversed every other round.

    After a journaled side's block its journal is flushed, untimed: the next side never pays
    for that block's tail. With ``warm_block`` the first block is not recorded. Return the
    latencies per side and, per journaled side, the share of its decisions that the writer
    committed while the block ran (the rest was the untimed tail).
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    during = dict.fromkeys(sides, 0)
    made = dict.fromkeys(sides, 0)
    order = list(sides)
    for r, block in enumerate(blocks):
        for name in order if r % 2 == 0 else order[::-1]:
            fn, journal = sides[name]
            sink: list[float] = [] if r == 0 and warm_block else times[name]
            before = 0 if journal is None else journal.writer_stats().written
            runner(fn, block, sink)
            if journal is not None:
                during[name] += journal.writer_stats().written - before
                made[name] += len(block)
                journal.flush()
    shares = {name: during[name] / made[name] for name in sides if made[name]}
    return times, shares


def _compare(
    prefix: str, measured: tuple[dict[str, list[float]], dict[str, float]]
) -> dict[str, Any]:
    times, shares = measured
    figures: dict[str, Any] = {}
    for name, samples in times.items():
        figures |= _pcts(samples, f"{prefix}_{name}")
    off = figures[f"{prefix}_off_p50_us"], figures[f"{prefix}_off_p99_us"]
    figures[f"{prefix}_added_p50_us"] = figures[f"{prefix}_on_p50_us"] - off[0]
    figures[f"{prefix}_p99_on_over_off"] = figures[f"{prefix}_on_p99_us"] / off[1]
    if f"{prefix}_idle_p50_us" in figures:
        figures[f"{prefix}_hot_path_added_p50_us"] = figures[f"{prefix}_idle_p50_us"] - off[0]
    if f"{prefix}_proc_p50_us" in figures:
        figures[f"{prefix}_proc_added_p50_us"] = figures[f"{prefix}_proc_p50_us"] - off[0]
        figures[f"{prefix}_proc_p99_over_off"] = figures[f"{prefix}_proc_p99_us"] / off[1]
    figures[f"{prefix}_committed_during_blocks"] = shares["on"]
    figures[f"{prefix}_samples_per_side"] = len(times["on"])
    return figures


def _train(home: Path, frame: Any) -> tuple[Registry, Any, np.ndarray]:
    from alphaops.training import TrainingJob
    from alphaops.training.data import prepare_data
    from alphaops.training.executor import publish_trained, train_job

    train = {"BTCUSDT": Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h")}
    job = TrainingJob(
        symbols=("BTCUSDT",), timeframe="1h", model="lightgbm", features=FeatureSpec.default(),
        label=LabelRule(kind="ternary", horizon=4, threshold=0.01),
        params={"n_estimators": 100}, seed=1,
    )  # fmt: skip
    reg = open_registry(home, actor="bot")
    version = publish_trained(train_job(job, train), reg)
    record_passing_gates(reg, version.ref)
    reg.promote(version.ref, expect=None, reason="bench")
    reference = np.asarray(prepare_data(job, train).X_val, dtype=np.float64)
    return reg, reg.load(version.ref), reference


def _stats_delta(journal: Journal, before: Any) -> tuple[int, int]:
    now = journal.writer_stats()
    return now.written - before.written, now.dropped - before.dropped


def _latency(reg: Registry, unseen: Any, rows: np.ndarray) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    journal = Journal(reg)
    # The hot path alone: a journal whose writer sleeps through every block (flushed between).
    idle = Journal(reg, JournalConfig(flush_interval_s=3600, queue_rows=1_000_000))
    warm = Candles.from_frame(unseen.iloc[:WARM_BARS], symbol="BTCUSDT", timeframe="1h")
    bars = bars_of(Candles.from_frame(unseen.iloc[WARM_BARS:], symbol="BTCUSDT", timeframe="1h"))
    opts: dict[str, Any] = {"start": False, "load_in": "thread"}
    off = LivePredictor(reg, KEY, journal=None, **opts)
    on = LivePredictor(reg, KEY, journal=journal, **opts)
    on_idle = LivePredictor(reg, KEY, journal=idle, **opts)
    proc = Journal(reg, JournalConfig(writer="process"))
    on_proc = LivePredictor(reg, KEY, journal=proc, **opts)
    try:
        for live in (off, on, on_idle, on_proc):
            live.warm_up(warm)
        # 1. on_bar back to back
        n = (ROUNDS + 1) * BLOCK_BARS
        blocks = [bars[i : i + BLOCK_BARS] for i in range(0, n, BLOCK_BARS)]
        sides = {
            "off": (off.on_bar, None),
            "on": (on.on_bar, journal),
            "idle": (on_idle.on_bar, idle),
            "proc": (on_proc.on_bar, proc),
        }
        before = journal.writer_stats()
        figures |= _compare("onbar", _interleaved(sides, blocks))
        figures["onbar_written"], figures["onbar_dropped"] = _stats_delta(journal, before)
        # 2. predict(row) back to back, on real feature rows
        pool = [np.ascontiguousarray(r, dtype=np.float32) for r in rows]
        items = [pool[i % len(pool)] for i in range(PREDICT_BLOCK)]
        sides = {
            "off": (off.predict, None),
            "on": (on.predict, journal),
            "idle": (on_idle.predict, idle),
            "proc": (on_proc.predict, proc),
        }
        before = journal.writer_stats()
        figures |= _compare("predict", _interleaved(sides, [items] * (ROUNDS + 1)))
        figures["predict_written"], figures["predict_dropped"] = _stats_delta(journal, before)
        # 3. on_bar at a bot's pace (the bars after the back-to-back ones)
        rest = bars[n : n + PACED_ROUNDS * PACED_BLOCK]
        blocks = [rest[i : i + PACED_BLOCK] for i in range(0, len(rest), PACED_BLOCK)]
        sides = {
            "off": (off.on_bar, None),
            "on": (on.on_bar, journal),
            "proc": (on_proc.on_bar, proc),
        }
        before = journal.writer_stats()
        figures |= _compare("paced", _interleaved(sides, blocks, _paced, warm_block=False))
        figures["paced_written"], figures["paced_dropped"] = _stats_delta(journal, before)
        figures["paced_interval_ms"] = PACE_S * 1e3
        figures["writer_failed_commits"] = journal.writer_stats().failed_commits
        proc.flush()
        proc_stats = proc.writer_stats()
        figures["proc_written"], figures["proc_dropped"] = proc_stats.written, proc_stats.dropped
        figures["journaled_total"] = journal.count_decisions(KEY)
    finally:
        for live in (off, on, on_idle, on_proc):
            live.close()
        journal.close()
        idle.close()
        proc.close()
    return figures


def _pending(model: Any, rows: np.ndarray, stamps: np.ndarray) -> list[PendingDecision]:
    """N_DECISIONS tuples exactly as LivePredictor._run builds them (real inputs, real probs)."""
    batches = [np.ascontiguousarray(r, dtype=np.float32)[np.newaxis] for r in rows]
    probs = model.run(np.stack([b[0] for b in batches]))
    answers = [
        (int(model.class_actions[int(np.argmax(p))]), tuple(float(v) for v in p)) for p in probs
    ]
    now, prefix, out = time.time(), "5eed0fbe7c01-", []
    for i in range(N_DECISIONS):
        j = i % len(batches)
        action, probabilities = answers[j]
        out.append(
            (
                prefix + format(i + 1, "x"), now + i * 1e-3, int(stamps[j]),
                model.key.symbol, model.key.model_type, model.version, model.manifest_sha256,
                "champion", None, None, action, probabilities, batches[j],
            )
        )  # fmt: skip
    return out


def _throughput(root: Path, model: Any, rows: np.ndarray, stamps: np.ndarray) -> dict[str, Any]:
    from alphaops.journal._writer import _row_dict, _sqlite_values, prepare

    figures: dict[str, Any] = {"decisions": N_DECISIONS}
    pending = _pending(model, rows, stamps)
    config = JournalConfig(queue_rows=N_DECISIONS + 1)
    # submit + flush, end to end
    with open_registry(root / "submit", actor="bot") as reg:
        journal = Journal(reg, config)
        journal.submit(pending[0])  # start the writer thread outside the timing
        journal.flush()
        submit = journal.submit
        cpu = time.process_time()
        began = time.perf_counter()
        for item in pending[1:]:
            submit(item)
        submitted = time.perf_counter()
        assert journal.flush(300.0)
        ended = time.perf_counter()
        cpu = time.process_time() - cpu
        stats = journal.writer_stats()
        journal.close()
        figures["submit_per_s"] = (N_DECISIONS - 1) / (ended - began)
        figures["submit_call_us"] = (submitted - began) / (N_DECISIONS - 1) * 1e6
        figures["submit_cpu_us_per_decision"] = cpu / (N_DECISIONS - 1) * 1e6
        figures["submit_written"], figures["submit_dropped"] = stats.written, stats.dropped
        db = Path(reg.database.url.removeprefix("sqlite:///"))
        # Where the writer's time goes: tuple -> SQLite row (all under the GIL), and the
        # SQLAlchemy Core insert of ready rows that the PostgreSQL path uses, as a reference.
        sample = pending[:20_000]
        began = time.perf_counter()
        for i in range(0, len(sample), 32):
            prepared = [prepare(item, store_inputs=False) for item in sample[i : i + 32]]
            _sqlite_values(prepared)
        figures["writer_row_us"] = (time.perf_counter() - began) / len(sample) * 1e6
        ready = [_row_dict(prepare(item, store_inputs=False)) for item in sample]
    with open_registry(root / "rows", actor="bot") as reg:
        from sqlalchemy import insert

        from alphaops.journal import _tables as tables

        statement = insert(tables.decisions)
        began = time.perf_counter()
        for i in range(0, len(ready), BATCH):
            with reg.database.write() as conn:
                conn.execute(statement, ready[i : i + BATCH])
        figures["core_insert_us"] = (time.perf_counter() - began) / len(ready) * 1e6
    # write_decisions with ready Decision objects (built untimed)
    decisions = [_decision(_row_dict(prepare(item, store_inputs=False))) for item in pending]
    with open_registry(root / "sync", actor="bot") as reg:
        journal = Journal(reg)
        began = time.perf_counter()
        for i in range(0, len(decisions), BATCH):
            journal.write_decisions(decisions[i : i + BATCH])
        figures["write_decisions_per_s"] = N_DECISIONS / (time.perf_counter() - began)
    # the floor: bare sqlite3 executemany of the stored rows into the same table
    source = sqlite3.connect(db)
    ddl = [
        sql
        for (sql,) in source.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'decisions' AND sql IS NOT NULL "
            "AND type IN ('table', 'index') ORDER BY type DESC"
        )
    ]
    stored = source.execute("SELECT * FROM decisions ORDER BY rowid").fetchall()
    source.close()
    floor = sqlite3.connect(root / "floor.db", isolation_level=None)
    floor.execute("PRAGMA journal_mode=WAL")
    floor.execute("PRAGMA synchronous=NORMAL")
    for sql in ddl:
        floor.execute(sql)
    marks = ",".join("?" * len(stored[0]))
    began = time.perf_counter()
    for i in range(0, len(stored), BATCH):
        floor.execute("BEGIN IMMEDIATE")
        floor.executemany(f"INSERT INTO decisions VALUES ({marks})", stored[i : i + BATCH])
        floor.execute("COMMIT")
    figures["sqlite_floor_per_s"] = len(stored) / (time.perf_counter() - began)
    floor.close()
    figures["floor_over_submit"] = figures["sqlite_floor_per_s"] / figures["submit_per_s"]
    figures["floor_over_write_decisions"] = (
        figures["sqlite_floor_per_s"] / figures["write_decisions_per_s"]
    )
    return figures


def _decision(row: dict[str, Any]) -> Decision:
    return Decision(**{**row, "probabilities": tuple(row["probabilities"])})


def _scipy_drift(reference: np.ndarray, live: np.ndarray) -> list[tuple[float, float, float]]:
    """The peer: per feature KS (asymptotic), Wasserstein on the raw sample, decile PSI."""
    from scipy import stats

    out = []
    for j in range(reference.shape[1]):
        ref = reference[:, j][np.isfinite(reference[:, j])]
        cur = live[:, j][np.isfinite(live[:, j])]
        ks = stats.ks_2samp(ref, cur, method="asymp")
        w = stats.wasserstein_distance(ref, cur)
        edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
        e = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
        a = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
        e = e / ref.size
        a = a / cur.size
        e = np.where(e > 0, e, 1e-4)
        a = np.where(a > 0, a, 1e-4)
        out.append((float(np.sum((e - a) * np.log(e / a))), float(ks.statistic), float(w)))
    return out


def _drift(bundle: Any, reference: np.ndarray, live: np.ndarray) -> dict[str, Any]:
    from alphaops.monitoring import FeatureDrift

    profile = profile_of(bundle)
    assert profile is not None, "the bundle has no drift reference"
    assert all(f.rows == reference.shape[0] for f in profile.features)

    def ours() -> Any:
        monitor = FeatureDrift(profile, window=DRIFT_ROWS)
        monitor.update_many(live)
        return monitor.report()

    report, peer = ours(), _scipy_drift(reference, live)
    t_ours, t_peer = [], []
    for _ in range(DRIFT_REPEATS):  # interleaved
        began = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        _scipy_drift(reference, live)
        t_peer.append(time.perf_counter() - began)
    ms, peer_ms = statistics.median(t_ours) * 1e3, statistics.median(t_peer) * 1e3
    pairs = list(zip(report.rows, peer, strict=True))
    return {
        "drift_features": len(profile.features),
        "drift_rows": int(live.shape[0]),
        "drift_reference_rows": int(reference.shape[0]),
        "drift_report_ms": ms,
        "drift_scipy_ms": peer_ms,
        "drift_scipy_over_alphaops": peer_ms / ms,
        "drift_worst": report.worst,
        "drift_max_abs_psi_diff": max(abs(r.psi - p[0]) for r, p in pairs),
        "drift_max_abs_ks_diff": max(abs((r.ks or 0) - p[1]) for r, p in pairs),
        "drift_max_rel_wasserstein_diff": max(
            abs((r.wasserstein or 0) - p[2]) / p[2] for r, p in pairs
        ),
    }


def run() -> dict[str, Any]:
    frame = read_candles(_data(), symbol="BTCUSDT", timeframe="1h").frame
    frame = frame.iloc[-(TRAIN_BARS + UNSEEN) :]
    unseen = frame.iloc[TRAIN_BARS:]
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        root = Path(tmp)
        reg, bundle, reference = _train(root / "home", frame.iloc[:TRAIN_BARS])
        contract = InputContract.from_bundle(bundle)
        history = Candles.from_frame(unseen, symbol="BTCUSDT", timeframe="1h")
        first_ms = int(history.timestamps_ms[WARM_BARS])
        stamps, rows = contract.history(history, start_ms=first_ms)
        stamps, rows = stamps[:DRIFT_ROWS], np.asarray(rows[:DRIFT_ROWS], dtype=np.float64)
        try:
            figures |= _latency(reg, unseen, rows)
            with LivePredictor(reg, KEY, start=False, load_in="thread") as live:
                model = live._slot.champion
                figures |= _throughput(root, model, rows, stamps)
        finally:
            reg.close()
        figures |= _drift(bundle, reference, rows)
    return figures | {
        "goal_added_p50_us": 5,
        "goal_p99_on_over_off": 1.5,
        "goal_submit_per_s": 20_000,
        "goal_paced_dropped": 0,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
