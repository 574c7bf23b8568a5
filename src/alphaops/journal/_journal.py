"""The journal: every decision, fill and round trip, tied to the exact model version.

>>> import tempfile, pathlib
>>> from datetime import UTC, datetime
>>> from alphaops.registry import open_registry
>>> reg = open_registry(pathlib.Path(tempfile.mkdtemp()) / "home")
>>> journal = Journal(reg)
>>> t = datetime(2025, 1, 1, tzinfo=UTC)
>>> journal.write_decisions([Decision("0123456789ab-1", t, t, "BTCUSDT", "lightgbm", 3,
...     "0" * 64, "champion", None, None, 1, (0.1, 0.2, 0.7), "0" * 32)])
1
>>> _ = journal.record_fill(decision_id="0123456789ab-1", side="buy", qty=1, price=100, at=t)
>>> trip = journal.record_fill(side="sell", qty=1, price=110, at=t, symbol="BTCUSDT",
...     reason="take profit").round_trip
>>> trip.ref, trip.net_pnl, trip.exit_decision_id
('BTCUSDT/lightgbm/3', 10.0, None)
>>> journal.close(); reg.close()
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, func, insert, select, text

from alphaops.core.errors import (
    DataConflictError,
    DataValidationError,
    NotFoundError,
    UsageError,
)
from alphaops.journal import _tables as tables
from alphaops.journal._positions import OpenFill, check_fill, close_out, position_of
from alphaops.journal._records import (
    Decision,
    Fill,
    MonitorEvent,
    RoundTrip,
    decision_of_order,
)
from alphaops.journal._sink import ProcessWriter
from alphaops.journal._writer import JournalConfig, JournalWriter, PendingDecision, WriterStats
from alphaops.registry import ModelKey, Registry, parse_key

__all__ = ["FillResult", "Journal"]

Moment = datetime | int | float
"""An aware datetime, or epoch milliseconds."""


@dataclass(frozen=True)
class FillResult:
    """What recording a fill did: the fill, the round trip it closed, whether it was a repeat."""

    fill: Fill
    round_trip: RoundTrip | None
    duplicate: bool = False


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _moment(value: Moment, what: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise DataValidationError(
                f"{what} {value.isoformat()} has no time zone",
                fix="pass an aware datetime (e.g. tzinfo=UTC) or epoch milliseconds",
            )
        return value.astimezone(UTC)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataValidationError(
            f"{what} {value!r} is not a time", fix="pass an aware datetime or epoch milliseconds"
        )
    try:
        return datetime.fromtimestamp(value / 1000.0, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise DataValidationError(
            f"{what} {value!r} is out of range as epoch milliseconds",
            fix="pass epoch milliseconds (e.g. 1735689600000) or an aware datetime",
        ) from exc


def _number(value: float, what: str, *, positive: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (positive and number <= 0):
        need = "a positive number" if positive else "a finite number"
        raise DataValidationError(f"{what}={value!r} is not {need}", fix=f"pass {need}")
    return number


class Journal:
    """Decisions, fills and round trips in ``registry``'s database (append-only tables).

    Decisions from a :class:`~alphaops.runtime.LivePredictor` go through a background writer
    (see :class:`JournalConfig`); fills are written at once, in one transaction with the
    round trip they close. Close the journal (or use it as a context manager) to commit what
    is still queued.
    """

    def __init__(
        self,
        registry: Registry,
        config: JournalConfig | None = None,
        *,
        actor: str | None = None,
    ) -> None:
        self.registry = registry
        self.database = registry.database
        self.config = config or JournalConfig()
        self.actor = actor or registry.actor
        self._writer: JournalWriter | ProcessWriter | None = None

    # -- decisions -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer now (idempotent) rather than on the first decision, so that the
        first prediction does not pay for a thread (or a writer process) starting."""
        if self._writer is None:
            self._writer = self._new_writer()

    def submit(self, item: PendingDecision) -> bool:
        """Queue one decision for the background writer; never blocks, False if dropped."""
        writer = self._writer
        if writer is None:
            writer = self._writer = self._new_writer()
        return writer.submit(item)

    def _new_writer(self) -> JournalWriter | ProcessWriter:
        in_memory = self.database.url in ("sqlite://", "sqlite:///:memory:")
        if self.config.writer == "process" and not in_memory:
            return ProcessWriter(self.database, self.config)
        return JournalWriter(self.database, self.config)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Commit every queued decision; return False if the database did not take them."""
        return True if self._writer is None else self._writer.flush(timeout_s)

    def writer_stats(self) -> WriterStats:
        """Return what the background writer did (written, dropped, queued, failures)."""
        if self._writer is None:
            return WriterStats(0, 0, 0, 0, None)
        return self._writer.stats()

    def close(self) -> None:
        """Commit what is queued and stop the writer (the registry stays open)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_decisions(self, decisions: Iterable[Decision]) -> int:
        """Write decisions at once, in one transaction (importers and tests); return the count."""
        rows = [
            {
                "id": d.id,
                "at": _utc(d.at),
                "bar_time": None if d.bar_time is None else _utc(d.bar_time),
                "symbol": d.symbol,
                "model_type": d.model_type,
                "version": d.version,
                "manifest_sha256": d.manifest_sha256,
                "role": d.role,
                "rollout_id": d.rollout_id,
                "routing_key": d.routing_key,
                "action": d.action,
                "probabilities": list(d.probabilities),
                "input_sha256": d.input_sha256,
                "input_row": None if d.input_row is None else list(d.input_row),
            }
            for d in decisions
        ]
        if rows:
            with self.database.write() as conn:
                conn.execute(insert(tables.decisions), rows)
        return len(rows)

    def decision(self, decision_id: str) -> Decision:
        """Return one decision (flushing the writer first if it is not committed yet)."""
        with self.database.read() as conn:
            row = self._decision_row(conn, decision_id)
        if row is None and self.flush():
            with self.database.read() as conn:
                row = self._decision_row(conn, decision_id)
        if row is None:
            raise NotFoundError(
                f"no decision {decision_id!r} in the journal",
                fix="pass the decision_id of a journaled prediction (Prediction.decision_id)",
            )
        return _decision(row)

    def decisions(
        self,
        key: ModelKey | str,
        *,
        version: int | None = None,
        role: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        last: int | None = None,
    ) -> list[Decision]:
        """Return the decisions of a model, oldest first (filtered by version, role, time;
        ``last``: only the newest N, read as such rather than the whole journal)."""
        key = parse_key(key) if isinstance(key, str) else key
        d = tables.decisions
        query = select(d).where(d.c.symbol == key.symbol, d.c.model_type == key.model_type)
        if version is not None:
            query = query.where(d.c.version == version)
        if role is not None:
            query = query.where(d.c.role == role)
        if since is not None:
            query = query.where(d.c.at >= _moment(since, "since"))
        if until is not None:
            query = query.where(d.c.at < _moment(until, "until"))
        if last is not None:
            if last < 1:
                raise UsageError(f"last={last}", fix="pass a positive number of decisions")
            query = query.order_by(d.c.at.desc(), d.c.id.desc()).limit(last)
            with self.database.read() as conn:
                return [_decision(row) for row in reversed(conn.execute(query).all())]
        query = query.order_by(d.c.at, d.c.id)
        with self.database.read() as conn:
            return [_decision(row) for row in conn.execute(query)]

    def count_decisions(self, key: ModelKey | str | None = None) -> int:
        """Return how many decisions are committed (of one model, or all)."""
        d = tables.decisions
        query = select(func.count()).select_from(d)
        if key is not None:
            key = parse_key(key) if isinstance(key, str) else key
            query = query.where(d.c.symbol == key.symbol, d.c.model_type == key.model_type)
        with self.database.read() as conn:
            return int(conn.execute(query).scalar_one())

    @staticmethod
    def _decision_row(conn: Connection, decision_id: str) -> Row[Any] | None:
        d = tables.decisions
        return conn.execute(select(d).where(d.c.id == decision_id)).first()

    # -- fills and round trips -------------------------------------------------------------

    def record_fill(
        self,
        *,
        side: Literal["buy", "sell"],
        qty: float,
        price: float,
        at: Moment,
        decision_id: str | None = None,
        client_order_id: str | None = None,
        fee: float = 0.0,
        funding: float = 0.0,
        book: str = "default",
        symbol: str | None = None,
        exchange_order_id: str | None = None,
        exchange_trade_id: str | None = None,
        reason: str = "",
    ) -> FillResult:
        """Record one execution; return it with the round trip it closed, if any.

        The decision is ``decision_id`` or the one named by an alphaops ``client_order_id``
        (:func:`~alphaops.journal.client_order_id`). A fill that opens a position needs its
        decision; one that reduces it may have none (a stop, a manual close: say why in
        ``reason``). Reporting the same fill twice (same exchange trade id and figures, or the
        same figures without one) is ignored; the same exchange trade id with other figures,
        a fill for an unknown decision, a non-positive quantity or price, a fill older than
        the position's last, and a fill that flips the position are refused with a typed
        error, and nothing is written.
        """
        if side not in ("buy", "sell"):
            raise DataValidationError(f"side={side!r}", fix="pass 'buy' or 'sell'")
        qty = _number(qty, "qty", positive=True)
        price = _number(price, "price", positive=True)
        fee = _number(fee, "fee", positive=False)
        funding = _number(funding, "funding", positive=False)
        when = _moment(at, "fill time")
        if decision_id is None and client_order_id is not None:
            decision_id = decision_of_order(client_order_id)
        decision = None if decision_id is None else self.decision(decision_id)
        if decision is not None:
            if symbol is not None and symbol != decision.symbol:
                raise DataValidationError(
                    f"fill for {symbol} names decision {decision.id} of {decision.symbol}",
                    fix="report the fill with the decision that placed its order",
                )
            symbol = decision.symbol
        if symbol is None:
            raise UsageError(
                "a fill without a decision needs its symbol",
                fix="pass symbol=… (or decision_id / an alphaops client_order_id)",
            )
        values: dict[str, Any] = {
            "book": book,
            "symbol": symbol,
            "decision_id": decision_id,
            "client_order_id": client_order_id,
            "at": when,
            "side": side,
            "qty": qty,
            "price": price,
            "fee": fee,
            "funding": funding,
            "exchange_order_id": exchange_order_id,
            "exchange_trade_id": exchange_trade_id,
            "reason": reason,
        }
        values["fill_key"] = _fill_key(values)
        with self.database.write() as conn:
            if self.database.dialect == "postgresql":  # one writer per position at a time
                lock = zlib.crc32(f"{book}\0{symbol}".encode())
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            repeat = self._repeat(conn, values)
            if repeat is not None:
                return FillResult(repeat, None, duplicate=True)
            open_fills = self._open_fills(conn, book, symbol)
            probe = OpenFill(0, when, side, qty, price, fee, funding, decision_id)
            change = check_fill(open_fills, probe)
            if change.opens and decision is None:
                raise DataValidationError(
                    f"a {side} of {qty:g} {symbol} opens a position but names no decision",
                    fix="pass the decision_id (or alphaops client_order_id) that placed it",
                )
            values["recorded_at"] = datetime.now(UTC)
            new = conn.execute(insert(tables.fills).values(**values)).inserted_primary_key
            fill_id = int(new[0])  # type: ignore[index]
            fill = Fill(id=fill_id, **{k: v for k, v in values.items() if k in _FILL_FIELDS})
            trip = None
            if change.closes:
                trip = self._close(conn, book, symbol, [*open_fills, _open(fill)], decision)
            return FillResult(fill, trip)

    def _repeat(self, conn: Connection, values: Mapping[str, Any]) -> Fill | None:
        f = tables.fills
        row = conn.execute(select(f).where(f.c.fill_key == values["fill_key"])).first()
        if row is None:
            return None
        existing = _fill(row)
        same = all(
            getattr(existing, k) == (_utc(v) if isinstance(v, datetime) else v)
            for k, v in values.items()
            if k in _FILL_FIELDS
        )
        if not same:
            what = (
                f"exchange trade {values['exchange_trade_id']!r}"
                if values["exchange_trade_id"] is not None
                else f"the same {values['side']} of {values['qty']:g} @ {values['price']:g} at "
                f"{values['at'].isoformat()} (no exchange trade id)"
            )
            raise DataConflictError(
                f"{what} of {values['symbol']} is already journaled with other figures (fill "
                f"{existing.id}: fee {existing.fee:g}, funding {existing.funding:g}, reason "
                f"{existing.reason!r})",
                fix="report each fill once, with the exchange's figures (and its trade id)",
            )
        return existing

    @staticmethod
    def _open_fills(conn: Connection, book: str, symbol: str) -> list[OpenFill]:
        f, r = tables.fills, tables.round_trips
        last = conn.execute(
            select(func.max(r.c.last_fill_id)).where(r.c.book == book, r.c.symbol == symbol)
        ).scalar()
        query = select(f).where(f.c.book == book, f.c.symbol == symbol)
        if last is not None:
            query = query.where(f.c.id > last)
        return [_open(_fill(row)) for row in conn.execute(query.order_by(f.c.id))]

    def _close(
        self,
        conn: Connection,
        book: str,
        symbol: str,
        fills: list[OpenFill],
        exit_decision: Decision | None,
    ) -> RoundTrip:
        closed = close_out(fills)
        entry_id = fills[0].decision_id
        assert entry_id is not None  # an opening fill always names its decision
        row = self._decision_row(conn, entry_id)
        assert row is not None  # fills reference decisions by foreign key
        entry = _decision(row)
        values: dict[str, Any] = {
            "book": book,
            "symbol": symbol,
            "direction": closed.direction,
            "qty": closed.qty,
            "opened_at": fills[0].at,
            "closed_at": fills[-1].at,
            "entry_price": closed.entry_price,
            "exit_price": closed.exit_price,
            "gross_pnl": closed.gross_pnl,
            "fees": closed.fees,
            "funding": closed.funding,
            "net_pnl": closed.net_pnl,
            "net_return": closed.net_return,
            "first_fill_id": fills[0].id,
            "last_fill_id": fills[-1].id,
            "entry_decision_id": entry.id,
            "exit_decision_id": None if exit_decision is None else exit_decision.id,
            "model_type": entry.model_type,
            "version": entry.version,
            "role": entry.role,
            "exit_version": None if exit_decision is None else exit_decision.version,
            "exit_role": None if exit_decision is None else exit_decision.role,
        }
        trip_id = conn.execute(insert(tables.round_trips).values(**values)).inserted_primary_key
        return RoundTrip(id=int(trip_id[0]), **values)  # type: ignore[index]

    def open_position(self, symbol: str, *, book: str = "default") -> float:
        """Return the signed open position of ``book`` in ``symbol`` (0.0 when flat)."""
        with self.database.read() as conn:
            return position_of(self._open_fills(conn, book, symbol))

    def fills(self, *, book: str | None = None, symbol: str | None = None) -> list[Fill]:
        """Return fills in the order they were recorded."""
        f = tables.fills
        query = select(f)
        if book is not None:
            query = query.where(f.c.book == book)
        if symbol is not None:
            query = query.where(f.c.symbol == symbol)
        with self.database.read() as conn:
            return [_fill(row) for row in conn.execute(query.order_by(f.c.id))]

    def round_trips(
        self,
        key: ModelKey | str | None = None,
        *,
        version: int | None = None,
        role: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        last: int | None = None,
        book: str | None = None,
    ) -> list[RoundTrip]:
        """Return round trips by close time (of a model, version and role; the ``last`` N)."""
        r = tables.round_trips
        query = select(r)
        if key is not None:
            key = parse_key(key) if isinstance(key, str) else key
            query = query.where(r.c.symbol == key.symbol, r.c.model_type == key.model_type)
        if version is not None:
            query = query.where(r.c.version == version)
        if role is not None:
            query = query.where(r.c.role == role)
        if book is not None:
            query = query.where(r.c.book == book)
        if since is not None:
            query = query.where(r.c.closed_at >= _moment(since, "since"))
        if until is not None:
            query = query.where(r.c.closed_at < _moment(until, "until"))
        if last is not None:
            if last < 1:
                raise UsageError(f"last={last}", fix="pass a positive number of trades")
            query = query.order_by(r.c.closed_at.desc(), r.c.id.desc()).limit(last)
            with self.database.read() as conn:
                return [_trip(row) for row in reversed(conn.execute(query).all())]
        with self.database.read() as conn:
            return [_trip(row) for row in conn.execute(query.order_by(r.c.closed_at, r.c.id))]

    # -- monitor events ----------------------------------------------------------------------

    def record_event(
        self,
        key: ModelKey | str,
        kind: str,
        severity: Literal["info", "warn", "alarm"],
        detail: Mapping[str, object],
        *,
        version: int | None = None,
        at: datetime | None = None,
    ) -> MonitorEvent:
        """Journal something a monitor found (e.g. ``kind="feature_drift"``)."""
        key = parse_key(key) if isinstance(key, str) else key
        if severity not in ("info", "warn", "alarm"):
            raise UsageError(f"severity={severity!r}", fix="pass 'info', 'warn' or 'alarm'")
        values = {
            "at": _utc(at) if at is not None else datetime.now(UTC),
            "symbol": key.symbol,
            "model_type": key.model_type,
            "version": version,
            "kind": kind,
            "severity": severity,
            "detail": dict(detail),
            "actor": self.actor,
        }
        with self.database.write() as conn:
            new = conn.execute(insert(tables.monitor_events).values(**values)).inserted_primary_key
        return MonitorEvent(id=int(new[0]), **values)  # type: ignore[index, arg-type]

    def events(self, key: ModelKey | str, *, kind: str | None = None) -> list[MonitorEvent]:
        """Return the monitor events of a model, oldest first."""
        key = parse_key(key) if isinstance(key, str) else key
        e = tables.monitor_events
        query = select(e).where(e.c.symbol == key.symbol, e.c.model_type == key.model_type)
        if kind is not None:
            query = query.where(e.c.kind == kind)
        with self.database.read() as conn:
            return [
                MonitorEvent(**{**row._asdict(), "at": _utc(row.at)})
                for row in conn.execute(query.order_by(e.c.id))
            ]


