"""Add the journal (decisions, fills, round trips, monitor events) and drift alarms.

Every table is append-only (database triggers refuse UPDATE and DELETE, as for the audit
log): an alarm is acknowledged by appending an acknowledgement, a position is closed by
appending its round trip.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_TABLES = ("decisions", "fills", "round_trips", "monitor_events", "alarms", "alarm_acks")


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("bar_time", _TZ, nullable=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("rollout_id", sa.String(32), nullable=True),
        sa.Column("routing_key", sa.String(128), nullable=True),
        sa.Column("action", sa.SmallInteger, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("input_sha256", sa.String(32), nullable=False),
        sa.Column("input_row", sa.JSON, nullable=True),
        sa.CheckConstraint(
            "role IN ('champion', 'challenger', 'shadow', 'fallback')", name="ck_decisions_role"
        ),
        sa.CheckConstraint("action IN (-1, 0, 1)", name="ck_decisions_action"),
    )
    op.create_index(
        "ix_decisions_version", "decisions", ["symbol", "model_type", "version", "bar_time"]
    )
    op.create_index("ix_decisions_time", "decisions", ["symbol", "model_type", "at"])
    op.create_table(
        "fills",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fill_key", sa.String(128), nullable=False),
        sa.Column("book", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(40), sa.ForeignKey("decisions.id"), nullable=True),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.Float, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("fee", sa.Float, nullable=False),
        sa.Column("funding", sa.Float, nullable=False),
        sa.Column("exchange_order_id", sa.String(128), nullable=True),
        sa.Column("exchange_trade_id", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("recorded_at", _TZ, nullable=False),
        sa.UniqueConstraint("fill_key", name="uq_fills_fill_key"),
        sa.CheckConstraint("side IN ('buy', 'sell')", name="ck_fills_side"),
        sa.CheckConstraint("qty > 0 AND price > 0", name="ck_fills_positive"),
    )
    op.create_index("ix_fills_book", "fills", ["book", "symbol", "id"])
    op.create_table(
        "round_trips",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("book", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(5), nullable=False),
        sa.Column("qty", sa.Float, nullable=False),
        sa.Column("opened_at", _TZ, nullable=False),
        sa.Column("closed_at", _TZ, nullable=False),
        sa.Column("entry_price", sa.Float, nullable=False),
        sa.Column("exit_price", sa.Float, nullable=False),
        sa.Column("gross_pnl", sa.Float, nullable=False),
        sa.Column("fees", sa.Float, nullable=False),
        sa.Column("funding", sa.Float, nullable=False),
        sa.Column("net_pnl", sa.Float, nullable=False),
        sa.Column("net_return", sa.Float, nullable=False),
        sa.Column("first_fill_id", sa.Integer, sa.ForeignKey("fills.id"), nullable=False),
        sa.Column("last_fill_id", sa.Integer, sa.ForeignKey("fills.id"), nullable=False),
        sa.Column("entry_decision_id", sa.String(40), nullable=False),
        sa.Column("exit_decision_id", sa.String(40), nullable=True),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("exit_version", sa.Integer, nullable=True),
        sa.Column("exit_role", sa.String(16), nullable=True),
        sa.CheckConstraint("direction IN ('long', 'short')", name="ck_round_trips_direction"),
        sa.UniqueConstraint("last_fill_id", name="uq_round_trips_last_fill"),
    )
    op.create_index(
        "ix_round_trips_version", "round_trips", ["symbol", "model_type", "version", "closed_at"]
    )
    op.create_index("ix_round_trips_book", "round_trips", ["book", "symbol", "id"])
    op.create_table(
        "monitor_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.CheckConstraint("severity IN ('info', 'warn', 'alarm')", name="ck_monitor_severity"),
    )
    op.create_index("ix_monitor_events_model", "monitor_events", ["symbol", "model_type", "id"])
    # A drift alarm blocks promotion of its model (and paused its rollout) until acknowledged.
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("rollout_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_alarms_model", "alarms", ["symbol", "model_type", "id"])
    op.create_table(
        "alarm_acks",
        sa.Column("alarm_id", sa.Integer, sa.ForeignKey("alarms.id"), primary_key=True),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    _append_only()


def _append_only() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in _TABLES:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION alphaops_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION alphaops_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION alphaops_append_only()")
    for table in reversed(_TABLES):
        op.drop_table(table)
