"""Add persisted rollouts (at most one active per model) and their append-only event log.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_ACTIVE = "phase NOT IN ('live', 'rolled_back')"
_PHASES = "'pending', 'shadow', 'canary', 'live', 'paused', 'rolled_back'"


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("challenger_version", sa.Integer, nullable=False),
        sa.Column("champion_version", sa.Integer, nullable=True),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("paused_from", sa.String(16), nullable=True),
        sa.Column("percentage", sa.Integer, nullable=False),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("max_failures", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.CheckConstraint(f"phase IN ({_PHASES})", name="ck_rollouts_phase"),
        sa.CheckConstraint("percentage BETWEEN 0 AND 100", name="ck_rollouts_percentage"),
        sa.ForeignKeyConstraint(
            ["symbol", "model_type", "challenger_version"],
            ["versions.symbol", "versions.model_type", "versions.version"],
            name="fk_rollouts_challenger",
        ),
    )
    # The database, not only the API, guarantees at most one active rollout per model.
    op.create_index(
        "ux_rollouts_one_active",
        "rollouts",
        ["symbol", "model_type"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.String(32), sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("from_phase", sa.String(16), nullable=False),
        sa.Column("to_phase", sa.String(16), nullable=False),
        sa.Column("from_step", sa.Integer, nullable=False),
        sa.Column("to_step", sa.Integer, nullable=False),
        sa.Column("percentage", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("analysis", sa.JSON, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_rollout_events_rollout", "rollout_events", ["rollout_id", "id"])
    _append_only()


def _append_only() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER rollout_events_no_{event.lower()} BEFORE {event} "
                "ON rollout_events BEGIN SELECT RAISE(ABORT, 'rollout_events is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION alphaops_rollout_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER rollout_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON rollout_events FOR EACH STATEMENT "
            "EXECUTE FUNCTION alphaops_rollout_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER rollout_events_append_only ON rollout_events")
        op.execute("DROP FUNCTION alphaops_rollout_events_append_only()")
    op.drop_index("ix_rollout_events_rollout", table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_index("ux_rollouts_one_active", table_name="rollouts")
    op.drop_table("rollouts")
