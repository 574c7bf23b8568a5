"""The registry's guarantees under concurrency and crashes, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alphaops.registry import Bundle, open_registry, parse_key
from alphaops.registry.testing import publish_many

KEY = parse_key("BTCUSDT/logreg")


def test_concurrent_publishers_in_several_processes_get_unique_gapless_versions(
    db_url: str, tmp_path: Path, make_bundle: Callable[..., Path]
) -> None:
    workers, per_worker = 4, 4
    folders = [[str(make_bundle()) for _ in range(per_worker)] for _ in range(workers)]
    artifacts = str(tmp_path / "artifacts")
    open_registry(db_url, artifacts=artifacts).close()  # migrate once, like a deployment would
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.starmap(publish_many, [(db_url, artifacts, f) for f in folders])
    numbers = sorted(n for result in results for n in result)
    assert numbers == list(range(1, workers * per_worker + 1))  # unique and gapless
    with open_registry(db_url, artifacts=artifacts) as registry:
        stored = {v.manifest.seed for v in registry.list_versions(KEY)}
        assert stored == {Bundle.load(Path(f)).manifest.seed for fs in folders for f in fs}
        assert registry.verify(smoke_test=False).ok


def _kill_at_random_moments(db_url: str, tmp_path: Path, folders: list[str], rounds: int) -> None:
    artifacts = str(tmp_path / "artifacts")
    open_registry(db_url, artifacts=artifacts).close()
    rng = random.Random(int.from_bytes(os.urandom(4)))
    for _ in range(rounds):
        child = subprocess.Popen(
            [sys.executable, "-m", "alphaops.registry.testing", db_url, artifacts, *folders],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", "the churn process failed to start"
        time.sleep(rng.uniform(0.0, 0.5))  # the random moment of the kill, not a wait
        child.kill()
        child.wait(timeout=60)
        child.stdout.close()
    with open_registry(db_url, artifacts=artifacts) as registry:
        report = registry.verify()
        assert report.ok, report.problems
        aliases = registry.aliases(KEY)
        for version in aliases.values():
            assert registry.get(KEY, version).status == "ready"
        if "champion" in aliases:
            bundle = registry.load(f"{KEY}@champion")
            assert bundle.predict(bundle.reference_inputs()).shape == (8, 2)
        registry.doctor(fix=True, grace_s=0)
        assert registry.doctor(grace_s=0).findings == []
        assert registry.verify().ok
        if "champion" in aliases:
            link = Path(registry.artifacts.latest_link(KEY))
            assert os.readlink(link) == str(aliases["champion"])
        assert registry.publish(Path(folders[0])).status == "ready"


def test_killing_the_publisher_at_random_moments_leaves_no_incomplete_version_quick(
    db_url: str, tmp_path: Path, make_bundle: Callable[..., Path]
) -> None:
    folders = [str(make_bundle()) for _ in range(3)]
    _kill_at_random_moments(db_url, tmp_path, folders, rounds=3)


@pytest.mark.stress
def test_killing_the_publisher_at_random_moments_leaves_no_incomplete_version(
    db_url: str, tmp_path: Path, make_bundle: Callable[..., Path]
) -> None:
    folders = [str(make_bundle()) for _ in range(3)]
    _kill_at_random_moments(db_url, tmp_path, folders, rounds=30)
