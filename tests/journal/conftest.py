"""Journal fixtures: real LightGBM bundles trained on real BTCUSDT candles, served from a
registry on SQLite and on PostgreSQL, with the candles the models never saw."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.journal import Journal, JournalConfig
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import record_passing_gates
from alphaops.scoring import ARGMAX
from alphaops.training import TrainingJob
from alphaops.training.executor import TrainedBundle, publish_trained, train_job

TRAIN_BARS = 3000
LABEL = LabelRule(kind="ternary", horizon=4, threshold=0.01)


@dataclass(frozen=True)
class Market:
    train: Candles
    unseen: Candles  # every bar after the training window


@pytest.fixture(scope="session")
def market(load_real: Callable[[str, str], Candles]) -> Market:
    btc = load_real("BTCUSDT", "1h").tail(TRAIN_BARS + 1200)
    return Market(
        Candles.from_frame(btc.frame.iloc[:TRAIN_BARS], symbol="BTCUSDT", timeframe="1h"),
        Candles.from_frame(btc.frame.iloc[TRAIN_BARS:], symbol="BTCUSDT", timeframe="1h"),
    )


@pytest.fixture(scope="session")
def trained(market: Market) -> list[TrainedBundle]:
    """Two LightGBM candidates (different seeds) on the default features."""
    return [
        train_job(
            TrainingJob(
                symbols=("BTCUSDT",), timeframe="1h", model="lightgbm",
                features=FeatureSpec.default(), label=LABEL,
                params={"n_estimators": 30 + 10 * seed}, seed=seed,
                decision=ARGMAX,  # trades on most bars: these tests follow many round trips
            ),
            {"BTCUSDT": market.train},
        )
        for seed in (1, 2)
    ]  # fmt: skip


@pytest.fixture
def registry(db_url: str, tmp_path: Path, trained: list[TrainedBundle]) -> Iterator[Registry]:
    """A registry holding both candidates (cleared), version 1 champion."""
    reg = open_registry(db_url, artifacts=tmp_path / "artifacts", actor="tester")
    for bundle in trained:
        version = publish_trained(bundle, reg)
        record_passing_gates(reg, version.ref)
    reg.promote("BTCUSDT/lightgbm/1", expect=None, reason="journal tests")
    yield reg
    reg.close()


@pytest.fixture(params=["thread", "process"])
def journal(registry: Registry, request: pytest.FixtureRequest) -> Iterator[Journal]:
    """A journal whose decisions go through a writer thread, or a writer process."""
    with Journal(registry, JournalConfig(writer=request.param)) as opened:
        yield opened
