"""Database engines for the registry: SQLite (WAL) or PostgreSQL, migrated by Alembic on open.

SQLite gets two engines on the same file: writes begin with ``BEGIN IMMEDIATE`` so that a
read-check-write transaction (version allocation, compare-and-swap) holds the write lock from
its first statement; reads begin with a plain deferred ``BEGIN`` and never block writers (WAL).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from alphaops.core.config import check_database_url
from alphaops.core.errors import ExternalServiceError, UsageError, VersionConflictError

__all__ = ["HEAD_REVISION", "Database", "RetryPolicy", "as_utc", "database_url_for"]

# The newest Alembic revision in ``migrations/versions`` (a test checks it matches).
HEAD_REVISION = "0007"
_PG_MIGRATION_LOCK = 7_240_001
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


_T = TypeVar("_T")


class RetryPolicy:
    """How long to retry a transaction refused by a unique constraint, and how to wait.

    Writers that lose a race (two publishers picking the same version number on PostgreSQL)
    wait a random time in ``[0, delay]`` — full jitter, so they spread out instead of colliding
    again in step — with ``delay`` doubling from ``first_delay_s`` up to ``max_delay_s``, and
    give up only when ``deadline_s`` has passed, however many attempts that took.
    """

    def __init__(
        self, *, deadline_s: float = 60.0, first_delay_s: float = 0.002, max_delay_s: float = 0.25
    ) -> None:
        self.deadline_s = deadline_s
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s

    def run(self, attempt: Callable[[], _T], *, what: str) -> _T:
        """Return ``attempt()``, retried on unique-constraint conflicts until the deadline."""
        deadline = time.monotonic() + self.deadline_s
        delay, tries = self.first_delay_s, 0
        while True:
            tries += 1
            try:
                return attempt()
            except SqlIntegrityError as exc:
                if not _lost_a_race(exc):
                    raise  # another constraint: a bug or bad input, not worth waiting for
                if time.monotonic() >= deadline:
                    raise VersionConflictError(
                        f"could not {what}: {tries} attempts over {self.deadline_s:g} s all lost "
                        "a race with other writers",
                        fix="retry later; many writers are racing on the same model",
                    ) from exc
            time.sleep(random.uniform(0.0, delay))
            delay = min(self.max_delay_s, delay * 2)


def _lost_a_race(exc: SqlIntegrityError) -> bool:
    """Return whether ``exc`` is a unique-constraint violation (PostgreSQL 23505, SQLite)."""
    return getattr(exc.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(
        exc.orig
    )


def database_url_for(path: Path) -> str:
    """Return the SQLAlchemy URL of an embedded SQLite database file."""
    return f"sqlite:///{path}"


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (SQLite gives naive ones back)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _normalize(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """The registry database: a write engine, a read engine and the dialect name."""

    def __init__(self, url: str) -> None:
        # Refused before anything is created: a garbage URL must not leave files behind.
        self.url = _normalize(check_database_url(url))
        self.retry = RetryPolicy()
        if self.url.startswith("sqlite"):
            self.dialect = "sqlite"
            if self.url not in ("sqlite://", "sqlite:///:memory:"):
                Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.writer = self._sqlite_engine(immediate=True)
            self.reader = self._sqlite_engine(immediate=False)
        else:  # postgresql: check_database_url accepts nothing else
            self.dialect = "postgresql"
            try:
                self.writer = create_engine(self.url, pool_pre_ping=True)
            except ImportError as exc:
                raise UsageError(
                    f"PostgreSQL URL {self.safe_url!r} needs psycopg",
                    fix="install alphaops[postgres]",
                ) from exc
            self.reader = self.writer
        self._migrate()

    def _sqlite_engine(self, *, immediate: bool) -> Engine:
        engine = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL + FULL: the WAL is fsynced at every commit, so a committed publish, alias move
            # or audit row survives a power loss, not only a killed process (NORMAL's promise).
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a write transaction (committed on success, rolled back on error)."""
        with self._errors(), self.writer.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a read-only transaction."""
        with self._errors(), self.reader.begin() as conn:
            yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise ExternalServiceError(
                f"registry database {self.safe_url} failed: {exc.orig}",
                fix="check that the database is reachable, then retry",
            ) from exc

    @property
    def safe_url(self) -> str:
        """Return the URL with any password hidden."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Dispose of both engines' connection pools."""
        self.writer.dispose()
        self.reader.dispose()

    def _current_revision(self, conn: Connection) -> str | None:
        try:
            with conn.begin_nested():
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            return None

    def _migrate(self) -> None:
        try:
            with self.reader.connect() as conn:
                if self._current_revision(conn) == HEAD_REVISION:
                    return
        except OperationalError as exc:
            raise ExternalServiceError(
                f"cannot connect to registry database {self.safe_url}: {exc.orig}",
                fix="start the database (scripts/services.sh for tests) or fix the URL",
            ) from exc
        from alembic import command
        from alembic.config import Config

        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            if self._current_revision(conn) == HEAD_REVISION:
                return
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
