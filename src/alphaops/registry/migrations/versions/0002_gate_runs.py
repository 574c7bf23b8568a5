"""Add append-only gate runs and the reports attached to them.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_TABLES = ("gate_runs", "gate_attachments")


def upgrade() -> None:
    op.create_table(
        "gate_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("policy_hash", sa.String(128), nullable=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("code_version", sa.String(64), nullable=False),
        sa.UniqueConstraint("run_id", name="uq_gate_runs_run_id"),
        sa.ForeignKeyConstraint(
            ["symbol", "model_type", "version"],
            ["versions.symbol", "versions.model_type", "versions.version"],
            name="fk_gate_runs_version",
        ),
    )
    op.create_index("ix_gate_runs_version", "gate_runs", ["symbol", "model_type", "version", "id"])
    op.create_table(
        "gate_attachments",
        sa.Column("gate_run_id", sa.Integer, sa.ForeignKey("gate_runs.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("gate_run_id", "name", name="pk_gate_attachments"),
    )
    _append_only()


def _append_only() -> None:
    # Like the audit log: no edit path in the API, and the database refuses edits too.
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
            "CREATE FUNCTION alphaops_gate_runs_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION alphaops_gate_runs_append_only()"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION alphaops_gate_runs_append_only()")
    op.drop_table("gate_attachments")
    op.drop_index("ix_gate_runs_version", table_name="gate_runs")
    op.drop_table("gate_runs")
