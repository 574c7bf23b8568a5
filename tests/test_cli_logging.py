"""``-v/--verbose``, ``--log-file`` and the config's ``log_level``: config < env < flag."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from alphaops.cli import main
from alphaops.core.logs import LOGGER_NAME
from alphaops.registry import open_registry

INFO_LINE = re.compile(r"INFO alphaops\.cli: alphaops \S+: .*registry list")
DEBUG_LINE = re.compile(r"DEBUG alphaops\.cli: log level DEBUG")


@pytest.fixture(autouse=True)
def _clean_logger() -> Iterator[None]:
    yield
    assert not logging.getLogger(LOGGER_NAME).handlers, "main() must remove its log handlers"


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    monkeypatch.delenv("ALPHAOPS_LOG_LEVEL", raising=False)
    monkeypatch.delenv("ALPHAOPS_CONFIG", raising=False)
    root = str(tmp_path / "home")
    assert main(["--home", root, "registry", "list"]) == 1  # no home yet: read-only refuses
    with open_registry(tmp_path / "home"):  # an empty registry: `registry list` succeeds
        pass
    capsys.readouterr()
    return root


def _stderr(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    _out, err = capsys.readouterr()
    assert code == 0, err
    return err


def test_by_default_a_command_logs_nothing_on_stderr(
    home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _stderr(capsys, "--home", home, "registry", "list") == ""


def test_v_logs_info_and_vv_logs_debug_on_stderr(
    home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _stderr(capsys, "--home", home, "-v", "registry", "list")
    assert INFO_LINE.search(err), err
    assert not DEBUG_LINE.search(err)
    assert re.search(r"INFO alphaops\.cli: exit 0 after \d+\.\d\d s", err), err
    err = _stderr(capsys, "--home", home, "-vv", "registry", "list")
    assert INFO_LINE.search(err)
    assert DEBUG_LINE.search(err), err


def test_log_level_comes_from_the_config_file_then_the_env_then_the_flag(
    home: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "alphaops.yaml"
    config.write_text("log_level: INFO\n")
    args = ("--home", home, "--config", str(config))
    assert INFO_LINE.search(_stderr(capsys, *args, "registry", "list"))  # the file says INFO
    monkeypatch.setenv("ALPHAOPS_LOG_LEVEL", "ERROR")  # the env wins over the file
    assert _stderr(capsys, *args, "registry", "list") == ""
    assert DEBUG_LINE.search(_stderr(capsys, *args, "-vv", "registry", "list"))  # the flag wins


def test_log_file_receives_info_lines_even_when_stderr_is_quiet(
    home: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "alphaops.log"
    assert _stderr(capsys, "--home", home, "--log-file", str(log_file), "registry", "list") == ""
    first = log_file.read_text()
    assert INFO_LINE.search(first), first
    assert "exit 0" in first
    assert not DEBUG_LINE.search(first)
    # A failing command appends its error code; -vv adds the traceback.
    code = main(["--home", home, "--log-file", str(log_file), "-vv", "registry", "show", "X/y/1"])
    assert code == 1
    text = log_file.read_text()
    assert text.startswith(first)  # appended, not overwritten
    assert re.search(r"INFO alphaops\.cli: failed \(\w+\): ", text), text
    assert "Traceback (most recent call last)" in text


def test_a_database_password_in_the_command_line_is_not_logged(
    home: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "alphaops.log"
    url = f"sqlite:///{tmp_path / 'x.db'}"
    secret = "postgresql://bob:s3cret@127.0.0.1:1/db"
    main(["--home", home, "--log-file", str(log_file), "registry", "--db", url, "list"])
    main(["--home", home, "--log-file", str(log_file), "registry", "--db", secret, "list"])
    text = log_file.read_text()
    assert "bob:***@127.0.0.1" in text
    assert "s3cret" not in text
    assert "s3cret" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("missing/folder/alphaops.log", "cannot be opened for writing"),
        (".", "is a folder"),
    ],
)
def test_a_log_file_that_cannot_be_written_is_a_typed_error_naming_it(
    home: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, problem: str
) -> None:
    path = tmp_path / where
    code = main(["--home", home, "--log-file", str(path), "registry", "list"])
    _out, err = capsys.readouterr()
    assert code == 1
    assert "error (usage_error)" in err
    assert problem in err
    assert str(path) in err or str(path).rstrip("/.") in err
    assert "fix:" in err
