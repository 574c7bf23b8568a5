"""SIGTERM and Ctrl-C on real ``alphaops`` processes, with real candles and real pool workers.

Each scenario starts the CLI in its own session (so every process it starts can be found
again in ``/proc``), signals it the way a supervisor (``kill``) or a terminal (Ctrl-C, to the
whole process group) would, and checks the exit code, that no process of the session is
left, and that the registry holds only whole, verified versions and no new champion.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alphaops.core.home import AlphaOpsHome
from alphaops.registry import VersionStatus, open_registry

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

# Run `python -m alphaops` with Ctrl-C at its default: a shell that starts a job in the
# background (and so some CI runners) hands SIGINT down ignored.
_LAUNCH = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'alphaops', *sys.argv[1:]])"
)
# The same entry, but it says when the alphaops package is imported and the CLI is not yet.
_LAUNCH_AFTER_PACKAGE = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import alphaops; "
    "sys.stderr.write('package imported\\n'); sys.stderr.flush(); "
    "from alphaops.__main__ import run; sys.argv[0] = 'alphaops'; run()"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TRAIN_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
ROUNDS = 100_000  # far more boosting rounds than a test waits for: the signal always comes first


@dataclass(frozen=True)
class Proc:
    """One process as ``/proc/<pid>/stat`` shows it."""

    pid: int
    state: str
    ppid: int
    session: int


def processes() -> list[Proc]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        state, ppid, _pgrp, session = text[text.rindex(")") + 2 :].split()[:4]
        found.append(Proc(int(entry.name), state, int(ppid), int(session)))
    return found


def descendants(pid: int) -> list[Proc]:
    table = processes()
    found, frontier = [], {pid}
    while frontier:
        children = [p for p in table if p.ppid in frontier]
        found += children
        frontier = {p.pid for p in children}
    return found


def alive_in_session(session: int) -> list[Proc]:
    # A zombie has exited; only its parent (here init) has still to reap it.
    return [p for p in processes() if p.session == session and p.state not in "ZX"]


@dataclass
class Cli:
    """A running ``alphaops`` process whose stderr goes to a file."""

    process: subprocess.Popen[bytes]
    err_file: Path
    out_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return _ANSI.sub("", self.err_file.read_text(errors="replace"))

    def stdout(self) -> str:
        return self.out_file.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while re.search(pattern, self.stderr()) is None:
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {pattern!r} in: {self.stderr()[-2000:]}"
            time.sleep(0.05)

    def finish(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout}s after the signal: {self.stderr()[-2000:]}")


Starter = Callable[..., Cli]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Starter]:
    started: list[Cli] = []

    def run(*args: str, launch: str = _LAUNCH) -> Cli:
        n = len(started)
        out, err = tmp_path / f"out{n}.txt", tmp_path / f"err{n}.txt"
        env = os.environ | {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "200"}
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-c", launch, *args],
                stdout=stdout,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )
        started.append(Cli(process, err, out))
        return started[-1]

    yield run
    for cli in started:  # a failed test must not leave training processes behind
        for proc in alive_in_session(cli.pid):
            os.kill(proc.pid, signal.SIGKILL)
        if cli.process.poll() is None:
            cli.process.kill()
        cli.process.wait()


@pytest.fixture(scope="module")
def candle_home(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a home holding real 1h candles of four symbols, imported by the CLI."""
    root = tmp_path_factory.mktemp("signals") / "home"
    files = [str(data_dir / f"{symbol}-1h.parquet") for symbol in TRAIN_SYMBOLS]
    done = subprocess.run(
        [sys.executable, "-m", "alphaops", "--home", str(root), "data", "import", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return root


def train_args(home: Path) -> list[str]:
    return [
        "--home", str(home), "train", "--symbols", ",".join(TRAIN_SYMBOLS),
        "--model", "lightgbm", "--executor", "process", "--workers", "2",
        "--start", "2024-01-01", "--param", f"n_estimators={ROUNDS}",
        "--param", "early_stopping_rounds=0",
    ]  # fmt: skip


def assert_nothing_half_published(home: Path) -> list[str]:
    """Assert every version is ready and verifies, and no alias moved; return the refs."""
    with open_registry(AlphaOpsHome(home)) as registry:
        versions = registry.list_versions(all_statuses=True)
        assert [v.ref for v in versions if v.status is not VersionStatus.READY] == []
        report = registry.verify()
        assert report.ok, report.problems
        assert {str(k): registry.aliases(k) for k in registry.list_models()} == {
            str(k): {} for k in registry.list_models()
        }
    return [v.ref for v in versions]


@pytest.mark.parametrize(
    ("signum", "to_group", "code"),
    [(signal.SIGTERM, False, 143), (signal.SIGINT, True, 130)],
    ids=["kill-sigterm", "ctrl-c-to-the-group"],
)
def test_a_signal_during_pool_training_stops_every_worker_and_publishes_nothing(
    start: Starter,
    candle_home: Path,
    tmp_path: Path,
    signum: signal.Signals,
    to_group: bool,
    code: int,
) -> None:
    home = tmp_path / "home"
    shutil.copytree(candle_home, home)
    cli = start(*train_args(home))
    cli.wait_for(rf"lightgbm\s.*\b[1-9]\d*/{ROUNDS}\b", timeout=60)  # boosting under way
    workers = [p for p in descendants(cli.pid) if p.ppid != cli.pid]  # children of the server
    assert len(workers) == 2, descendants(cli.pid)
    if to_group:
        os.killpg(cli.pid, signum)  # what a terminal does on Ctrl-C
    else:
        os.kill(cli.pid, signum)  # what kill, systemd or docker stop do
    signalled = time.monotonic()
    assert cli.finish(timeout=15) == code, cli.stderr()[-2000:]
    assert time.monotonic() - signalled < 10
    deadline = time.monotonic() + 5
    while alive_in_session(cli.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive_in_session(cli.pid) == []
    assert "Traceback" not in cli.stderr()
    assert "training interrupted" in cli.stderr()
    assert assert_nothing_half_published(home) == []


def test_ctrl_c_while_quickstart_trains_stops_it_before_gates_or_promotion(
    start: Starter, tmp_path: Path
) -> None:
    home = tmp_path / "fresh"
    cli = start("--home", str(home), "quickstart")
    # The first LightGBM has boosted at least one of its 60 rounds.
    cli.wait_for(r"train BTCUSDT lightgbm\s.*\b[1-9]\d*/60\b", timeout=90)
    cli.process.send_signal(signal.SIGINT)
    assert cli.finish(timeout=15) == 130, cli.stderr()[-2000:]
    err = cli.stderr()
    assert "Traceback" not in err
    assert "quickstart interrupted during training" in err
    assert "gate " not in err.rsplit("train a LightGBM", 1)[-1]  # no stage after training ran
    assert "promot" not in cli.stdout()
    assert alive_in_session(cli.pid) == []
    assert_nothing_half_published(home)  # earlier jobs may stay candidates; no champion


def test_ctrl_c_while_the_cli_is_still_importing_prints_one_line_and_exits_130(
    start: Starter, tmp_path: Path
) -> None:
    # The CLI takes seconds to import; a Ctrl-C then must not dump an import traceback.
    for attempt in range(3):
        cli = start("--home", str(tmp_path / "h"), "data", "list", launch=_LAUNCH_AFTER_PACKAGE)
        cli.wait_for("package imported", timeout=30)
        time.sleep(0.1 * attempt)
        cli.process.send_signal(signal.SIGINT)
        assert cli.finish(timeout=15) == 130, cli.stderr()
        assert "Traceback" not in cli.stderr()
        assert cli.stderr().strip().splitlines()[-1] == "interrupted"


def test_sigterm_while_the_cli_is_still_importing_exits_143_without_a_traceback(
    start: Starter, tmp_path: Path
) -> None:
    cli = start("--home", str(tmp_path / "h"), "data", "list", launch=_LAUNCH_AFTER_PACKAGE)
    cli.wait_for("package imported", timeout=30)
    cli.process.send_signal(signal.SIGTERM)
    assert cli.finish(timeout=15) == 143, cli.stderr()
    assert "Traceback" not in cli.stderr()


def test_ctrl_c_in_the_first_tenths_of_a_second_prints_no_traceback(
    start: Starter, tmp_path: Path
) -> None:
    for delay in (0.1, 0.2, 0.3, 0.4):
        cli = start("--home", str(tmp_path / "h"), "data", "list")
        time.sleep(delay)
        cli.process.send_signal(signal.SIGINT)
        code = cli.finish(timeout=15)
        assert "Traceback" not in cli.stderr()
        assert code in (130, -signal.SIGINT)  # -2: killed before Python set up its handler
