"""Add what ``alphaops serve`` stores: API tokens, idempotency keys and webhook cursors.

- ``api_tokens``: one row per bearer token; only the SHA-256 of the token is stored (tokens
  are 256-bit random strings, so a fast hash is enough). Revoking sets ``revoked_at``.
- ``idempotency_keys``: the response to a mutation sent with an ``Idempotency-Key`` header,
  so that a retried request returns the first answer instead of acting twice.
- ``webhook_cursors``: per webhook endpoint, the newest audit-log row delivered. The audit log
  (written in the same transaction as every alias move) is the durable outbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("revoked_at", _TZ, nullable=True),
        sa.Column("revoked_by", sa.String(128), nullable=True),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_sha256", name="uq_api_tokens_sha256"),
        sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="ck_api_tokens_role"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("token_name", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("token_name", "key", name="pk_idempotency_keys"),
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("endpoint", sa.String(512), primary_key=True),
        sa.Column("audit_id", sa.Integer, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_cursors")
    op.drop_table("idempotency_keys")
    op.drop_table("api_tokens")
