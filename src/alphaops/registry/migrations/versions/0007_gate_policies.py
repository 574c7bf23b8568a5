"""Add the registry's gate policy: the one policy under which a passed gate run clears a version.

``gate_policies`` is append-only (database triggers refuse UPDATE and DELETE): every change
of the required policy is a new row naming who set it, from where, when and why; the newest
row is the policy in force. A gate run recorded under another policy (a lenient file passed
to ``gate run --policy``) is kept, but it does not clear a version for live traffic.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gate_policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER gate_policies_no_{event.lower()} BEFORE {event} ON "
                "gate_policies BEGIN SELECT RAISE(ABORT, 'gate_policies is append-only'); END"
            )
    elif dialect == "postgresql":
        # The function of 0002 raises "<table> is append-only" for any table.
        op.execute(
            "CREATE TRIGGER gate_policies_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON gate_policies FOR EACH STATEMENT EXECUTE FUNCTION alphaops_gate_runs_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER gate_policies_append_only ON gate_policies")
    op.drop_table("gate_policies")
