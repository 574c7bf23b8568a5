"""The journal's tables (SQLAlchemy Core), in the registry's database.

The registry's Alembic migration ``0004`` creates them with append-only triggers; this module
mirrors them for queries.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

__all__ = ["decisions", "fills", "monitor_events", "round_trips"]

_metadata = MetaData()

decisions = Table(
    "decisions",
    _metadata,
    Column("id", String(40), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("bar_time", DateTime(timezone=True), nullable=True),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("rollout_id", String(32), nullable=True),
    Column("routing_key", String(128), nullable=True),
    Column("action", SmallInteger, nullable=False),
    Column("probabilities", JSON, nullable=False),
    Column("input_sha256", String(32), nullable=False),
    Column("input_row", JSON, nullable=True),
)

fills = Table(
    "fills",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fill_key", String(128), nullable=False),
    Column("book", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("decision_id", String(40), nullable=True),
    Column("client_order_id", String(64), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("fee", Float, nullable=False),
    Column("funding", Float, nullable=False),
    Column("exchange_order_id", String(128), nullable=True),
    Column("exchange_trade_id", String(128), nullable=True),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

round_trips = Table(
    "round_trips",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("book", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("direction", String(5), nullable=False),
    Column("qty", Float, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("entry_price", Float, nullable=False),
    Column("exit_price", Float, nullable=False),
    Column("gross_pnl", Float, nullable=False),
    Column("fees", Float, nullable=False),
    Column("funding", Float, nullable=False),
    Column("net_pnl", Float, nullable=False),
    Column("net_return", Float, nullable=False),
    Column("first_fill_id", Integer, nullable=False),
    Column("last_fill_id", Integer, nullable=False),
    Column("entry_decision_id", String(40), nullable=False),
    Column("exit_decision_id", String(40), nullable=True),
    Column("model_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("exit_version", Integer, nullable=True),
    Column("exit_role", String(16), nullable=True),
)

monitor_events = Table(
    "monitor_events",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("version", Integer, nullable=True),
    Column("kind", String(32), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("actor", String(128), nullable=False),
)
