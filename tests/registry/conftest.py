"""Registry fixtures: every registry test runs on SQLite and on PostgreSQL.

PostgreSQL and the S3 server come from ``scripts/services.sh start`` (it writes
``.services/services.env``); when they are missing the PostgreSQL/S3 tests fail, never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import build_tiny_bundle

REPO = Path(__file__).resolve().parents[2]
SERVICES_ENV = REPO / ".services" / "services.env"


def service_setting(name: str) -> str:
    """Return a service URL from the environment or ``.services/services.env``, or fail."""
    value = os.environ.get(name)
    if not value and SERVICES_ENV.exists():
        for line in SERVICES_ENV.read_text().splitlines():
            key, _, found = line.partition("=")
            if key.strip() == name:
                value = found.strip()
    if not value:
        pytest.fail(
            f"{name} is not set and {SERVICES_ENV} does not define it: start the test services "
            "with `bash scripts/services.sh start` (PostgreSQL and an S3 server on loopback)",
            pytrace=False,
        )
    return value


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Return a fresh, empty registry database URL (a SQLite file or a PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    base = service_setting("ALPHAOPS_TEST_PG_URL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _pg_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    """Return an open registry on ``db_url`` with local artifacts, closed afterwards."""
    reg = open_registry(db_url, artifacts=tmp_path / "artifacts", actor="tester")
    yield reg
    reg.close()


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    """Return a factory of tiny real bundles; each call gets a new seed unless given one."""
    counter = iter(range(1, 1_000_000))

    def make(**kwargs: object) -> Path:
        seed = kwargs.pop("seed", None)
        seed = next(counter) if seed is None else seed
        folder = tmp_path / "bundles" / uuid.uuid4().hex
        return build_tiny_bundle(folder, seed=seed, **kwargs)  # type: ignore[arg-type]

    return make
