"""Fills users already have come into the journal: a CSV of fills, and freqtrade's database.

Decisions are real: a LightGBM served by the LivePredictor on real BTCUSDT bars it never saw,
version 1 first, then version 2 after a promotion. The files to import are built from them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alphaops.core.errors import (
    DataFormatError,
    DataValidationError,
    NotFoundError,
)
from alphaops.data.candles import Candles
from alphaops.journal import (
    CSV_OPTIONAL,
    Decision,
    ImportReport,
    Journal,
    client_order_id,
    import_fills_csv,
    import_freqtrade,
)
from alphaops.registry import Registry
from alphaops.runtime import LivePredictor, bars_of

from .conftest import Market

KEY = "BTCUSDT/lightgbm"
WARM = 600
PER_VERSION = 200
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Served:
    """Journaled decisions and the close price of each decided bar."""

    decisions: list[Decision]
    close: dict[datetime, float]

    def first(self, action: int, version: int, after: datetime | None = None) -> Decision:
        for d in self.decisions:
            assert d.bar_time is not None
            if (d.action, d.version) == (action, version) and (after is None or d.bar_time > after):
                return d
        raise AssertionError(f"no decision {action:+d} of v{version} after {after}")

    def price(self, decision: Decision) -> float:
        assert decision.bar_time is not None
        return self.close[decision.bar_time]


def _serve(registry: Registry, journal: Journal, market: Market, versions: int = 2) -> Served:
    """Serve real bars through a LivePredictor: v1, then v2 after a promotion."""
    live = LivePredictor(registry, KEY, journal=journal, start=False, load_in="thread")
    head = market.unseen.frame.iloc[:WARM]
    live.warm_up(Candles.from_frame(head, symbol="BTCUSDT", timeframe="1h"))
    bars = bars_of(market.unseen)[WARM : WARM + versions * PER_VERSION]
    with live:
        for i, bar in enumerate(bars):
            if i == PER_VERSION:
                registry.promote(f"{KEY}/2", expect=1, reason="import tests: a second version")
                live.poll()
            live.on_bar(bar, routing_key=bar.timestamp_ms)
    assert journal.flush()
    decisions = journal.decisions(KEY)
    assert [d.version for d in decisions] == [1] * PER_VERSION + [2] * (len(bars) - PER_VERSION)
    close = {datetime.fromtimestamp(b.timestamp_ms / 1000, UTC): b.close for b in bars}
    return Served(decisions, close)


def _opens(decision: Decision) -> datetime:
    """When a bot acting on ``decision`` places its order: just after the decided bar closed."""
    assert decision.bar_time is not None
    return decision.bar_time + HOUR + timedelta(seconds=5)


def _write_csv(path: Path, header: str, rows: Iterable[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# -- CSV ------------------------------------------------------------------------------------


def test_a_csv_of_real_fills_becomes_round_trips_of_the_deciding_versions(
    registry: Registry, journal: Journal, market: Market, tmp_path: Path
) -> None:
    served = _serve(registry, journal, market)
    b1 = served.first(+1, 1)
    s1 = served.first(-1, 1, after=b1.bar_time)
    b2 = served.first(+1, 2)
    t1, t2, t3 = _opens(b1), _opens(s1), _opens(b2)
    path = _write_csv(
        tmp_path / "fills.csv",
        "Time,side,qty,price,fee,funding,symbol,decision_id,client_order_id,exchange_trade_id,reason",
        [
            f"{t1.isoformat().replace('+00:00', 'Z')},buy,0.5,{served.price(b1)},3.1,,,{b1.id},,X1,",
            f"{int(t2.timestamp() * 1000)},SELL,0.5,{served.price(s1)},3.2,,,,{client_order_id(s1.id)},X2,signal",
            f"{t3.isoformat()},Buy,0.2,{served.price(b2)},1.0,,,,{client_order_id(b2.id, 1)},,",
            f"{(t3 + 5 * HOUR).isoformat()},sell,0.2,{served.price(b2) * 0.98},1.0,0.7,BTCUSDT,,,,stop",
        ],
    )
    dry = import_fills_csv(journal, path, dry_run=True)
    assert (dry.rows, dry.imported, dry.duplicates, dry.round_trips, dry.dry_run) == (
        4,
        4,
        0,
        2,
        True,
    )
    assert journal.fills() == []
    assert "nothing written" in dry.summary()

    report = import_fills_csv(journal, path)
    assert (report.rows, report.imported, report.duplicates, report.round_trips) == (4, 4, 0, 2)
    assert (
        report.summary() == "fills.csv: 4 rows, 4 imported, 0 duplicates, 2 round trips, 0 skipped"
    )
    first, second = journal.round_trips(KEY)
    assert (first.version, first.entry_decision_id, first.exit_decision_id) == (1, b1.id, s1.id)
    assert first.gross_pnl == pytest.approx(0.5 * (served.price(s1) - served.price(b1)))
    assert first.fees == pytest.approx(6.3)
    assert (second.version, second.entry_decision_id, second.exit_decision_id) == (2, b2.id, None)
    assert second.funding == pytest.approx(0.7)
    assert [f.reason for f in journal.fills()] == ["", "signal", "", "stop"]
    assert journal.open_position("BTCUSDT") == 0.0

    # Importing the same file again changes nothing: every fill is a repeat.
    again = import_fills_csv(journal, path)
    assert (again.imported, again.duplicates, again.round_trips) == (0, 4, 0)
    assert len(journal.fills()) == 4
    assert len(journal.round_trips()) == 2


def test_bad_cells_refuse_the_whole_csv_naming_line_column_and_value(
    registry: Registry, journal: Journal, market: Market, tmp_path: Path
) -> None:
    served = _serve(registry, journal, market, versions=1)
    b1 = served.first(+1, 1)
    t = _opens(b1).isoformat()
    path = _write_csv(
        tmp_path / "bad.csv",
        "time,side,qty,price,decision_id,symbol",
        [
            f"{t},buy,1,100,{b1.id},",
            f"{t},sell,-1,101,,BTCUSDT",
            "2025-01-01T00:00:00,sell,1,101,,BTCUSDT",
            f"{t},long,1,101,,BTCUSDT",
            f"{t},sell,1,abc,,BTCUSDT",
            f"{t},sell,1,101,,",
            "1735689600,sell,1,101,,BTCUSDT",
        ],
    )
    with pytest.raises(DataValidationError) as caught:
        import_fills_csv(journal, path)
    message = str(caught.value)
    assert "6 bad rows, nothing imported" in message
    assert "line 3, column qty: '-1' is not a positive number" in message
    assert "line 4, column time: '2025-01-01T00:00:00' has no time zone" in message
    assert "line 5, column side: 'long'" in message
    assert "line 6, column price: 'abc'" in message
    assert "Fix:" in message
    problems = caught.value.details["problems"]
    assert problems[-2:] == [
        "line 7, column symbol: empty, and the row names no decision",
        "line 8, column time: '1735689600' looks like epoch seconds",
    ]
    assert journal.fills() == []


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("time,side,qty,price,notes", "unknown or repeated columns ['notes']"),
        ("time,side,qty,price,qty", "unknown or repeated columns ['qty', 'qty']"),
        ("time,side,qty,fee", "lacks the required columns ['price']"),
    ],
)
def test_a_csv_header_with_unknown_or_missing_columns_is_refused(
    journal: Journal, tmp_path: Path, header: str, needle: str
) -> None:
    path = _write_csv(tmp_path / "fills.csv", header, ["2025-01-01T00:00:00Z,buy,1,1,1"])
    with pytest.raises(DataFormatError, match="Fix:") as caught:
        import_fills_csv(journal, path)
    assert needle in str(caught.value)
    assert all(name in str(caught.value) for name in CSV_OPTIONAL)  # the accepted names
    assert journal.fills() == []


def test_a_fill_only_the_journal_can_refuse_stops_the_import_there_and_a_rerun_resumes(
    registry: Registry, journal: Journal, market: Market, tmp_path: Path
) -> None:
    served = _serve(registry, journal, market, versions=1)
    b1 = served.first(+1, 1)
    assert b1.bar_time is not None
    b2 = served.first(+1, 1, after=b1.bar_time + 6 * HOUR)
    t1, t2 = _opens(b1), _opens(b2)
    rows = [
        f"{t1.isoformat()},buy,1,{served.price(b1)},{b1.id},",
        f"{(t1 + 2 * HOUR).isoformat()},sell,1,{served.price(b1) + 50},,BTCUSDT",
        f"{t2.isoformat()},buy,1,{served.price(b2)},0123456789ab-ffff,",
        f"{(t2 + HOUR).isoformat()},sell,1,{served.price(b2) + 10},,BTCUSDT",
    ]
    header = "time,side,qty,price,decision_id,symbol"
    path = _write_csv(tmp_path / "fills.csv", header, rows)
    with pytest.raises(NotFoundError) as caught:
        import_fills_csv(journal, path)
    assert "line 4: no decision '0123456789ab-ffff'" in str(caught.value)
    assert "Fix:" in str(caught.value)
    partial = caught.value.details["report"]
    assert isinstance(partial, ImportReport)
    assert (partial.imported, partial.duplicates, partial.round_trips) == (2, 0, 1)
    assert len(journal.fills()) == 2  # what came before stays: each fill is its own commit

    rows[2] = rows[2].replace("0123456789ab-ffff", b2.id)
    report = import_fills_csv(journal, _write_csv(path, header, rows))
    assert (report.imported, report.duplicates, report.round_trips) == (2, 2, 1)
    assert [t.entry_decision_id for t in journal.round_trips(KEY)] == [b1.id, b2.id]


# -- freqtrade ------------------------------------------------------------------------------

# The columns and types of freqtrade's persistence models (freqtrade/persistence/
# trade_model.py), as SQLAlchemy creates them on SQLite: a subset, with some we never read.
FREQTRADE_SCHEMA = """
CREATE TABLE trades (
    id INTEGER NOT NULL PRIMARY KEY, exchange VARCHAR(25) NOT NULL, pair VARCHAR(25) NOT NULL,
    base_currency VARCHAR(25), stake_currency VARCHAR(25), is_open BOOLEAN NOT NULL,
    fee_open FLOAT NOT NULL, fee_open_cost FLOAT, fee_close FLOAT NOT NULL, fee_close_cost FLOAT,
    open_rate FLOAT, close_rate FLOAT, close_profit FLOAT, close_profit_abs FLOAT,
    stake_amount FLOAT NOT NULL, amount FLOAT, open_date DATETIME NOT NULL, close_date DATETIME,
    stop_loss FLOAT, exit_reason VARCHAR(100), strategy VARCHAR(100), enter_tag VARCHAR(100),
    timeframe INTEGER, trading_mode VARCHAR(7), leverage FLOAT, is_short BOOLEAN NOT NULL,
    interest_rate FLOAT NOT NULL, funding_fees FLOAT
);
CREATE TABLE orders (
    id INTEGER NOT NULL PRIMARY KEY, ft_trade_id INTEGER REFERENCES trades (id),
    ft_order_side VARCHAR(25) NOT NULL, ft_pair VARCHAR(25) NOT NULL, ft_is_open BOOLEAN NOT NULL,
    ft_amount FLOAT, ft_price FLOAT, order_id VARCHAR(255) NOT NULL, status VARCHAR(255),
    symbol VARCHAR(25), order_type VARCHAR(50), side VARCHAR(25), price FLOAT, average FLOAT,
    amount FLOAT, filled FLOAT, remaining FLOAT, cost FLOAT, stop_price FLOAT,
    order_date DATETIME, order_filled_date DATETIME, order_update_date DATETIME,
    ft_fee_base FLOAT, ft_order_tag VARCHAR(100),
    CONSTRAINT _order_pair_order_id UNIQUE (ft_pair, order_id)
);
"""
FEE = 0.001


def _naive(t: datetime) -> str:
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


@dataclass(frozen=True)
class FtOrder:
    ft_order_side: str  # buy, sell or stoploss
    side: str
    placed: datetime
    qty: float
    price: float
    status: str = "closed"


class FreqtradeDb:
    """A tradesv3.sqlite written the way freqtrade writes it (naive UTC times, 0/1 booleans)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.executescript(FREQTRADE_SCHEMA)
        conn.close()
        self.orders = 0

    def trade(
        self, trade_id: int, orders: list[FtOrder], *, pair: str = "BTC/USDT", short: bool = False,
        is_open: bool = False, enter_tag: str | None = None, exit_reason: str | None = None,
        funding_fees: float | None = None,
    ) -> None:  # fmt: skip
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "INSERT INTO trades (id, exchange, pair, is_open, fee_open, fee_close, open_rate,"
                " stake_amount, amount, open_date, exit_reason, strategy, enter_tag, timeframe,"
                " trading_mode, leverage, is_short, interest_rate, funding_fees)"
                " VALUES (?, 'binance', ?, ?, ?, ?, ?, ?, ?, ?, ?, 'AlphaOps', ?, 60, ?, 1.0, ?, 0.0, ?)",
                (trade_id, pair, int(is_open), FEE, FEE, orders[0].price,
                 orders[0].qty * orders[0].price, orders[0].qty, _naive(orders[0].placed),
                 exit_reason, enter_tag, "FUTURES" if ":" in pair else "SPOT", int(short),
                 funding_fees),
            )  # fmt: skip
            for order in orders:
                self.orders += 1
                done = order.status == "closed"  # filled; "canceled" here means unfilled
                conn.execute(
                    "INSERT INTO orders (id, ft_trade_id, ft_order_side, ft_pair, ft_is_open,"
                    " order_id, status, symbol, order_type, side, price, average, amount, filled,"
                    " remaining, cost, order_date, order_filled_date)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'limit', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.orders, trade_id, order.ft_order_side, pair, int(order.status == "open"),
                     f"EX{self.orders}", order.status, pair, order.side, order.price,
                     order.price if done else None, order.qty, order.qty if done else 0.0,
                     0.0 if done else order.qty, order.qty * order.price if done else 0.0,
                     _naive(order.placed),
                     _naive(order.placed + timedelta(seconds=2)) if done else None),
                )  # fmt: skip
        conn.close()

    def fingerprint(self) -> tuple[str, int]:
        return hashlib.sha256(self.path.read_bytes()).hexdigest(), self.path.stat().st_mtime_ns


