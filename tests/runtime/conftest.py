"""Runtime fixtures: a registry on SQLite and on PostgreSQL, tiny real bundles, helpers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alphaops.registry import Registry, open_registry
from alphaops.registry.testing import build_tiny_bundle

ACTIONS = {"down": -1, "up": 1}
"""The tiny bundles' classes are ``down``/``up``; map them to trading actions."""


@pytest.fixture
def open_reg(db_url: str, tmp_path: Path) -> Iterator[Callable[[str], Registry]]:
    """Return an opener of registries on the same database (one per simulated process)."""
    opened: list[Registry] = []

    def make(actor: str = "tester") -> Registry:
        reg = open_registry(db_url, artifacts=tmp_path / "artifacts", actor=actor)
        opened.append(reg)
        return reg

    yield make
    for reg in opened:
        reg.close()


@pytest.fixture
def registry(open_reg: Callable[[str], Registry]) -> Registry:
    """Return an open registry (the controller's)."""
    return open_reg("tester")


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


def wait_until(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Return once ``condition()`` holds; fail after ``timeout_s`` (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        time.sleep(0.001)
