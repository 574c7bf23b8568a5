"""Serve fixtures: a real registry (tiny real ONNX bundles, cleared) in a home, tokens per role,
and a FastAPI TestClient over the app with its lifespan running."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alphaops.core.config import AlphaOpsConfig, load_config
from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import build_tiny_bundle, publish_cleared
from alphaops.serve import ServeConfig, create_app
from alphaops.services.tokens import Role, TokenStore

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