@dataclass(frozen=True)
class Scenario:
    db: FreqtradeDb
    long_by_tag: tuple[Decision, Decision]  # entry (named in enter_tag), exit (matched by time)
    long_by_time: Decision
    short_by_tag: Decision
    open_by_tag: Decision
    open_qty: float


def _freqtrade_scenario(served: Served, path: Path) -> Scenario:
    db = FreqtradeDb(path)
    # 1. A long whose enter_tag is the decision id; it exits on the next SELL decision.
    b1 = served.first(+1, 1)
    s1 = served.first(-1, 1, after=b1.bar_time)
    db.trade(1, [
        FtOrder("buy", "buy", _opens(b1), 0.4, served.price(b1)),
        FtOrder("sell", "sell", _opens(b1) + HOUR, 0.4, served.price(b1) * 1.05, "canceled"),
        FtOrder("sell", "sell", _opens(s1), 0.4, served.price(s1)),
    ], enter_tag=b1.id, exit_reason="exit_signal")  # fmt: skip
    # 2. A long whose tag names no decision: matched by time; a stop-loss closes it.
    assert s1.bar_time is not None
    b2 = served.first(+1, 1, after=s1.bar_time + HOUR)
    db.trade(2, [
        FtOrder("buy", "buy", _opens(b2) + timedelta(seconds=25), 0.3, served.price(b2)),
        FtOrder("stoploss", "sell", _opens(b2) + 2 * HOUR, 0.3, served.price(b2) * 0.97),
    ], enter_tag="ema_cross", exit_reason="stoploss_on_exchange")  # fmt: skip
    # 3. A long no decision made (the model held on that bar): skipped.
    assert b2.bar_time is not None
    held = served.first(0, 1, after=b2.bar_time + 4 * HOUR)
    db.trade(3, [
        FtOrder("buy", "buy", _opens(held), 0.2, served.price(held)),
        FtOrder("sell", "sell", _opens(held) + HOUR, 0.2, served.price(held) * 1.01),
    ], enter_tag="manual")  # fmt: skip
    # 4. A futures short of version 2, tagged with its client order id; funding paid.
    sv2 = served.first(-1, 2)
    assert sv2.bar_time is not None
    flat = served.first(0, 2, after=sv2.bar_time + HOUR)
    db.trade(4, [
        FtOrder("sell", "sell", _opens(sv2), 0.25, served.price(sv2)),
        FtOrder("buy", "buy", _opens(flat), 0.25, served.price(flat)),
    ], pair="BTC/USDT:USDT", short=True, enter_tag=client_order_id(sv2.id),
       exit_reason="roi", funding_fees=-3.2)  # fmt: skip
    # 5. An open long of version 2: its entry is filled, its exit order still open.
    assert flat.bar_time is not None
    bv2 = served.first(+1, 2, after=flat.bar_time + HOUR)
    db.trade(5, [
        FtOrder("buy", "buy", _opens(bv2), 0.1, served.price(bv2)),
        FtOrder("sell", "sell", _opens(bv2) + HOUR, 0.1, served.price(bv2) * 1.1, "open"),
    ], is_open=True, enter_tag=f"alphaops:{bv2.id}")  # fmt: skip
    return Scenario(db, (b1, s1), b2, sv2, bv2, 0.1)


