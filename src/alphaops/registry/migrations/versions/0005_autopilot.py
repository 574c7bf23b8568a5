"""Add the autopilot's log: one append-only row per step of every retrain it runs.

A retrain is a run (``run_id``) whose steps are appended as they happen (fired, trained,
gated, published, rollout started, failed, blocked, safe action, abandoned). The newest step
of a run is its state; a run with no final step when the autopilot starts again was cut short
by a crash and is closed as ``abandoned`` before anything new is scheduled.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_TABLE = "autopilot_steps"


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        # ``at`` is the autopilot's moment (simulated in a replay); this is the wall clock.
        sa.Column("recorded_at", _TZ, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.String(24), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("rollout_id", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.CheckConstraint(
            "kind IN ('scheduled', 'emergency', 'manual')", name="ck_autopilot_steps_kind"
        ),
    )
    op.create_index("ix_autopilot_steps_model", _TABLE, ["symbol", "model_type", "id"])
    op.create_index("ix_autopilot_steps_run", _TABLE, ["run_id", "id"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {_TABLE}_no_{event.lower()} BEFORE {event} ON {_TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{_TABLE} is append-only'); END"
            )
    elif dialect == "postgresql":
        # alphaops_append_only() was created by revision 0004.
        op.execute(
            f"CREATE TRIGGER {_TABLE}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            f"ON {_TABLE} FOR EACH STATEMENT EXECUTE FUNCTION alphaops_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {_TABLE}_append_only ON {_TABLE}")
    op.drop_table(_TABLE)
