"""The autopilot as a service: embedded in a bot's process, stopped by signals, resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from alphaops.autopilot import AutopilotLog
from alphaops.autopilot.service import AutopilotThread
from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import NotFoundError
from alphaops.core.home import AlphaOpsHome
from alphaops.registry import HOLD_ALARM, open_registry
from alphaops.registry.refs import parse_key

from .conftest import make_policy, model_policy

KEY = parse_key("BTCUSDT/lightgbm")


def _policy_file(tmp_path: Path, rounds: int = 60, **overrides: object) -> Path:
    model = model_policy(**overrides)
    model["job"] = model["job"] | {"params": {"n_estimators": rounds, "early_stopping_rounds": 0}}
    path = tmp_path / "autopilot.yaml"
    path.write_text(yaml.safe_dump({"check_every": "1s", "models": [model]}))
    return path


def _cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphaops", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"COLUMNS": "80"},
    )


def _steps(home: Path) -> list[tuple[str, str]]:
    try:
        registry = open_registry(AlphaOpsHome(home), create=False)
    except NotFoundError:  # the autopilot has not created the registry yet
        return []
    with registry:
        return [(s.run_id, s.step) for r in AutopilotLog(registry).runs() for s in r.steps]


def _wait_for_step(
    home: Path, step: str, process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not any(s == step for _, s in _steps(home)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {step!r} step within {timeout}s"
        time.sleep(0.1)


def _wait_for_training_child(pid: int, timeout: float) -> None:
    # The process executor trains in a child of the autopilot: wait until one is running.
    deadline = time.monotonic() + timeout
    while True:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                return
        assert time.monotonic() < deadline, f"no training child of {pid} within {timeout}s"
        time.sleep(0.05)


def test_embedded_in_a_bot_it_trains_in_a_child_process_and_stops_cleanly(
    config: AlphaOpsConfig,
) -> None:
    seen: list[str] = []
    pilot = AutopilotThread(
        config,
        make_policy(check_every="1s"),
        executor="process",
        on_runs=lambda runs: seen.extend(r.state for r in runs),
    ).start()
    try:
        deadline = time.monotonic() + 180
        while not seen and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        assert pilot.stop(timeout_s=60)
    assert pilot.errors == []
    assert seen
    assert seen[0] in ("promoted", "blocked")
    assert pilot.checks >= 1


def test_sigterm_ends_the_running_retrain_cleanly_and_a_restart_resumes(
    config: AlphaOpsConfig, tmp_path: Path
) -> None:
    home = Path(config.home)
    policy = _policy_file(tmp_path, rounds=20000)
    process = subprocess.Popen(
        [sys.executable, "-m", "alphaops", "--home", str(home), "autopilot", "run",
         "--policy", str(policy), "--executor", "process"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_step(home, "fired", process, timeout=120)
        _wait_for_training_child(process.pid, timeout=120)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    steps = _steps(home)
    assert steps[-1][1] == "cancelled"  # the run ended, logged, nothing half done
    with open_registry(AlphaOpsHome(home), create=False) as registry:
        assert registry.aliases(KEY) == {}
        assert registry.verify().ok
    # The next start finds no open run and retrains what is due.
    quick = _policy_file(tmp_path, rounds=60)
    done = _cli(home, "autopilot", "once", "--policy", str(quick), "--executor", "sequential")
    assert done.returncode == 0, done.stderr
    assert "promoted" in done.stdout or "blocked" in done.stdout


def test_a_killed_autopilot_is_resumed_without_duplicating_anything(
    config: AlphaOpsConfig, tmp_path: Path
) -> None:
    home = Path(config.home)
    policy = _policy_file(tmp_path, rounds=20000)
    process = subprocess.Popen(
        [sys.executable, "-m", "alphaops", "--home", str(home), "autopilot", "once",
         "--policy", str(policy), "--executor", "process"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_step(home, "fired", process, timeout=120)
        _wait_for_training_child(process.pid, timeout=120)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the autopilot and its training child
        process.wait(30)
    (cut,) = {run for run, _ in _steps(home)}
    quick = _policy_file(tmp_path, rounds=60)
    done = _cli(home, "autopilot", "once", "--policy", str(quick), "--executor", "sequential")
    assert done.returncode == 0, done.stderr
    with open_registry(AlphaOpsHome(home), create=False) as registry:
        runs = AutopilotLog(registry).runs()
        assert next(r.run_id for r in runs) == cut
        assert next(r.state for r in runs) == "abandoned"
        assert len(runs) == 2
        assert runs[1].state in ("promoted", "blocked")
        assert registry.verify().ok
        assert len(registry.list_versions(KEY)) == 1  # the killed training published nothing


def test_status_exits_2_and_says_so_while_bots_hold(config: AlphaOpsConfig, tmp_path: Path) -> None:
    home = Path(config.home)
    policy = _policy_file(tmp_path)
    assert _cli(home, "autopilot", "once", "--policy", str(policy), "--at", "2025-01-08",
                "--executor", "sequential").returncode == 0  # fmt: skip
    ok = _cli(home, "autopilot", "status", "--policy", str(policy))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "BTCUSDT/lightgbm  ok" in ok.stdout
    with open_registry(AlphaOpsHome(home)) as registry:
        registry.raise_alarm(KEY, kind=HOLD_ALARM, detail={"summary": "drill"}, actor="ops")
    held = _cli(home, "autopilot", "status", "--policy", str(policy))
    assert held.returncode == 2
    assert "NEEDS ATTENTION" in held.stdout
    assert "drill" in held.stdout
    assert max(len(line) for line in held.stdout.splitlines()) <= 80
    history = _cli(home, "autopilot", "history", "BTCUSDT/lightgbm", "--json")
    assert history.returncode == 0, history.stderr
    (run,) = json.loads(history.stdout)
    assert run["kind"] == "scheduled"
    assert next(s["step"] for s in run["steps"]) == "fired"


def test_history_of_an_unknown_model_is_a_not_found_error(config: AlphaOpsConfig) -> None:
    home = Path(config.home)
    _cli(home, "data", "list")
    done = _cli(home, "autopilot", "history", "NOPE/lightgbm")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("bad", ["models: [\n", "- 1\n", "models: []\nretrains: 3\n"])
def test_a_broken_policy_file_is_one_clear_error(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(bad)
    done = _cli(tmp_path / "home", "autopilot", "validate", str(path))
    assert done.returncode == 1
    assert "fix:" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_a_check_that_fails_is_reported_and_retried_never_silent(config: AlphaOpsConfig) -> None:
    errors: list[BaseException] = []
    thread = AutopilotThread(
        config, make_policy(check_every="1s"), executor="sequential", on_error=errors.append
    )

    def broken(job: object) -> None:
        raise KeyError("a bug in a training hook")

    thread.pilot.fault = broken
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while (not errors or thread.checks < 3) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert thread.stop(timeout_s=60)
    (error,) = errors  # reported once; the run it broke is logged failed and cools down
    assert isinstance(error, KeyError)
    assert thread.errors == errors
    assert thread.checks >= 3  # the scheduler went on checking
    with open_registry(AlphaOpsHome(Path(config.home)), create=False) as registry:
        (run,) = AutopilotLog(registry).runs()
    assert run.state == "failed"


def test_sigterm_stops_a_replay_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = subprocess.Popen(
        [sys.executable, "-m", "alphaops", "--home", str(home), "replay", "--sample"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_step(home, "gated", process, timeout=180)  # the replay is under way
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert "the replay was stopped" in err
