"""Shared fixtures: real market data from ``../shared/data`` and an isolated alphaops home."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text

from alphaops.core.home import AlphaOpsHome
from alphaops.data.candles import Candles

REPO = Path(__file__).resolve().parents[1]
SERVICES_ENV = REPO / ".services" / "services.env"

# Properties are checked for correctness, never for speed (benchmarks/ measures speed): no
# per-example deadline, so a busy 2-core CI machine cannot fail a property test.
settings.register_profile("alphaops", deadline=None)
settings.load_profile("alphaops")


def shared_data_dir() -> Path:
    """Return the real market data folder (``$ALPHAOPS_TEST_DATA`` or ``../shared/data``)."""
    return Path(os.environ.get("ALPHAOPS_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = shared_data_dir()
    if not (folder / "BTCUSDT-1h.parquet").exists():
        raise RuntimeError(
            f"real market data not found in {folder}; set ALPHAOPS_TEST_DATA to the folder "
            "holding BTCUSDT-1h.parquet"
        )
    return folder


@pytest.fixture(scope="session")
def load_real(data_dir: Path) -> Callable[[str, str], Candles]:
    """Return a loader of real candles: ``load_real("BTCUSDT", "1h")`` (cached per session)."""
    cache: dict[tuple[str, str], Candles] = {}

    def load(symbol: str, timeframe: str) -> Candles:
        key = (symbol, timeframe)
        if key not in cache:
            frame = pd.read_parquet(data_dir / f"{symbol}-{timeframe}.parquet")
            cache[key] = Candles.from_frame(frame, symbol=symbol, timeframe=timeframe)
        return cache[key]

    return load


@pytest.fixture
def home(tmp_path: Path) -> AlphaOpsHome:
    """Return a fresh, empty alphaops home in a temporary folder."""
    return AlphaOpsHome(tmp_path / "home").ensure()


def pg_url() -> str:
    """Return the test PostgreSQL URL, or fail (never skip) when the services are down."""
    value = os.environ.get("ALPHAOPS_TEST_PG_URL")
    if not value and SERVICES_ENV.exists():
        for line in SERVICES_ENV.read_text().splitlines():
            key, _, found = line.partition("=")
            if key.strip() == "ALPHAOPS_TEST_PG_URL":
                value = found.strip()
    if not value:
        pytest.fail("start the test services: bash scripts/services.sh start", pytrace=False)
    return value


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Return a fresh registry database URL (a SQLite file or a PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    base = pg_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