_FILL_FIELDS = (
    "book",
    "symbol",
    "decision_id",
    "client_order_id",
    "at",
    "side",
    "qty",
    "price",
    "fee",
    "funding",
    "exchange_order_id",
    "exchange_trade_id",
    "reason",
)


def _fill_key(values: Mapping[str, Any]) -> str:
    # Idempotency: an exchange trade id names a fill; without one, its exact figures do.
    if values["exchange_trade_id"] is not None:
        return f"x:{values['book']}:{values['symbol']}:{values['exchange_trade_id']}"[:128]
    figures = "\0".join(
        str(values[k])
        for k in ("book", "symbol", "decision_id", "client_order_id", "at", "side", "qty", "price")
    )
    return "h:" + hashlib.sha256(figures.encode()).hexdigest()


def _decision(row: Row[Any]) -> Decision:
    return Decision(
        id=row.id,
        at=_utc(row.at),
        bar_time=None if row.bar_time is None else _utc(row.bar_time),
        symbol=row.symbol,
        model_type=row.model_type,
        version=row.version,
        manifest_sha256=row.manifest_sha256,
        role=row.role,
        rollout_id=row.rollout_id,
        routing_key=row.routing_key,
        action=row.action,
        probabilities=tuple(row.probabilities),
        input_sha256=row.input_sha256,
        input_row=None if row.input_row is None else tuple(row.input_row),
    )


def _fill(row: Row[Any]) -> Fill:
    return Fill(**{k: getattr(row, k) for k in ("id", *_FILL_FIELDS)} | {"at": _utc(row.at)})


def _open(fill: Fill) -> OpenFill:
    return OpenFill(
        fill.id,
        fill.at,
        fill.side,
        fill.qty,
        fill.price,
        fill.fee,
        fill.funding,
        fill.decision_id,
    )


def _trip(row: Row[Any]) -> RoundTrip:
    values = row._asdict()
    values["opened_at"] = _utc(row.opened_at)
    values["closed_at"] = _utc(row.closed_at)
    return RoundTrip(**values)
