"""Lifecycle replay: the control plane over real history, deterministic, never looking ahead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from alphaops.autopilot import Autopilot
from alphaops.autopilot.replay import Faults, LifecycleResult, replay_lifecycle
from alphaops.core.config import load_config
from alphaops.registry import open_registry
from alphaops.services.data import import_files

from .conftest import MECHANICS_POLICY, make_policy, model_policy

START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 4, 10, tzinfo=UTC)
CRASH = datetime(2025, 3, 10, tzinfo=UTC)
GAP = (datetime(2025, 3, 20, tzinfo=UTC), datetime(2025, 3, 21, 12, tzinfo=UTC))


def _policy_data() -> dict[str, object]:
    model = model_policy(
        schedule={"every": "7d"},
        triggers={"win_rate_below": 0.35, "min_trades": 20},
        rollout={"steps": "shadow,50,100", "interval": "1h"},
    )
    return {"check_every": "1d", "models": [model]}


def _home(tmp: Path, data_dir: Path) -> Path:
    home = tmp / "home"
    config = load_config(environ={"ALPHAOPS_HOME": str(home)})
    (outcome,) = import_files(
        config, [data_dir / "BTCUSDT-1h.parquet"], symbol="BTCUSDT", timeframe="1h"
    )
    outcome.raise_for_error()
    with open_registry(home) as registry:  # see conftest: the mechanics, not the gates' bar
        registry.set_gate_policy(MECHANICS_POLICY.to_dict(), reason="autopilot mechanics tests")
    return home


def _replay(home: Path) -> LifecycleResult:
    config = load_config(environ={"ALPHAOPS_HOME": str(home)})
    policy = make_policy(*_policy_data()["models"], check_every="1d")  # type: ignore[arg-type]
    return replay_lifecycle(
        config,
        policy,
        start=START,
        end=END,
        faults=Faults(training_crash_at=(CRASH,), data_gap=GAP),
    )


@pytest.fixture(scope="module")
def replays(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> tuple[LifecycleResult, LifecycleResult, Path]:
    first = _home(tmp_path_factory.mktemp("a"), data_dir)
    second = _home(tmp_path_factory.mktemp("b"), data_dir)
    return _replay(first), _replay(second), first


def test_a_replay_is_deterministic(replays: tuple[LifecycleResult, LifecycleResult, Path]) -> None:
    a, b, _ = replays
    assert a.counts == b.counts
    assert [(r.kind, r.state, r.version, r.started) for r in a.runs] == [
        (r.kind, r.state, r.version, r.started) for r in b.runs
    ]
    (ma,), (mb,) = a.models, b.models
    assert ma.served == mb.served
    np.testing.assert_array_equal(ma.equity, mb.equity)
    assert a.promotions == b.promotions
    assert a.rollbacks == b.rollbacks


def test_no_retrain_of_a_replay_sees_data_from_after_its_simulated_time(
    replays: tuple[LifecycleResult, LifecycleResult, Path],
) -> None:
    a, _, home = replays
    published = [r for r in a.runs if r.version is not None]
    assert len(published) >= 3
    with open_registry(home, create=False) as registry:
        for run in published:
            manifest = registry.get("BTCUSDT/lightgbm", run.version).manifest  # type: ignore[arg-type]
            gated = next(s for s in run.steps if s.step == "gated")
            gate_start, gate_end = gated.detail["window"].split("..")
            assert manifest.data.end < datetime.fromisoformat(gate_start) < run.started
            assert datetime.fromisoformat(gate_end) <= run.started
            assert not (GAP[0] <= manifest.data.end < GAP[1])


def test_the_injected_faults_show_in_the_replay(
    replays: tuple[LifecycleResult, LifecycleResult, Path],
) -> None:
    a, _, _ = replays
    crashed = [r for r in a.runs if r.state == "failed"]
    assert len(crashed) == 1
    assert "injected training crash" in crashed[0].outcome
    assert crashed[0].started >= CRASH
    (model,) = a.models
    # The gap's 36 hours are missing for training and for the live feed alike; the tree
    # model serves again from the first bar after it (a sequence model would wait out its
    # lookback and count those bars in gap_bars).
    gap_ms = [int(t.timestamp() * 1000) for t in GAP]
    stamps = model.timestamps_ms
    assert not ((stamps >= gap_ms[0]) & (stamps < gap_ms[1])).any()
    assert a.bars == (END - START) // timedelta(hours=1) - 36
    assert sum(model.served.values()) + model.gap_bars == a.bars
    assert a.counts.get("promoted") == 1  # the first champion; every later one rolled out
    assert model.first_champion is not None
    assert model.buy_and_hold[-1] > 0


@given(hours=st.integers(min_value=600 * 24 // 24 * 5, max_value=8000))
def test_a_retrain_reads_only_candles_before_now(
    hours: int, pilot_home_for_property: Autopilot
) -> None:
    pilot = pilot_home_for_property
    now = datetime(2024, 7, 1, tzinfo=UTC) + timedelta(hours=hours, minutes=hours % 60)
    (model,) = pilot.policy.models
    data = pilot.candles_before(model.job, now)
    stamps = data["BTCUSDT"].timestamps_ms
    assert int(stamps[-1]) < now.timestamp() * 1000
    gate_start, gate_end, train_start = pilot.windows(model, data)
    assert train_start is not None
    assert train_start < gate_start < gate_end <= now.timestamp() * 1000 + 1


@pytest.fixture(scope="module")
def pilot_home_for_property(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Autopilot:
    home = _home(tmp_path_factory.mktemp("p"), data_dir)
    config = load_config(environ={"ALPHAOPS_HOME": str(home)})
    return Autopilot(config, make_policy(), executor="sequential")


def test_the_replay_command_prints_80_columns_and_json(tmp_path: Path, data_dir: Path) -> None:
    home = _home(tmp_path, data_dir)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(_policy_data()))
    base = [sys.executable, "-m", "alphaops", "--home", str(home), "replay", "--policy",
            str(policy), "--from", "2025-03-01", "--to", "2025-03-12"]  # fmt: skip
    env = os.environ | {"COLUMNS": "80"}
    text = subprocess.run(
        [*base, "--html", str(tmp_path / "r.html")], capture_output=True, text=True, env=env
    )
    assert text.returncode == 0, text.stderr
    assert "Lifecycle replay 2025-03-01 .. 2025-03-12" in text.stdout
    assert "buy and hold" in text.stdout
    lines = [line for line in text.stdout.splitlines() if not line.startswith("report: ")]
    assert max(len(line) for line in lines) <= 80  # a path may be longer: it is never cut
    page = (tmp_path / "r.html").read_text()
    assert "data:image/png;base64," in page
    assert "Autopilot runs" in page
    # A second replay in the same registry would mix with the first: refused, nothing run.
    again = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env)
    assert again.returncode == 1
    assert "a replay needs a registry of its own" in again.stdout  # --json: the error too
    assert "Traceback" not in again.stderr
    fresh = _home(tmp_path / "second", data_dir)
    base[4] = str(fresh)
    second = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["retrains"] >= 1
    (model,) = summary["models"]
    assert model["model"] == "BTCUSDT/lightgbm"
    bad = subprocess.run([*base[:-4], "--from", "2025-03-12", "--to", "2025-03-01"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr


def test_the_readme_sample_replay_imports_the_bundled_sample_and_runs(tmp_path: Path) -> None:
    # The README's command replays a year; the same path, cut to its first month here.
    done = subprocess.run(
        [sys.executable, "-m", "alphaops", "--home", str(tmp_path / "home"), "replay",
         "--sample", "--to", "2024-11-15", "--json"],
        capture_output=True, text=True, env=os.environ | {"COLUMNS": "80"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [m["model"] for m in summary["models"]] == [
        "BTCUSDT/lightgbm",
        "ETHUSDT/lightgbm",
        "SOLUSDT/lightgbm",
    ]
    assert summary["retrains"] >= 3  # every model's first version, at least
