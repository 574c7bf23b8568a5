"""The registry's tables (SQLAlchemy Core). Alembic migrations create them; this mirrors them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "alarm_acks",
    "alarms",
    "aliases",
    "audit_log",
    "gate_attachments",
    "gate_policies",
    "gate_runs",
    "metadata",
    "models",
    "registry_state",
    "rollout_events",
    "rollouts",
    "versions",
]

metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("symbol", "model_type", name="uq_models_symbol_type"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    # pending -> ready -> pruned, or pending -> failed; only "ready" versions are visible.
    Column("status", String(16), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("ready_at", DateTime(timezone=True), nullable=True),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("symbol", "model_type", "version", name="uq_versions_symbol_type_version"),
    CheckConstraint(
        "status IN ('pending', 'ready', 'pruned', 'failed')", name="ck_versions_status"
    ),
)

aliases = Table(
    "aliases",
    metadata,
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("symbol", "model_type", "alias", name="pk_aliases"),
    ForeignKeyConstraint(
        ["symbol", "model_type", "version"],
        ["versions.symbol", "versions.model_type", "versions.version"],
        name="fk_aliases_version",
    ),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("alias", String(64), nullable=True),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("reason", Text, nullable=False),
    Column("host", String(255), nullable=False),
    Column("code_version", String(64), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Index("ix_audit_log_model", "symbol", "model_type", "id"),
)

registry_state = Table(
    "registry_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_registry_state_single_row"),
)

# Append-only (database triggers refuse UPDATE and DELETE, like the audit log): every gate run
# of a version, newest last. Attached reports live outside the checksummed bundle, under
# ``<root>/<SYMBOL>/<model_type>/_gates/<version>/<run_id>/<name>``, checksummed here.
gate_runs = Table(
    "gate_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("policy_hash", String(128), nullable=True),
    Column("document", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("host", String(255), nullable=False),
    Column("code_version", String(64), nullable=False),
    UniqueConstraint("run_id", name="uq_gate_runs_run_id"),
    ForeignKeyConstraint(
        ["symbol", "model_type", "version"],
        ["versions.symbol", "versions.model_type", "versions.version"],
        name="fk_gate_runs_version",
    ),
    Index("ix_gate_runs_version", "symbol", "model_type", "version", "id"),
)

# Append-only: the gate policy a passed run must have been judged under to clear a version;
# the newest row is in force (migration 0007).
gate_policies = Table(
    "gate_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("policy_hash", String(64), nullable=False),
    Column("document", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("host", String(255), nullable=False),
    Column("reason", Text, nullable=False),
)

gate_attachments = Table(
    "gate_attachments",
    metadata,
    Column("gate_run_id", Integer, ForeignKey("gate_runs.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    PrimaryKeyConstraint("gate_run_id", "name", name="pk_gate_attachments"),
)

# One rollout of a challenger per model at a time (a partial unique index over the active
# phases); ``rollout_events`` is append-only like the audit log.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("challenger_version", Integer, nullable=False),
    Column("champion_version", Integer, nullable=True),
    Column("steps", JSON, nullable=False),
    Column("step", Integer, nullable=False),
    Column("phase", String(16), nullable=False),
    Column("paused_from", String(16), nullable=True),
    Column("percentage", Integer, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("max_failures", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
)

rollout_events = Table(
    "rollout_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", String(32), ForeignKey("rollouts.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("from_phase", String(16), nullable=False),
    Column("to_phase", String(16), nullable=False),
    Column("from_step", Integer, nullable=False),
    Column("to_step", Integer, nullable=False),
    Column("percentage", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("analysis", JSON, nullable=True),
    Column("reason", Text, nullable=False),
    Column("generation", BigInteger, nullable=False),
)

# Append-only: a drift alarm blocks promotion of its model until an acknowledgement is
# appended (``rollout_id`` is the rollout it paused, if any).
alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("model_type", String(64), nullable=False),
    Column("version", Integer, nullable=True),
    Column("kind", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("rollout_id", String(32), nullable=True),
    Index("ix_alarms_model", "symbol", "model_type", "id"),
)

alarm_acks = Table(
    "alarm_acks",
    metadata,
    Column("alarm_id", Integer, ForeignKey("alarms.id"), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
)
