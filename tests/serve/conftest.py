"""Serve fixtures: a real registry (tiny real ONNX bundles, cleared) in a home, tokens per role,
and a FastAPI TestClient over the app with its lifespan running."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alphaops.core.config import AlphaOpsConfig, load_config
from alphaops.core.home import AlphaOpsHome
from alphaops.data import CandleStore
from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.gates.records import GateRecordStore
from alphaops.journal import Journal
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import build_tiny_bundle, publish_cleared
from alphaops.runtime import LivePredictor, Prediction, bars_of
from alphaops.scoring import ARGMAX
from alphaops.serve import ServeConfig, create_app
from alphaops.services.gates import gate_run
from alphaops.services.journal import drift_of
from alphaops.services.tokens import Role, TokenStore
from alphaops.training import TrainingJob
from alphaops.training.executor import TrainedBundle, publish_trained, train_job

KEY = "BTCUSDT/logreg"


@dataclass(frozen=True)
class Secrets:
    viewer: str
    operator: str
    admin: str
    revoked: str

    def header(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@pytest.fixture
def config(tmp_path: Path) -> AlphaOpsConfig:
    return load_config(environ={}, home=tmp_path / "home")


@pytest.fixture
def registry(config: AlphaOpsConfig, tmp_path: Path) -> Iterator[Registry]:
    """A registry with three cleared versions of BTCUSDT/logreg; version 1 is champion."""
    reg = open_registry(config.home, actor="tester")
    for seed in (1, 2, 3):
        publish_cleared(reg, build_tiny_bundle(tmp_path / f"b{seed}", seed=seed))
    reg.promote(f"{KEY}/1", expect=None, reason="first champion")
    yield reg
    reg.close()


@pytest.fixture
def secrets(registry: Registry) -> Secrets:
    store = TokenStore(registry.database)
    made = {role.value: store.create(f"{role.value}-bot", role, actor="admin")[1] for role in Role}
    revoked = store.create("gone", Role.ADMIN, actor="admin")[1]
    store.revoke("gone", actor="admin")
    return Secrets(made["viewer"], made["operator"], made["admin"], revoked)


@pytest.fixture
def make_client(config: AlphaOpsConfig, registry: Registry) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**serve: object) -> TestClient:
        client = TestClient(create_app(config, ServeConfig.model_validate(serve)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient], secrets: Secrets) -> TestClient:
    return make_client()


# -- a real LightGBM champion with a journal: gated, served, traded, drift-checked -------------

LGBM_KEY = "BTCUSDT/lightgbm"
TRAIN_BARS = 3000
WARM = 600


@dataclass(frozen=True)
class Market:
    train: Candles
    unseen: Candles  # the bars after the training window
    crash: Candles  # 2018: a market unlike the training data


@pytest.fixture(scope="session")
def market(load_real: Callable[[str, str], Candles]) -> Market:
    btc = load_real("BTCUSDT", "1h")
    recent = btc.tail(TRAIN_BARS + 1200)
    return Market(
        Candles.from_frame(recent.frame.iloc[:TRAIN_BARS], symbol="BTCUSDT", timeframe="1h"),
        Candles.from_frame(recent.frame.iloc[TRAIN_BARS:], symbol="BTCUSDT", timeframe="1h"),
        btc.between("2018-01-01", "2018-03-01"),
    )


@pytest.fixture(scope="session")
def lightgbm(market: Market) -> TrainedBundle:
    """A real LightGBM trained on real BTCUSDT 1h candles (default features)."""
    job = TrainingJob(
        symbols=("BTCUSDT",), timeframe="1h", model="lightgbm", features=FeatureSpec.default(),
        label=LabelRule(kind="ternary", horizon=4, threshold=0.01),
        params={"n_estimators": 40}, seed=1,
        decision=ARGMAX,  # trades on most bars: the metrics follow many journaled trades
    )  # fmt: skip
    return train_job(job, {"BTCUSDT": market.train})


@dataclass(frozen=True)
class Journaled:
    config: AlphaOpsConfig
    registry: Registry
    journal: Journal
    market: Market
    expected_win_rate: float
    """The backtest gate's ``hit_rate`` of the champion."""
    decisions: list[Prediction]

    def round_trip(self, entry: float, exit: float, *, start: int) -> None:
        """Journal a long round trip on two of the champion's decisions (fee 0)."""
        t0 = int(self.market.crash.timestamps_ms[WARM]) + start * 3_600_000
        for n, (side, price) in enumerate((("buy", entry), ("sell", exit))):
            self.journal.record_fill(
                client_order_id=self.decisions[start + n].client_order_id(),
                side=side, qty=1.0, price=price, fee=0.0, at=t0 + n * 3_600_000,
            )  # fmt: skip


@pytest.fixture
def journaled(tmp_path: Path, market: Market, lightgbm: TrainedBundle) -> Iterator[Journaled]:
    """The LightGBM gated by the real gates and champion, then served on the 2018 crash with
    a journal; the monitor journaled its (alarming) feature drift. No fills yet."""
    home = AlphaOpsHome(tmp_path / "journal-home").ensure()
    store = CandleStore(home.data_dir)
    for candles in (market.train, market.unseen, market.crash):
        store.append(candles)
    config = load_config(environ={}, home=home.root)
    registry = open_registry(home, actor="tester")
    ref = publish_trained(lightgbm, registry).ref
    gate_run(config, ref, champion=None)
    registry.promote(ref, expect=None, reason="journal metrics", force=True)
    record = GateRecordStore(registry).latest(ref)
    assert record is not None
    expected = float(record.gate("backtest").data["candidate"]["hit_rate"])
    journal = Journal(registry)
    with LivePredictor(registry, LGBM_KEY, journal=journal, start=False, load_in="thread") as live:
        head = market.crash.frame.iloc[:WARM]
        live.warm_up(Candles.from_frame(head, symbol="BTCUSDT", timeframe="1h"))
        decided = [live.on_bar(b) for b in bars_of(market.crash)[WARM : WARM + 400]]
    journal.flush()
    drift_of(registry, journal, store, LGBM_KEY, record=True)
    yield Journaled(config, registry, journal, market, expected, decided)
    journal.close()
    registry.close()
