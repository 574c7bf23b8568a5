"""Open Inference Protocol v2 over a real trained LightGBM bundle and real BTCUSDT candles:
the answer equals the gates' scoring kernel, a promotion over the API is served without a
restart, and /metrics counts it all."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from alphaops.core.config import AlphaOpsConfig, load_config
from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import record_passing_gates
from alphaops.scoring import BundlePredictor
from alphaops.serve import ServeConfig, create_app
from alphaops.services.tokens import Role, TokenStore
from alphaops.training import TrainingJob
from alphaops.training.executor import TrainedBundle, publish_trained, train_job

KEY = "BTCUSDT/lightgbm"
NAME = "BTCUSDT.lightgbm"
TRAIN_BARS = 2000


@pytest.fixture(scope="module")
def candles(load_real: Callable[[str, str], Candles]) -> tuple[Candles, Candles]:
    """The training bars, and every bar (the last ones the models never saw)."""
    btc = load_real("BTCUSDT", "1h").tail(TRAIN_BARS + 300)
    return Candles.from_frame(btc.frame.iloc[:TRAIN_BARS], symbol="BTCUSDT", timeframe="1h"), btc


@pytest.fixture(scope="module")
def trained(candles: tuple[Candles, Candles]) -> list[TrainedBundle]:
    label = LabelRule(kind="ternary", horizon=4, threshold=0.01)
    return [
        train_job(
            TrainingJob(
                symbols=("BTCUSDT",), timeframe="1h", model="lightgbm",
                features=FeatureSpec.default(), label=label,
                params={"n_estimators": 20 + 10 * seed}, seed=seed,
            ),
            {"BTCUSDT": candles[0]},
        )
        for seed in (1, 2)
    ]  # fmt: skip


@pytest.fixture
def served(
    tmp_path: Path, trained: list[TrainedBundle]
) -> Iterator[tuple[Registry, str, AlphaOpsConfig]]:
    config = load_config(environ={}, home=tmp_path / "home")
    reg = open_registry(config.home, actor="tester")
    for bundle in trained:
        record_passing_gates(reg, publish_trained(bundle, reg).ref)
    reg.promote(f"{KEY}/1", expect=None, reason="first")
    secret = TokenStore(reg.database).create("bot", Role.OPERATOR, actor="admin")[1]
    yield reg, secret, config
    reg.close()


@pytest.fixture
def client(served: tuple[Registry, str, AlphaOpsConfig]) -> Iterator[TestClient]:
    _, _, config = served
    serve = ServeConfig(predict=(KEY,), load_in="thread", poll_interval_s=0.05)
    with TestClient(create_app(config, serve)) as opened:
        yield opened


def _features(registry: Registry, ref: str, candles: Candles) -> np.ndarray:
    rows = BundlePredictor.from_registry(registry, ref).features(candles)[-5:]
    assert not np.isnan(rows).any()
    return rows


def _infer(client: TestClient, secret: str, rows: np.ndarray) -> dict:
    response = client.post(
        f"/v2/models/{NAME}/infer",
        json={"id": "r1", "inputs": [{"name": "input", "shape": list(rows.shape),
                                       "datatype": "FP32", "data": rows.ravel().tolist()}]},
        headers={"Authorization": f"Bearer {secret}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def _samples(client: TestClient, secret: str) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"}).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_infer_equals_the_gates_kernel_on_real_candles_and_follows_a_promotion(
    served: tuple[Registry, str, AlphaOpsConfig],
    client: TestClient,
    candles: tuple[Candles, Candles],
) -> None:
    registry, secret, _ = served
    rows = _features(registry, f"{KEY}/1", candles[1])
    answer = _infer(client, secret, rows)
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (NAME, "1", "r1")
    outputs = {o["name"]: o for o in answer["outputs"]}
    expected = BundlePredictor.from_registry(registry, f"{KEY}/1").predict_proba(rows)
    got = np.asarray(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert outputs["role"]["data"] == ["champion"] * 5
    meta = client.get(f"/v2/models/{NAME}", headers={"Authorization": f"Bearer {secret}"})
    assert meta.json()["inputs"][0]["shape"][1] == rows.shape[1]

    promoted = client.post(
        f"/api/v1/models/{KEY}/promote", json={"version": 2, "expect": 1, "reason": "v2"},
        headers={"Authorization": f"Bearer {secret}"},
    )  # fmt: skip
    assert promoted.status_code == 200
    deadline = time.monotonic() + 20
    while _infer(client, secret, rows)["model_version"] != "2":
        assert time.monotonic() < deadline, "the promotion was not served within 20 s"
        time.sleep(0.05)
    expected2 = BundlePredictor.from_registry(registry, f"{KEY}/2").predict_proba(rows)
    latest = {o["name"]: o for o in _infer(client, secret, rows)["outputs"]}
    np.testing.assert_allclose(
        np.asarray(latest["probabilities"]["data"]).reshape(expected2.shape), expected2,
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip

    samples = _samples(client, secret)
    champion = (("model", KEY), ("role", "champion"), ("version", "1"))
    assert samples[("alphaops_predictions_total", champion)] >= 5
    assert samples[("alphaops_model_swaps_total", (("model", KEY),))] >= 1
    assert samples[("alphaops_alias_version", (("alias", "champion"), ("model", KEY)))] == 2
    assert samples[("alphaops_alias_version", (("alias", "previous"), ("model", KEY)))] == 1
    assert samples[("alphaops_registry_generation", ())] == registry.generation()
    count = ("alphaops_prediction_latency_seconds_count", (("model", KEY), ("role", "champion")))
    assert samples[count] >= 10


@pytest.mark.parametrize(
    ("tensor", "problem"),
    [
        ({"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}, "needs 3"),
        ({"name": "prices", "shape": [1, 1], "datatype": "FP32", "data": [1]}, "unknown input"),
        ({"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}, "feature"),
    ],
)
def test_bad_tensors_are_refused_with_the_problem_named_and_counted(
    served: tuple[Registry, str, AlphaOpsConfig], client: TestClient, tensor: dict, problem: str
) -> None:
    _, secret, _ = served
    response = client.post(
        f"/v2/models/{NAME}/infer", json={"inputs": [tensor]},
        headers={"Authorization": f"Bearer {secret}"},
    )  # fmt: skip
    assert 400 <= response.status_code < 500, response.text
    assert problem in response.json()["detail"], response.json()
    errors = [k for k in _samples(client, secret) if k[0] == "alphaops_prediction_errors_total"]
    assert errors


def test_a_model_not_served_is_404_naming_the_served_ones(
    served: tuple[Registry, str, AlphaOpsConfig], client: TestClient
) -> None:
    _, secret, _ = served
    response = client.post(
        "/v2/models/ETHUSDT.lightgbm/infer",
        json={"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [1]}]},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 404
    assert NAME in response.json()["fix"]