def _counts(report: ImportReport) -> tuple[int, int, int, int, int]:
    return (report.rows, report.imported, report.duplicates, report.round_trips,
            len(report.skipped))  # fmt: skip


def test_a_freqtrade_database_imports_as_round_trips_of_the_versions_that_decided(
    registry: Registry, journal: Journal, market: Market, tmp_path: Path
) -> None:
    served = _serve(registry, journal, market)
    scenario = _freqtrade_scenario(served, tmp_path / "tradesv3.sqlite")
    before = scenario.db.fingerprint()

    dry = import_freqtrade(journal, scenario.db.path, dry_run=True)
    assert _counts(dry) == (9, 7, 0, 3, 1)
    assert journal.fills() == []  # a dry run writes nothing
    other = import_freqtrade(journal, scenario.db.path, key="BTCUSDT/xgboost", dry_run=True)
    assert [s.what for s in other.skipped] == ["trade 2 (BTC/USDT)", "trade 3 (BTC/USDT)"]

    report = import_freqtrade(journal, scenario.db.path)
    assert _counts(report) == (9, 7, 0, 3, 1)
    (skipped,) = report.skipped
    assert skipped.what == "trade 3 (BTC/USDT)"
    assert "no BUY decision of BTCUSDT" in skipped.reason

    by_tag, by_time, short = journal.round_trips(KEY, book="freqtrade")
    b1, s1 = scenario.long_by_tag
    assert (by_tag.direction, by_tag.version, by_tag.role) == ("long", 1, "champion")
    assert (by_tag.entry_decision_id, by_tag.exit_decision_id, by_tag.exit_version) == (
        b1.id, s1.id, 1,
    )  # fmt: skip
    assert by_tag.qty == pytest.approx(0.4)
    assert by_tag.fees == pytest.approx(FEE * 0.4 * (served.price(b1) + served.price(s1)))
    assert (by_time.version, by_time.entry_decision_id) == (1, scenario.long_by_time.id)
    assert by_time.exit_decision_id is None
    assert by_time.exit_price == pytest.approx(served.price(scenario.long_by_time) * 0.97)
    assert (short.direction, short.version, short.entry_decision_id) == (
        "short", 2, scenario.short_by_tag.id,
    )  # fmt: skip
    assert short.exit_decision_id is None
    assert short.funding == pytest.approx(3.2)  # freqtrade's -3.2 received is 3.2 paid
    fills = journal.fills(book="freqtrade")
    assert [f.exchange_trade_id for f in fills] == [
        "ft-1",
        "ft-3",
        "ft-4",
        "ft-5",
        "ft-8",
        "ft-9",
        "ft-10",
    ]
    assert fills[3].reason == "stoploss_on_exchange"
    assert fills[-1].decision_id == scenario.open_by_tag.id
    assert journal.open_position("BTCUSDT", book="freqtrade") == pytest.approx(scenario.open_qty)

    # Importing again adds nothing; a dry run now sees only repeats.
    assert _counts(import_freqtrade(journal, scenario.db.path)) == (9, 0, 7, 0, 1)
    assert _counts(import_freqtrade(journal, scenario.db.path, dry_run=True)) == (9, 0, 7, 0, 1)
    assert len(journal.fills()) == 7
    assert len(journal.round_trips()) == 3
    assert scenario.db.fingerprint() == before  # opened read-only: same bytes, same mtime


