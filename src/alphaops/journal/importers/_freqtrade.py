"""Import a freqtrade trade database (see :func:`import_freqtrade`)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from alphaops.core.errors import (
    DataFormatError,
    NotFoundError,
    UsageError,
)
from alphaops.core.timeframes import Timeframe
from alphaops.journal import _tables as tables
from alphaops.journal._journal import Journal
from alphaops.journal._records import Decision, Side
from alphaops.journal.importers._common import (
    DECISION_ID,
    Applier,
    ImportReport,
    PlannedFill,
    Skipped,
)
from alphaops.registry import ModelKey, parse_key

__all__ = ["import_freqtrade"]

_FT_FIX = "pass freqtrade's trade database (tradesv3.sqlite, or the file of db_url in its config)"
_FT_COLUMNS = {  # table: (required columns, optional columns: NULL when an old schema lacks them)
    "trades": ("id pair is_open fee_open fee_close", "enter_tag exit_reason is_short funding_fees"),
    "orders": (
        "id ft_trade_id ft_order_side ft_is_open order_id status side price average filled cost "
        "order_date order_filled_date",
        "ft_fee_base",
    ),
}


def import_freqtrade(
    journal: Journal,
    db_path: str | Path,
    *,
    book: str = "freqtrade",
    key: ModelKey | str | None = None,
    tolerance_bars: int = 1,
    dry_run: bool = False,
) -> ImportReport:
    """Import the filled orders of a freqtrade trade database (``tradesv3.sqlite``).

    The file is opened read-only. Each order freqtrade counts as filled (``filled > 0`` and
    no longer open, partial fills of cancelled orders included) becomes a fill: ``side``;
    ``filled``, less ``ft_fee_base`` on entries as freqtrade counts it; ``average``, else
    ``price``; at ``order_filled_date``, else ``order_date``; a fee of the trade's
    ``fee_open``/``fee_close`` ratio times ``cost``; exchange trade id ``ft-<orders.id>`` (so
    importing again adds only what is new); and on the last exit of a closed trade, the
    trade's ``funding_fees`` (freqtrade counts them received, the journal paid). The pairs
    ``BTC/USDT`` and ``BTC/USDT:USDT`` are the symbol ``BTCUSDT``.

    The first entry order of a trade must name the decision that opened the position:

    1. the decision id in ``enter_tag`` (``Prediction.decision_id`` or a client order id);
    2. else the latest journaled decision of the pair (and of model ``key``, if given) that
       acted (no shadow), with the entry's action (+1 long, -1 short), whose bar closed at
       most ``tolerance_bars`` bars before the order was placed: ``bar_time + bar <=
       order_date <= bar_time + (1 + tolerance_bars) * bar``, ``bar`` being the timeframe in
       the version's manifest.

    A trade with neither is skipped and listed in the report. Exits take the decision named
    in ``exit_reason``, else the opposite action by the same rule, else none; stop-loss
    orders take none. Later entries (position adjustments) match by time only. Open trades
    import what is filled so far. ``dry_run=True`` matches and counts, writing nothing.
    """
    if tolerance_bars < 0:
        raise UsageError(f"tolerance_bars={tolerance_bars}", fix="pass 0 or more bars")
    source = Path(db_path)
    trades, orders = _read_freqtrade(source)
    journal.flush()  # time matching reads the decisions a live predictor still queues
    matcher = _Matcher(journal, parse_key(key) if isinstance(key, str) else key, tolerance_bars)
    applier = Applier(journal, str(source), dry_run)
    planned: list[tuple[datetime, int, PlannedFill]] = []
    for trade in trades:
        filled = orders.get(trade["id"], [])
        applier.rows += len(filled)
        plan = _plan_trade(trade, filled, matcher, book) if filled else []
        if isinstance(plan, str):
            applier.skipped.append(Skipped(f"trade {trade['id']} ({trade['pair']})", plan))
        else:
            planned.extend(plan)
    for _, order_id, fill in sorted(planned, key=lambda item: item[:2]):
        applier.apply(fill, f"order {order_id}")
    return applier.report()


def _plan_trade(
    trade: dict[str, Any], orders: list[dict[str, Any]], matcher: _Matcher, book: str
) -> list[tuple[datetime, int, PlannedFill]] | str:
    symbol = trade["pair"].split(":")[0].replace("/", "").upper()
    sign = -1 if trade["is_short"] else 1
    entry_side: Side = "buy" if sign == 1 else "sell"
    plan: list[tuple[datetime, int, PlannedFill]] = []
    for order in sorted(orders, key=lambda o: (_ft_time(o, "order_filled_date"), o["id"])):
        at, placed = _ft_time(order, "order_filled_date"), _ft_time(order, "order_date")
        stop = order["ft_order_side"] == "stoploss"
        side: Side = "sell" if str(order["side"]).lower() == "sell" else "buy"
        entry = side == entry_side and not stop
        price = float(order["average"] or order["price"] or 0.0)
        decision: Decision | str | None = None
        if price <= 0:
            return f"its order {order['id']} has no price"
        if not plan and not entry:
            return f"its first filled order {order['id']} is not an entry"
        if not plan:
            decision = matcher.tagged(trade["enter_tag"], symbol)
            decision = decision or matcher.by_time(symbol, sign, placed)
            if not isinstance(decision, Decision):
                return decision or (
                    f"no {'BUY' if sign == 1 else 'SELL'} decision of {symbol} names or "
                    f"shortly precedes its entry order {order['id']} at {placed.isoformat()}"
                )
        elif not stop:
            decision = None if entry else matcher.tagged(trade["exit_reason"], symbol)
            if not isinstance(decision, Decision):
                decision = matcher.by_time(symbol, sign if entry else -sign, placed)
        qty = float(order["filled"]) - (float(order["ft_fee_base"] or 0.0) if entry else 0.0)
        ratio = float((trade["fee_open"] if entry else trade["fee_close"]) or 0.0)
        fill = PlannedFill(
            side=side,
            qty=qty,
            price=price,
            at=at,
            book=book,
            symbol=symbol,
            decision_id=decision.id if isinstance(decision, Decision) else None,
            fee=ratio * float(order["cost"] or qty * price),
            exchange_order_id=order["order_id"],
            exchange_trade_id=f"ft-{order['id']}",
            reason=str((trade["enter_tag"] if entry else trade["exit_reason"]) or ""),
        )
        plan.append((at, order["id"], fill))
    at, order_id, last = plan[-1]
    if not trade["is_open"] and trade["funding_fees"] and last.side != entry_side:
        plan[-1] = (at, order_id, replace(last, funding=-float(trade["funding_fees"])))
    return plan


class _Matcher:
    """Find the decision behind a freqtrade order: by the id in its tag, else by time."""

    def __init__(self, journal: Journal, model: ModelKey | None, tolerance_bars: int) -> None:
        self.journal, self.model, self.tolerance = journal, model, tolerance_bars
        self.acted: dict[str, list[tuple[datetime, timedelta, int, str]]] = {}

    def tagged(self, tag: str | None, symbol: str) -> Decision | str | None:
        """Return the decision named in ``tag``, why it cannot be used, or None if none is."""
        match = DECISION_ID.search(tag or "")
        if match is None:
            return None
        try:
            decision = self.journal.decision(match.group(1))
        except NotFoundError:
            return f"its tag {tag!r} names decision {match.group(1)}, which is not journaled"
        if decision.symbol != symbol:
            return f"its tag {tag!r} names decision {decision.id} of {decision.symbol}"
        return decision

    def by_time(self, symbol: str, action: int, placed: datetime) -> Decision | None:
        """Return the latest decision of ``action`` whose bar closed shortly before ``placed``."""
        for bar_time, bar, act, decision_id in reversed(self._acted_on(symbol)):
            if act == action and bar_time + bar <= placed <= bar_time + bar * (1 + self.tolerance):
                return self.journal.decision(decision_id)
        return None

    def _acted_on(self, symbol: str) -> list[tuple[datetime, timedelta, int, str]]:
        if symbol not in self.acted:
            bars = {
                (v.key.model_type, v.version): Timeframe.parse(v.manifest.data.timeframe).seconds
                for v in self.journal.registry.list_versions(symbol=symbol, all_statuses=True)
            }
            d = tables.decisions
            query = select(d.c.bar_time, d.c.model_type, d.c.version, d.c.action, d.c.id).where(
                d.c.symbol == symbol,
                d.c.action != 0,
                d.c.role != "shadow",
                d.c.bar_time.isnot(None),
            )
            if self.model is not None:
                query = query.where(d.c.symbol == self.model.symbol)
                query = query.where(d.c.model_type == self.model.model_type)
            with self.journal.database.read() as conn:
                rows = conn.execute(query.order_by(d.c.bar_time, d.c.at, d.c.id)).all()
            self.acted[symbol] = [
                (_aware(r[0]), timedelta(seconds=bars[r[1], r[2]]), r[3], r[4])
                for r in rows
                if (r[1], r[2]) in bars  # a version this registry never held cannot be timed
            ]
        return self.acted[symbol]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ft_time(order: dict[str, Any], column: str) -> datetime:
    value = order[column] or order["order_date"]  # freqtrade's own fallback for fill times
    try:
        return _aware(datetime.fromisoformat(str(value)))
    except ValueError:
        raise DataFormatError(
            f"freqtrade order {order['id']} has {column}={value!r}, which is not a time",
            fix="repair the order's dates in the database (freqtrade writes ISO-8601 times)",
        ) from None


def _read_freqtrade(path: Path) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    if not path.is_file():
        raise NotFoundError(f"no freqtrade database at {path}", fix=_FT_FIX)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)  # never writes
    conn.row_factory = sqlite3.Row
    try:
        picks = {table: _ft_columns(conn, path, table) for table in _FT_COLUMNS}
        trades = [dict(r) for r in conn.execute(f"SELECT {picks['trades']} FROM trades")]
        orders: dict[int, list[dict[str, Any]]] = {}
        for row in conn.execute(
            f"SELECT {picks['orders']} FROM orders WHERE filled > 0 AND lower(status) IN "
            "('closed', 'canceled', 'cancelled', 'expired') AND NOT coalesce(ft_is_open, 0)"
        ):
            orders.setdefault(row["ft_trade_id"], []).append(dict(row))
    except sqlite3.DatabaseError as exc:
        raise DataFormatError(
            f"{path} is not a readable SQLite database ({exc})", fix=_FT_FIX
        ) from None
    finally:
        conn.close()
    return sorted(trades, key=lambda t: t["id"]), orders


def _ft_columns(conn: sqlite3.Connection, path: Path, table: str) -> str:
    required, optional = (names.split() for names in _FT_COLUMNS[table])
    have = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
    if not have:
        raise DataFormatError(
            f"{path} has no {table!r} table: not a freqtrade database", fix=_FT_FIX
        )
    missing = [c for c in required if c not in have]
    if missing:
        raise DataFormatError(f"{path}: freqtrade's {table} table lacks {missing}", fix=_FT_FIX)
    return ", ".join(c if c in have else f"NULL AS {c}" for c in required + optional)
