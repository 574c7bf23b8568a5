"""The journal ties every live decision and fill to the exact version that made it.

A real LightGBM served by the LivePredictor a bot calls, fed real BTCUSDT bars it never saw,
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from alphaops.core.errors import (
    DataConflictError,
    DataValidationError,
    NotFoundError,
    UsageError,
)
from alphaops.data.candles import Candles
from alphaops.journal import Journal, JournalConfig, decision_of_order
from alphaops.registry import Registry
from alphaops.runtime import LivePredictor, Prediction, bars_of
from alphaops.services.rollout import RolloutController

from .conftest import Market

KEY = "BTCUSDT/lightgbm"
WARM = 600


def _serve(live: LivePredictor, market: Market, start: int, count: int) -> list[Prediction]:
    bars = bars_of(market.unseen)
    return [live.on_bar(bar, routing_key=bar.timestamp_ms) for bar in bars[start : start + count]]


def _predictor(registry: Registry, journal: Journal, market: Market) -> LivePredictor:
    live = LivePredictor(registry, KEY, journal=journal, start=False, load_in="thread")
    head = market.unseen.frame.iloc[:WARM]
    live.warm_up(Candles.from_frame(head, symbol="BTCUSDT", timeframe="1h"))
    return live


def test_every_live_decision_is_journaled_with_its_version_role_bar_and_input(
    registry: Registry, journal: Journal, market: Market
) -> None:
    with _predictor(registry, journal, market) as live:
        served = _serve(live, market, WARM, 40)
    assert journal.flush()
    rows = journal.decisions(KEY)
    assert journal.decisions(KEY, last=5) == rows[-5:]  # the newest five, oldest first
    sha = registry.get(KEY, 1).manifest_sha256
    assert [d.id for d in rows] == [p.decision_id for p in served]
    assert len({d.id for d in rows}) == 40
    bars = bars_of(market.unseen)[WARM : WARM + 40]
    for decision, prediction, bar in zip(rows, served, bars, strict=True):
        assert (decision.version, decision.role, decision.manifest_sha256) == (1, "champion", sha)
        assert decision.bar_time == datetime.fromtimestamp(bar.timestamp_ms / 1000, UTC)
        assert decision.routing_key == str(bar.timestamp_ms)
        assert decision.action == prediction.action
        assert decision.probabilities == prediction.probabilities
        assert decision.rollout_id is None
        assert decision.input_row is None
    # The same bars give the same input hashes; different bars give different ones.
    assert len({d.input_sha256 for d in rows}) == 40
    with Journal(registry) as second, _predictor(registry, second, market) as again:
        _serve(again, market, WARM, 40)
        second.flush()
    hashes = [d.input_sha256 for d in journal.decisions(KEY)]
    assert hashes[40:] == hashes[:40]
    assert journal.writer_stats().dropped == 0


def test_a_position_opened_by_v1_and_closed_after_the_swap_to_v2_is_v1s_trade(
    registry: Registry, journal: Journal, market: Market
) -> None:
    with _predictor(registry, journal, market) as live:
        entry = _serve(live, market, WARM, 1)[0]
        t0 = datetime.fromtimestamp(market.unseen.timestamps_ms[WARM] / 1000, UTC)
        opened = journal.record_fill(
            client_order_id=entry.client_order_id(), side="buy", qty=0.5, price=60_000.0,
            fee=12.0, at=t0 + timedelta(hours=1), exchange_trade_id="T1",
        )  # fmt: skip
        assert opened.round_trip is None
        assert journal.open_position("BTCUSDT") == 0.5
        registry.promote(f"{KEY}/2", expect=1, reason="swap while a position is open")
        live.poll()
        exit_decision = _serve(live, market, WARM + 1, 1)[0]
    assert exit_decision.version == 2
    closed = journal.record_fill(
        client_order_id=exit_decision.client_order_id(), side="sell", qty=0.5, price=61_000.0,
        fee=12.2, funding=1.5, at=t0 + timedelta(hours=2), exchange_trade_id="T2",
    )  # fmt: skip
    trip = closed.round_trip
    assert trip is not None
    assert (trip.ref, trip.role, trip.exit_version, trip.exit_role) == (
        f"{KEY}/1", "champion", 2, "champion",
    )  # fmt: skip
    assert trip.entry_decision_id == entry.decision_id
    assert trip.exit_decision_id == exit_decision.decision_id
    assert trip.gross_pnl == pytest.approx(500.0)
    assert trip.net_pnl == pytest.approx(500.0 - 24.2 - 1.5)
    assert trip.net_return == pytest.approx((500.0 - 25.7) / 30_000.0)
    assert journal.round_trips(KEY, version=1) == [trip]
    assert journal.round_trips(KEY, version=2) == []
    assert journal.open_position("BTCUSDT") == 0.0


def test_shadow_decisions_are_journaled_for_the_challenger_that_never_acted(
    registry: Registry, journal: Journal, market: Market
) -> None:
    record = RolloutController(registry, actor="tester").start(
        f"{KEY}/2", steps="shadow", reason="watch v2 in shadow"
    )
    with _predictor(registry, journal, market) as live:
        served = _serve(live, market, WARM, 10)
    journal.flush()
    assert {p.version for p in served} == {1}
    shadow = journal.decisions(KEY, role="shadow")
    acted = journal.decisions(KEY, role="champion")
    assert len(shadow) == len(acted) == 10
    assert {d.version for d in shadow} == {2}
    assert {d.rollout_id for d in shadow + acted} == {record.id}
    # The shadow decision scored the very same input as the champion's.
    assert [d.input_sha256 for d in shadow] == [d.input_sha256 for d in acted]
    assert [d.bar_time for d in shadow] == [d.bar_time for d in acted]


def test_inputs_are_stored_only_when_asked(registry: Registry, market: Market) -> None:
    with Journal(registry, JournalConfig(store_inputs=True)) as journal:
        with _predictor(registry, journal, market) as live:
            _serve(live, market, WARM, 3)
        journal.flush()
        rows = journal.decisions(KEY)
    names = registry.get(KEY, 1).manifest.features
    assert all(d.input_row is not None and len(d.input_row) == len(names) for d in rows)


def _opened(journal: Journal, registry: Registry, market: Market) -> tuple[str, datetime]:
    with _predictor(registry, journal, market) as live:
        decision = _serve(live, market, WARM, 1)[0]
    assert decision.decision_id is not None
    t = datetime(2025, 6, 1, 12, tzinfo=UTC)
    journal.record_fill(
        decision_id=decision.decision_id, side="buy", qty=1.0, price=100.0, at=t,
        exchange_trade_id="A1",
    )  # fmt: skip
    return decision.decision_id, t


@pytest.mark.parametrize(
    ("change", "error", "needle"),
    [
        ({"decision_id": "0123456789ab-ffff"}, NotFoundError, "no decision"),
        ({"qty": -1.0}, DataValidationError, "qty=-1.0"),
        ({"qty": 0.0}, DataValidationError, "qty=0.0"),
        ({"price": float("nan")}, DataValidationError, "price=nan"),
        ({"fee": float("inf")}, DataValidationError, "fee=inf"),
        ({"at": datetime(2025, 6, 1, 13)}, DataValidationError, "no time zone"),
        ({"at": datetime(2025, 6, 1, 11, tzinfo=UTC)}, DataValidationError, "older than"),
        ({"qty": 3.0}, DataValidationError, "two fills"),
        ({"exchange_trade_id": "A1"}, DataConflictError, "already journaled"),
        ({"side": "short"}, DataValidationError, "side='short'"),
    ],
)
def test_bad_fills_are_refused_with_the_value_and_nothing_is_written(
    registry: Registry, journal: Journal, market: Market,
    change: dict[str, object], error: type[Exception], needle: str,
) -> None:  # fmt: skip
    decision_id, t = _opened(journal, registry, market)
    fill = {
        "decision_id": decision_id, "side": "sell", "qty": 1.0, "price": 101.0,
        "at": t + timedelta(hours=1), "exchange_trade_id": "A2",
    } | change  # fmt: skip
    before = (len(journal.fills()), len(journal.round_trips()))
    with pytest.raises(error, match=needle) as caught:
        journal.record_fill(**fill)  # type: ignore[arg-type]
    assert "Fix:" in str(caught.value)
    assert (len(journal.fills()), len(journal.round_trips())) == before
    assert journal.open_position("BTCUSDT") == 1.0


def test_an_exact_repeat_of_a_fill_is_ignored_and_an_unattributed_open_refused(
    registry: Registry, journal: Journal, market: Market
) -> None:
    decision_id, t = _opened(journal, registry, market)
    again = journal.record_fill(
        decision_id=decision_id, side="buy", qty=1.0, price=100.0, at=t, exchange_trade_id="A1"
    )
    assert again.duplicate
    assert len(journal.fills()) == 1
    with pytest.raises(DataValidationError, match="names no decision"):
        journal.record_fill(side="buy", qty=1.0, price=1.0, at=t, symbol="ETHUSDT")
    with pytest.raises(UsageError, match="needs its symbol"):
        journal.record_fill(side="sell", qty=1.0, price=1.0, at=t)
    # A stop-loss close needs no decision; partial exits add up to one round trip.
    journal.record_fill(side="sell", qty=0.4, price=98.0, at=t + timedelta(1), symbol="BTCUSDT")
    trip = journal.record_fill(
        side="sell", qty=0.6, price=97.0, at=t + timedelta(2), symbol="BTCUSDT", reason="stop"
    ).round_trip
    assert trip is not None
    assert trip.exit_decision_id is None
    assert trip.exit_price == pytest.approx(0.4 * 98 + 0.6 * 97)
    assert trip.net_pnl == pytest.approx(-2.6)
    assert decision_of_order(f"ao-{decision_id}-3") == decision_id


def test_journal_rows_are_append_only(registry: Registry, journal: Journal, market: Market) -> None:
    _opened(journal, registry, market)
    for table in ("decisions", "fills"):
        for statement in (f"UPDATE {table} SET symbol = 'X'", f"DELETE FROM {table}"):
            with pytest.raises(Exception, match="append-only"), registry.database.write() as c:
                c.execute(text(statement))
    assert len(journal.fills()) == 1


def test_a_full_queue_drops_and_counts_decisions_instead_of_blocking(
    registry: Registry, market: Market
) -> None:
    # The writer sleeps for an hour between commits: the queue fills up.
    config = JournalConfig(queue_rows=5, flush_interval_s=3600)
    with Journal(registry, config) as journal:
        with _predictor(registry, journal, market) as live:
            served = _serve(live, market, WARM, 20)
        assert all(p.decision_id for p in served)  # the bot got every prediction
        dropped = [e for e in live.events if e.kind == "journal_dropped"]
        stats = journal.writer_stats()
        assert (stats.dropped, stats.queued, stats.written) == (15, 5, 0)
        assert len(dropped) == 1  # the first drop is an event, not every one
        assert "queue full" in dropped[0].detail
        assert journal.flush()
        assert journal.writer_stats().written == 5
        assert [d.id for d in journal.decisions(KEY)] == [p.decision_id for p in served[:5]]


def test_a_repeated_fill_without_trade_id_but_other_fee_is_a_conflict_naming_it(
    registry: Registry, journal: Journal, market: Market
) -> None:
    _, t = _opened(journal, registry, market)
    fill = {"symbol": "BTCUSDT", "side": "sell", "qty": 0.5, "price": 101.0, "at": t}
    journal.record_fill(**fill, fee=0.1)  # type: ignore[arg-type]
    with pytest.raises(DataConflictError, match="no exchange trade id") as caught:
        journal.record_fill(**fill, fee=0.2)  # type: ignore[arg-type]
    assert "fee 0.1" in str(caught.value)
    assert len(journal.fills()) == 2