def _not_freqtrade(path: Path, kind: str) -> None:
    if kind == "text":
        path.write_text("trade,pair\n1,BTC/USDT\n")
    elif kind != "missing":
        script = {
            "no trades": "CREATE TABLE orders (id INTEGER);",
            "old trades": "CREATE TABLE trades (id INTEGER); CREATE TABLE orders (id INTEGER);",
        }[kind]
        conn = sqlite3.connect(path)
        conn.executescript(script)
        conn.close()


@pytest.mark.parametrize(
    ("kind", "error", "needle"),
    [
        ("missing", NotFoundError, "no freqtrade database at"),
        ("text", DataFormatError, "not a readable SQLite database"),
        ("no trades", DataFormatError, "has no 'trades' table"),
        ("old trades", DataFormatError, "trades table lacks ['pair'"),
    ],
)
def test_a_file_that_is_not_a_freqtrade_database_is_refused_naming_it(
    journal: Journal, tmp_path: Path, kind: str, error: type[Exception], needle: str
) -> None:
    path = tmp_path / "tradesv3.sqlite"
    _not_freqtrade(path, kind)
    with pytest.raises(error) as caught:
        import_freqtrade(journal, path)
    assert needle in str(caught.value)
    assert str(path) in str(caught.value)
    assert "Fix: pass freqtrade's trade database" in str(caught.value)
    assert journal.fills() == []
