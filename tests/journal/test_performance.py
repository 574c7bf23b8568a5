"""Live performance and drift from the journal: measured as the backtest gate measures, set
beside the gate's figures, and acted on (an alarm pauses the rollout, blocks promotion).

Real LightGBM bundles on real candles they never saw, served by the LivePredictor; the
library path (services) and the CLI a person runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from alphaops.cli import main
from alphaops.core.config import load_config
from alphaops.core.home import AlphaOpsHome
from alphaops.data import CandleStore
from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec
from alphaops.gates.backtest import simulate
from alphaops.journal import Journal, JournalConfig
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import record_passing_gates
from alphaops.runtime import LivePredictor, Prediction, bars_of
from alphaops.services.gates import gate_run
from alphaops.services.journal import drift_of, performance_of
from alphaops.services.rollout import RolloutController
from alphaops.training import TrainingJob
from alphaops.training.executor import TrainedBundle, publish_trained, train_job

from .conftest import LABEL, Market

KEY = "BTCUSDT/lightgbm"
WARM = 600


@dataclass
class Served:
    home: AlphaOpsHome
    registry: Registry
    store: CandleStore
    market: Market


@pytest.fixture
def served(tmp_path: Path, trained: list[TrainedBundle], market: Market) -> Iterator[Served]:
    home = AlphaOpsHome(tmp_path / "home").ensure()
    store = CandleStore(home.data_dir)
    store.append(market.train)
    store.append(market.unseen)
    registry = open_registry(home)
    config = load_config(environ={}, home=home.root)
    for bundle in trained:
        ref = publish_trained(bundle, registry).ref
        gate_run(config, ref, champion=None)  # the real gates: their backtest figures recorded
    registry.promote(f"{KEY}/1", expect=None, reason="performance tests", force=True)
    yield Served(home, registry, store, market)
    registry.close()


def _serve(
    served: Served, journal: Journal, start: int, count: int, candles: Candles | None = None
) -> list[Prediction]:
    candles = candles or served.market.unseen
    with LivePredictor(
        served.registry, KEY, journal=journal, start=False, load_in="thread"
    ) as live:
        head = candles.frame.iloc[start - WARM : start]
        live.warm_up(Candles.from_frame(head, symbol="BTCUSDT", timeframe="1h"))
        bars = bars_of(candles)[start : start + count]
        out = [live.on_bar(b, routing_key=b.timestamp_ms) for b in bars]
    journal.flush()
    return out


def test_live_paper_figures_are_the_backtest_gates_figures_on_the_same_bars(
    served: Served,
) -> None:
    with Journal(served.registry) as journal:
        decided = _serve(served, journal, WARM, 300)
        report = performance_of(served.registry, journal, served.store, KEY)
    [row] = report.rows
    assert (row.ref, row.role, row.decisions.decisions) == (f"{KEY}/1", "champion", 300)
    # The gate's own simulator over the same closes and the same actions (long_flat, the
    # default policy's 15 bps) gives the same figures.
    close = served.market.unseen.frame["close"].to_numpy()[WARM : WARM + 301]
    actions = [p.action for p in decided] + [0]
    expected = simulate(close, np.maximum(actions, 0), cost=15 / 10_000, periods_per_year=365 * 24)
    assert row.decisions.bars == 300
    assert row.decisions.total_return == pytest.approx(expected.metrics["total_return"])
    assert row.decisions.sharpe == pytest.approx(expected.metrics["sharpe"])
    assert row.equity == pytest.approx(expected.equity.tolist())
    # Hit rate: non-HOLD decisions against the realised return over the label horizon.
    full = served.market.unseen.frame["close"].to_numpy()
    forward = full[WARM + LABEL.horizon : WARM + 300 + LABEL.horizon] / full[WARM : WARM + 300] - 1
    acts = np.array([p.action for p in decided])
    scored = acts != 0
    assert row.decisions.scored == int(scored.sum())
    assert row.decisions.hit_rate == pytest.approx(
        float(np.mean(np.sign(acts[scored]) == np.sign(forward[scored])))
    )
    # Side by side with what the backtest gate recorded for the version.
    assert row.backtest is not None
    assert row.divergence is not None
    assert row.divergence.live_bars == 300
    assert row.divergence.verdict in ("consistent", "worse", "better")


def test_trades_and_roles_are_reported_per_version(served: Served) -> None:
    controller = RolloutController(served.registry, actor="ops")
    controller.start(f"{KEY}/2", steps="shadow,50,100", reason="try v2", force=True)
    with Journal(served.registry) as journal:
        shadowed = _serve(served, journal, WARM, 20)
        controller.advance(KEY, reason="shadow ok")
        decided = _serve(served, journal, WARM + 20, 40)
        canary = [p for p in decided if p.role == "challenger"]
        for i, p in enumerate(canary[:4]):  # two v2 round trips: +2% then -1%
            t = int(served.market.unseen.timestamps_ms[WARM + 30]) + i * 3_600_000
            journal.record_fill(
                client_order_id=p.client_order_id(), side="buy" if i % 2 == 0 else "sell",
                qty=1.0, price=100.0 if i % 2 == 0 else (102.0 if i == 1 else 99.0),
                fee=0.1, at=t,
            )  # fmt: skip
        report = performance_of(served.registry, journal, served.store, KEY)
    rows = {(r.version, r.role): r for r in report.rows}
    assert rows[(2, "shadow")].decisions.decisions == 20
    assert rows[(1, "champion")].decisions.decisions == 20 + 40 - len(canary)
    assert rows[(2, "challenger")].decisions.decisions == len(canary)
    assert {p.version for p in shadowed} == {1}
    trades = rows[(2, "challenger")].trades
    assert (trades.trades, trades.win_rate) == (2, 0.5)
    assert trades.net_pnl == pytest.approx(2.0 - 1.0 - 0.4)
    assert trades.profit_factor == pytest.approx(1.8 / 1.2)
    assert trades.fees == pytest.approx(0.4)
    assert rows[(1, "champion")].trades.trades == 0


def test_drift_from_journaled_inputs_equals_drift_recomputed_from_the_candles(
    served: Served,
) -> None:
    with Journal(served.registry, JournalConfig(store_inputs=True)) as journal:
        _serve(served, journal, WARM, 400)
        stored = drift_of(served.registry, journal, served.store, KEY)
    assert stored.source == "journal"
    with Journal(served.registry) as journal:  # the same bars again, without inputs
        _serve(served, journal, WARM, 400)
        recomputed = drift_of(served.registry, journal, served.store, KEY)
    assert recomputed.source == "candles"
    assert recomputed.features.to_dict() == stored.features.to_dict()
    names = [f.name for f in served.registry.get(KEY, 1).manifest.features]
    assert [r.name for r in stored.features.rows] == names
    assert stored.bars == 400
    assert stored.worst in ("ok", "warn", "alarm")


def test_a_market_unlike_the_training_data_raises_an_alarm_that_pauses_the_rollout(
    served: Served, load_real: Callable[[str, str], Candles]
) -> None:
    # The models learned on 2025; the 2018 crash is another market altogether.
    crash = load_real("BTCUSDT", "1h").between("2018-01-01", "2018-03-01")
    served.store.append(crash)
    controller = RolloutController(served.registry, actor="ops")
    controller.start(f"{KEY}/2", steps="shadow,50,100", reason="try v2", force=True)
    with Journal(served.registry) as journal:
        _serve(served, journal, WARM, 500, candles=crash)
        quiet = drift_of(served.registry, journal, served.store, KEY)
        assert quiet.alarm is None  # reading never acts
        report = drift_of(served.registry, journal, served.store, KEY, record=True)
        events = journal.events(KEY)
    assert report.worst == "alarm"
    assert report.alarm is not None
    assert controller.active(KEY).phase == "paused"
    assert [e.severity for e in events] == ["alarm"]
    assert "volatility_24" in report.alarm.summary
    again = drift_of(served.registry, journal, served.store, KEY, record=True)
    assert again.alarm is not None
    assert again.alarm.id == report.alarm.id  # one open alarm per kind, not one per check


def test_the_cli_shows_stats_monitors_and_acknowledges(
    served: Served, capsys: pytest.CaptureFixture[str], load_real: Callable[[str, str], Candles]
) -> None:
    crash = load_real("BTCUSDT", "1h").between("2018-01-01", "2018-03-01")
    served.store.append(crash)
    with Journal(served.registry) as journal:
        _serve(served, journal, WARM, 400, candles=crash)
    record_passing_gates(served.registry, f"{KEY}/2")  # cleared: only the alarm can block it
    home = str(served.home.root)
    code = main(["--home", home, "journal", "stats", KEY, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    stats = json.loads(out)
    assert stats["versions"][0]["decisions"]["decisions"] == 400
    html = served.home.root / "perf.html"
    assert main(["--home", home, "journal", "stats", KEY, "--html", str(html)]) == 0
    text = capsys.readouterr().out
    assert "BTCUSDT/lightgbm/1 · champion · 400 decisions" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "data:image/png;base64," in html.read_text()
    assert main(["--home", home, "monitor", KEY, "--record", "--check"]) == 2
    text = capsys.readouterr().out
    assert "ALARM #1" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert main(["--home", home, "registry", "promote", f"{KEY}/2", "--expect", "1",
                 "--reason", "try"]) == 2  # fmt: skip
    capsys.readouterr()
    assert main(["--home", home, "alarm", "list", KEY, "--open", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["open"]
    assert main(["--home", home, "alarm", "ack", KEY, "--reason", "2018 is history"]) == 0
    capsys.readouterr()
    assert main(["--home", home, "registry", "promote", f"{KEY}/2", "--expect", "1",
                 "--reason", "reviewed"]) == 0  # fmt: skip


@pytest.mark.parametrize(
    ("symbol", "timeframe", "train_bars", "threshold"),
    [("SPX", "1d", 3000, 0.01), ("EURUSD", "1h", 4000, 0.001)],
)
def test_live_performance_works_on_daily_equities_and_fx(
    tmp_path: Path,
    load_real: Callable[[str, str], Candles],
    symbol: str,
    timeframe: str,
    train_bars: int,
    threshold: float,
) -> None:
    candles = load_real(symbol, timeframe)
    train = Candles.from_frame(candles.frame.iloc[:train_bars], symbol=symbol, timeframe=timeframe)
    job = TrainingJob(
        symbols=(symbol,), timeframe=timeframe, model="lightgbm", features=FeatureSpec.default(),
        label=LABEL.model_copy(update={"threshold": threshold}), params={"n_estimators": 30},
        seed=1,
    )  # fmt: skip
    home = AlphaOpsHome(tmp_path / "home").ensure()
    store = CandleStore(home.data_dir)
    store.append(candles)
    with open_registry(home) as registry, Journal(registry) as journal:
        version = publish_trained(train_job(job, {symbol: train}), registry)
        record_passing_gates(registry, version.ref)
        registry.promote(version.ref, expect=None, reason="other markets")
        key = f"{symbol}/lightgbm"
        with LivePredictor(registry, key, journal=journal, start=False, load_in="thread") as live:
            live.warm_up(Candles.from_frame(
                candles.frame.iloc[train_bars - WARM : train_bars], symbol=symbol,
                timeframe=timeframe,
            ))  # fmt: skip
            for bar in bars_of(candles)[train_bars : train_bars + 500]:
                live.on_bar(bar)
        journal.flush()
        report = performance_of(registry, journal, store, key)
        drift = drift_of(registry, journal, store, key)
    [row] = report.rows
    assert row.decisions.decisions == 500
    assert row.decisions.bars == 500  # weekends and holidays are held through, as in the gate
    assert math.isfinite(row.decisions.total_return)
    assert report.timeframe == timeframe
    assert drift.bars == 500
    assert drift.worst in ("ok", "warn", "alarm")


def test_the_cli_imports_a_csv_of_fills_dry_run_first(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    with Journal(served.registry) as journal:
        decided = _serve(served, journal, WARM, 3)
    t0 = int(served.market.unseen.timestamps_ms[WARM]) + 3_600_000
    csv = served.home.root / "fills.csv"
    csv.write_text(
        "time,side,qty,price,fee,client_order_id,exchange_trade_id\n"
        f"{t0},buy,0.01,60000,0.6,{decided[0].client_order_id()},X1\n"
        f"{t0 + 3_600_000},sell,0.01,60600,0.61,{decided[1].client_order_id()},X2\n"
    )
    home = str(served.home.root)
    assert main(["--home", home, "journal", "import-fills", str(csv), "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert (planned["imported"], planned["round_trips"], planned["dry_run"]) == (2, 1, True)
    assert main(["--home", home, "journal", "import-fills", str(csv)]) == 0
    assert "2 imported, 0 duplicates, 1 round trips" in capsys.readouterr().out
    with Journal(served.registry) as journal:
        [trip] = journal.round_trips(KEY)
    assert trip.net_pnl == pytest.approx(6.0 - 1.21)
    assert main(["--home", home, "journal", "import-fills", str(csv)]) == 0
    assert "0 imported, 2 duplicates" in capsys.readouterr().out
    missing = served.home.root / "nope.csv"
    assert main(["--home", home, "journal", "import-fills", str(missing)]) == 1
    assert "nope.csv" in capsys.readouterr().err
