"""``alphaops activate`` against a real child process standing in for the bot's service.

``restart.py`` stops the previous service (its pid file) and starts ``service.py``, which reads
the env file and writes the model value it loaded to ``served.txt``; ``health.py`` exits 0 when
the served value is a bundle folder holding ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alphaops.cli import main
from alphaops.gates.records import GateRecordStore
from alphaops.registry import open_registry

KEY = "BTCUSDT/logreg"
ENV = b"# bot settings\nEXCHANGE=binance\r\nMODEL_PATH='/old/model'\nMODEL_PATH_X=keep\n  TAIL=1"

SERVICE = """
import pathlib, signal, sys, time
env, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
value = next(l.split("=", 1)[1].strip().strip("'") for l in env.read_text().splitlines()
             if l.startswith("MODEL_PATH="))
tmp = out.with_suffix(".tmp"); tmp.write_text(value); tmp.replace(out)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    signal.pause()
"""
RESTART = """
import os, pathlib, signal, subprocess, sys, time
env, out, pidfile = (pathlib.Path(a) for a in sys.argv[1:4])
if pidfile.exists():
    try:
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
    except ProcessLookupError:
        pass
out.unlink(missing_ok=True)
child = subprocess.Popen([sys.executable, str(pidfile.parent / "service.py"), str(env), str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
pidfile.write_text(str(child.pid))
deadline = time.monotonic() + 30
while not out.exists():
    if child.poll() is not None or time.monotonic() > deadline:
        sys.exit("service did not start")
    time.sleep(0.01)
"""
HEALTH = """
import pathlib, sys
served = pathlib.Path(pathlib.Path(sys.argv[1]).read_text())
sys.exit(0 if (served / "manifest.json").is_file() else f"unhealthy: {served} has no manifest")
"""


class Service:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = folder / "bot.env"
        self.served = folder / "served.txt"
        self.pidfile = folder / "service.pid"
        for name, code in (("service", SERVICE), ("restart", RESTART), ("health", HEALTH)):
            (folder / f"{name}.py").write_text(code)
        self.env.write_bytes(ENV)
        py = sys.executable
        self.restart = f"{py} {folder / 'restart.py'} {self.env} {self.served} {self.pidfile}"
        self.health = f"{py} {folder / 'health.py'} {self.served}"

    def stop(self) -> None:
        if self.pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(self.pidfile.read_text()), signal.SIGTERM)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    folder = tmp_path / "svc"
    folder.mkdir()
    svc = Service(folder)
    yield svc
    svc.stop()


@pytest.fixture
def home(tmp_path: Path, make_bundle: Callable[..., Path]) -> Path:
    """A home with BTCUSDT/logreg/1 gated (passed) and /2 never gated."""
    from datetime import UTC, datetime

    from alphaops.gates.records import GateRecord, ensure_policy

    home = tmp_path / "home"
    with open_registry(home) as reg:
        for seed in (1, 2):
            reg.publish(make_bundle(seed=seed))
        v = reg.get(KEY, 1)
        now = datetime.now(UTC)
        policy = ensure_policy(reg)  # a pass clears only under the registry's policy
        GateRecordStore(reg).save(
            GateRecord(
                symbol="BTCUSDT", model_type="logreg", version=1,
                manifest_sha256=v.manifest_sha256, champion=None, passed=True, gates=(),
                window_start=now, window_end=now, policy=policy.to_dict(),
                policy_hash=policy.policy_hash, run_at=now,
                code_version="test",
            )
        )  # fmt: skip
    return home


def run(
    home: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, object]]:
    code = main(["--home", str(home), "activate", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def activate_args(service: Service, ref: str, health: str | None = None) -> list[str]:
    return [
        "--env-file", str(service.env), "--key", "MODEL_PATH", "--ref", ref,
        "--restart-cmd", service.restart, "--health-cmd", health or service.health,
    ]  # fmt: skip


def test_activation_edits_only_the_key_restarts_the_service_and_audits_the_versions(
    home: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = run(home, capsys, *activate_args(service, f"{KEY}/1"))
    assert code == 0, result
    with open_registry(home) as reg:
        location = reg.get(KEY, 1).location
        record = reg.history(KEY)[-1]
    assert service.env.read_bytes() == ENV.replace(b"/old/model", location.encode())
    assert service.served.read_text() == location  # the real child process loaded it
    assert Path(str(result["backup"])).read_bytes() == ENV
    assert (record.action, record.to_version) == ("activate", 1)
    assert "MODEL_PATH" in record.reason
    assert "built by" in record.reason
    assert record.code_version


def test_a_failed_health_check_restores_the_file_byte_for_byte_and_restarts_again(
    home: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    code, error = run(home, capsys, *activate_args(service, f"{KEY}/1", failing))
    assert code == 1
    assert error["error"] == "external_service"
    assert "restored" in str(error["message"])
    assert service.env.read_bytes() == ENV
    assert service.served.read_text() == "/old/model"  # restarted on the old value
    with open_registry(home) as reg:
        assert [r.action for r in reg.history(KEY)][-2:] == ["activate", "activate_revert"]


def test_an_ungated_version_is_refused_before_anything_is_touched(
    home: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    code, error = run(home, capsys, *activate_args(service, f"{KEY}/2"))
    assert (code, error["error"]) == (2, "gate_failed")
    assert service.env.read_bytes() == ENV
    assert not service.served.exists()
    assert list(service.folder.glob("*backup*")) == []


def test_rollback_last_restores_the_newest_backup_only_after_confirmation(
    home: Path,
    service: Service,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run(home, capsys, *activate_args(service, f"{KEY}/1"))[0] == 0
    activated = service.env.read_bytes()
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, result = run(home, capsys, "rollback-last", "--env-file", str(service.env))
    assert (code, result["restored_from"]) == (0, None)
    assert service.env.read_bytes() == activated
    code, result = run(
        home, capsys, "rollback-last", "--env-file", str(service.env), "--yes",
        "--restart-cmd", service.restart,
    )  # fmt: skip
    assert (code, result["undid"]) == (0, f"{KEY}/1")
    assert service.env.read_bytes() == ENV
    assert service.served.read_text() == "/old/model"
    with open_registry(home) as reg:
        last = reg.history(KEY)[-1]
    assert (last.action, last.to_version) == ("activate_revert", 1)
    assert "rollback-last: restored from bot.env.alphaops-backup-" in last.reason
    assert f"{service.env}:MODEL_PATH -> {KEY}/1" in last.reason


def test_rollback_last_restores_a_backup_without_activation_record_unaudited(
    home: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(home, capsys, *activate_args(service, f"{KEY}/1"))[0] == 0
    (record,) = service.folder.glob("*.activation.json")
    record.write_text('{"ref": "BTCUSDT/lo')  # cut short by a crash
    with open_registry(home) as reg:
        before = len(reg.history(KEY))
    code, result = run(home, capsys, "rollback-last", "--env-file", str(service.env), "--yes")
    assert (code, result["undid"]) == (0, None)
    assert service.env.read_bytes() == ENV
    with open_registry(home) as reg:
        assert len(reg.history(KEY)) == before


def test_an_env_file_without_exactly_one_such_key_is_refused_with_a_fix(
    home: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    service.env.write_bytes(b"OTHER=1\n")
    code, error = run(home, capsys, *activate_args(service, f"{KEY}/1"))
    assert (code, error["error"]) == (1, "usage_error")
    assert "0 lines setting MODEL_PATH" in str(error["message"])
    assert service.env.read_bytes() == b"OTHER=1\n"
