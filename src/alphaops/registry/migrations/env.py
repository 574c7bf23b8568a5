"""Alembic environment: always runs on the connection handed over by ``alphaops.registry``."""

from __future__ import annotations

from alembic import context


def _run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


# Alembic installs ``context.config`` only while it runs this file; a plain import (pytest's
# doctest collection) must do nothing.
if hasattr(context, "config"):
    _run()
