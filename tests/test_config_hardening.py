"""Configuration that lies: every wrong home, URL, variable or number is a typed error.

Each scenario runs through the real command line (``alphaops.cli.main``) and, where a library
user reaches the same code, through the library.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import alphaops.services.activate as activate_module
from alphaops.cli import main
from alphaops.core.config import check_database_url, config_variables, load_config
from alphaops.core.errors import (
    ConfigError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    UsageError,
)
from alphaops.core.home import AlphaOpsHome
from alphaops.registry import Registry, open_registry
from alphaops.registry._db import Database
from alphaops.registry.refs import MAX_VERSION, parse_ref
from alphaops.registry.testing import build_tiny_bundle, record_passing_gates

KEY = "BTCUSDT/logreg"
HUGE = "9223372036854775808"  # 2**63
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)  # a relative path created by mistake would land here
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _error(out: str) -> dict[str, str]:
    found = json.loads(out)
    assert isinstance(found, dict)
    return found


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home holding one published, gated version of BTCUSDT/logreg."""
    folder = tmp_path / "home"
    with open_registry(folder) as registry:
        version = registry.publish(build_tiny_bundle(tmp_path / "bundle", seed=1))
        record_passing_gates(registry, version.ref)
    return folder


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    with open_registry(home) as opened:
        yield opened


# -- 1. a database URL that is not one --------------------------------------------------------


def test_a_garbage_database_url_variable_is_refused_naming_it_and_creates_nothing(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHAOPS_REGISTRY__DATABASE_URL", "not a url")
    code, out, _ = cli("--home", str(tmp_path / "home"), "registry", "list", "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "config_invalid")
    assert "ALPHAOPS_REGISTRY__DATABASE_URL='not a url'" in error["message"]
    assert "sqlite:///" in error["message"]
    assert "postgresql://" in error["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_garbage_database_url_is_refused_at_config_load_and_by_the_library(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="ALPHAOPS_REGISTRY__DATABASE_URL='not a url'"):
        load_config(environ={"ALPHAOPS_REGISTRY__DATABASE_URL": "not a url"})
    with pytest.raises(ConfigError, match=r"'not a url'.*sqlite:///.*postgresql://"):
        Database("not a url")
    # A URL missing its slashes is still a URL, never a folder named "sqlite:registry.db".
    with pytest.raises(ConfigError, match="no scheme"):
        open_registry(f"sqlite:{tmp_path}/registry.db", artifacts=tmp_path / "artifacts")
    with pytest.raises(ConfigError, match="port"):
        check_database_url("postgresql://ao:secret@db:five/registry")
    assert list(tmp_path.iterdir()) == []


def test_a_garbage_db_option_is_refused_naming_the_option(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("--home", str(tmp_path / "h"), "registry", "--db", "nope", "list", "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "config_invalid")
    assert error["message"].startswith("--db: 'nope' is not a database URL")
    assert list(tmp_path.iterdir()) == []


def test_a_password_in_a_refused_url_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"ALPHAOPS_REGISTRY__DATABASE_URL": "postgresql://ao:s3cret@db:x/r"})
    assert "s3cret" not in str(caught.value)
    assert "ao:***@db" in str(caught.value)


# -- 2. a mistyped home, an unknown model -----------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("registry", "list"),
        ("registry", "show", f"{KEY}/1"),
        ("registry", "history", KEY),
        ("registry", "verify"),
        ("registry", "diff", f"{KEY}/1", f"{KEY}/2"),
        ("registry", "export", f"{KEY}/1"),
        ("registry", "promote", f"{KEY}/1", "--expect", "none", "--reason", "r"),
        ("rollback", KEY, "--reason", "r"),
        ("registry", "doctor"),
        ("rollout", "status"),
        ("rollout", "advance", KEY),
        ("scoreboard", "BTCUSDT"),
        ("gate", "run", f"{KEY}/1"),
        ("journal", "stats", KEY),
        ("monitor", KEY),
        ("alarm", "list", KEY),
        ("alarm", "ack", KEY, "--reason", "r"),
        ("data", "list"),
        ("data", "check", "BTCUSDT", "1h"),
        ("data", "show", "BTCUSDT", "1h"),
    ],
)
def test_a_command_on_a_home_that_does_not_exist_names_it_and_creates_nothing(
    cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "hoem"
    code, out, _ = cli("--home", str(typo), *command, "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "not_found")
    assert f"alphaops home {typo} does not exist" in error["message"]
    assert "alphaops quickstart" in error["fix"]
    assert "alphaops data import" in error["fix"]
    assert not typo.exists()


def test_a_home_without_a_registry_database_says_so_and_how_to_make_one(
    cli: Cli, tmp_path: Path
) -> None:
    AlphaOpsHome(tmp_path / "home").ensure()  # e.g. after 'alphaops data import' only
    code, out, _ = cli("--home", str(tmp_path / "home"), "registry", "verify", "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "not_found")
    assert "alphaops.db" in error["message"]
    assert "alphaops registry import" in error["fix"]
    assert not (tmp_path / "home" / "alphaops.db").exists()


def test_read_only_opening_never_creates_a_home_or_a_database(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        open_registry(tmp_path / "typo", create=False)
    with pytest.raises(NotFoundError, match=r"missing\.db does not exist"):
        open_registry(
            f"sqlite:///{tmp_path}/missing.db", artifacts=tmp_path / "artifacts", create=False
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ("registry", "history", "BTCUSDT/lightgbm"),
        ("registry", "list", "BTCUSDT/lightgbm"),
        ("registry", "list", "ETHUSDT"),
        ("registry", "show", "BTCUSDT/lightgbm"),
        ("registry", "show", "BTCUSDT/lightgbm/1"),
    ],
)
def test_a_model_never_published_is_not_found_and_the_fix_lists_the_known_ones(
    cli: Cli, home: Path, command: tuple[str, ...]
) -> None:
    code, out, _ = cli("--home", str(home), *command, "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "not_found")
    assert "never published" in error["message"]
    assert command[-1].split("/")[0] in error["message"]
    assert KEY in error["fix"]
    assert "alphaops registry list" in error["fix"]


def test_the_library_refuses_reads_of_a_model_never_published(registry: Registry) -> None:
    for read in (
        lambda: registry.history("ETHUSDT/logreg"),
        lambda: registry.list_versions("ETHUSDT/logreg"),
        lambda: registry.alarms("ETHUSDT/logreg"),
        lambda: registry.resolve("ETHUSDT/logreg@champion"),
        lambda: registry.require_model("ETHUSDT/logreg"),
    ):
        with pytest.raises(NotFoundError, match="ETHUSDT/logreg was never published") as caught:
            read()
        assert KEY in (caught.value.fix or "")
    assert registry.require_model(KEY).symbol == "BTCUSDT"
    assert [r.action for r in registry.history(KEY)] == ["publish"]


def test_commands_that_create_still_create_a_home(cli: Cli, tmp_path: Path, home: Path) -> None:
    archive = tmp_path / "v1.tar.gz"
    assert cli("--home", str(home), "registry", "export", f"{KEY}/1", "-o", str(archive))[0] == 0
    fresh = tmp_path / "fresh"
    code, out, err = cli("--home", str(fresh), "registry", "import", str(archive))
    assert code == 0, err
    assert "as BTCUSDT/logreg/1" in out
    code, out, err = cli("--home", str(fresh), "registry", "history", KEY, "--json")
    assert (code, [r["action"] for r in json.loads(out)]) == (0, ["publish"]), err


# -- 3. an ALPHAOPS_* variable that is no setting ---------------------------------------------


def test_an_unrelated_alphaops_variable_is_named_with_the_valid_settings(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHAOPS_PY", "1")
    code, out, _ = cli("--home", str(tmp_path / "h"), "config", "show", "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "config_invalid")
    assert error["message"] == "environment variable ALPHAOPS_PY is not an alphaops setting"
    assert "ALPHAOPS_HOME" in error["fix"]
    assert "ALPHAOPS_REGISTRY__DATABASE_URL" in error["fix"]


def test_a_mistyped_variable_is_an_error_naming_the_closest_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"ALPHAOPS_REGISTRY__DATABSE_URL": "postgresql://db/r"})
    assert "ALPHAOPS_REGISTRY__DATABSE_URL (did you mean ALPHAOPS_REGISTRY__DATABASE_URL?)" in (
        caught.value.message
    )
    assert caught.value.details["variables"] == ["ALPHAOPS_REGISTRY__DATABSE_URL"]
    # Test settings and an empty variable stay ignored; every valid name is accepted.
    assert load_config(environ={"ALPHAOPS_TEST_ANYTHING": "x", "ALPHAOPS_NOPE": ""})
    valid = {name: "x" for name in config_variables() if name != "ALPHAOPS_CONFIG"}
    with pytest.raises(ConfigError) as caught:
        load_config(environ=valid)
    assert "not an alphaops setting" not in caught.value.message  # refused for values only


# -- 4. homes that are files or unwritable, out-of-range numbers, broken archives -------------


def test_a_home_that_is_a_file_is_a_config_error_naming_it(cli: Cli, tmp_path: Path) -> None:
    file = tmp_path / "home"
    file.write_text("oops")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"never opened: the home is refused first")
    for command in (("registry", "list"), ("registry", "import", str(archive))):
        code, out, _ = cli("--home", str(file), *command, "--json")
        error = _error(out)
        assert (code, error["error"]) == (1, "config_invalid"), command
        assert f"alphaops home {file} is a file, not a folder" in error["message"]
    with pytest.raises(ConfigError, match="is a file"):
        AlphaOpsHome(file).ensure()
    with pytest.raises(ConfigError, match="is a file"):
        open_registry(file)


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder in which nothing can be created: read-only by mode, or /sys for root."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for candidate in (locked, Path("/sys")):
            try:
                (candidate / "probe").mkdir()
            except OSError:
                yield candidate
                return
            (candidate / "probe").rmdir()
        pytest.skip("no folder here refuses writes (running as root without /sys)")
    finally:
        locked.chmod(0o755)


def test_an_unwritable_home_is_a_config_error_naming_it(
    cli: Cli, unwritable: Path, home: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "v1.tar.gz"
    assert cli("--home", str(home), "registry", "export", f"{KEY}/1", "-o", str(archive))[0] == 0
    target = unwritable / "alphaops-home"
    code, out, _ = cli("--home", str(target), "registry", "import", str(archive), "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "config_invalid")
    assert f"cannot create the alphaops home {target}" in error["message"]
    with pytest.raises(ConfigError, match="cannot create the alphaops home"):
        open_registry(target)


@pytest.fixture
def read_only_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A bot's env file in a folder that refuses new files.

    The folder is made read-only; where that does not bind (root), creating files in it is made
    to fail the way the kernel would, with EACCES.
    """
    folder = tmp_path / "bot"
    folder.mkdir()
    env = folder / "bot.env"
    env.write_text("MODEL=/old/model\n")
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        pass
    else:
        (folder / "probe").unlink()

        def refuse(*args: object, **kwargs: object) -> object:
            raise PermissionError(13, "Permission denied", str(folder / "new"))

        monkeypatch.setattr(activate_module.shutil, "copy2", refuse)
        monkeypatch.setattr(activate_module.tempfile, "mkstemp", refuse)
    try:
        yield env
    finally:
        folder.chmod(0o755)


def test_activate_into_a_read_only_folder_is_a_usage_error_and_changes_nothing(
    cli: Cli, home: Path, read_only_bot: Path
) -> None:
    code, out, _ = cli(
        "--home", str(home), "activate", "--env-file", str(read_only_bot), "--key", "MODEL",
        "--ref", f"{KEY}/1", "--restart-cmd", "true", "--health-cmd", "true", "--json",
    )  # fmt: skip
    error = _error(out)
    assert (code, error["error"]) == (1, "usage_error")
    assert str(read_only_bot) in error["message"]
    assert "Permission denied" in error["message"]
    assert "writable" in error["fix"]
    assert read_only_bot.read_text() == "MODEL=/old/model\n"
    assert sorted(p.name for p in read_only_bot.parent.iterdir()) == ["bot.env"]
    with open_registry(home) as registry:
        assert [r.action for r in registry.history(KEY)] == ["publish"]


def test_rollback_last_into_a_read_only_folder_is_a_usage_error(
    read_only_bot: Path, cli: Cli
) -> None:
    backup = read_only_bot.with_name(
        read_only_bot.name + activate_module.BACKUP_MARK + "20250101T000000000000Z"
    )
    read_only_bot.parent.chmod(0o755)
    backup.write_text("MODEL=/older\n")
    read_only_bot.parent.chmod(0o555)
    with pytest.raises(UsageError, match="cannot restore env file"):
        activate_module.rollback_last(read_only_bot, confirm=lambda _: True)
    assert read_only_bot.read_text() == "MODEL=/old/model\n"


@pytest.mark.parametrize(
    "option", [("--max-size-mb", "inf"), ("--max-age-days", "inf"), ("--max-age-days", "nan")]
)
def test_prune_refuses_amounts_that_are_not_finite(
    cli: Cli, home: Path, option: tuple[str, str]
) -> None:
    code, out, _ = cli("--home", str(home), "registry", "prune", *option, "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "usage_error")
    assert f"{option[0]} {option[1]} is not a finite number" in error["message"]


def test_doctor_refuses_a_grace_that_is_not_a_number(cli: Cli, home: Path) -> None:
    code, out, _ = cli("--home", str(home), "registry", "doctor", "--grace-s", "nan", "--json")
    assert (code, _error(out)["error"]) == (1, "usage_error")


@pytest.mark.parametrize(
    "command",
    [
        ("registry", "show", f"{KEY}/{HUGE}"),
        ("registry", "promote", f"{KEY}/{HUGE}", "--expect", "none", "--reason", "r"),
        ("registry", "promote", f"{KEY}/1", "--expect", HUGE, "--reason", "r"),
        ("registry", "alias", "set", KEY, "challenger", HUGE, "--reason", "r"),
        ("rollback", KEY, "--to", HUGE, "--reason", "r"),
    ],
)
def test_a_version_beyond_the_version_column_is_a_usage_error(
    cli: Cli, home: Path, command: tuple[str, ...]
) -> None:
    code, out, _ = cli("--home", str(home), *command, "--json")
    error = _error(out)
    assert code == 1
    assert error["error"] in ("usage_error", "name_invalid")
    assert HUGE in error["message"]
    assert str(MAX_VERSION) in error["message"]


def test_a_version_beyond_the_version_column_is_refused_on_every_backend(
    db_url: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidNameError, match="too large"):
        parse_ref(f"{KEY}/{HUGE}")
    with open_registry(db_url, artifacts=tmp_path / "artifacts") as registry:
        registry.publish(build_tiny_bundle(tmp_path / "bundle", seed=1))
        # 2**31 overflows PostgreSQL's INTEGER column: refused before any query.
        with pytest.raises(InvalidNameError, match="too large"):
            registry.resolve(f"{KEY}/{MAX_VERSION + 1}")
        with pytest.raises(NotFoundError, match=f"{KEY}/{MAX_VERSION} does not exist"):
            registry.resolve(f"{KEY}/{MAX_VERSION}")


def _with_export_info(good: Path, target: Path, payload: bytes) -> Path:
    with tarfile.open(good) as source, tarfile.open(target, "w:gz") as out:
        for member in source.getmembers():
            extracted = source.extractfile(member)
            assert extracted is not None
            data = payload if member.name == "alphaops-export.json" else extracted.read()
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return target


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"not json{", "is not valid JSON"),
        (b"\xff\xfe", "is not valid JSON"),
        (b"[1, 2]", "holds a JSON list, not an object"),
        (b'{"manifest_sha256": 5}', "is 5, not a sha256 string"),
    ],
)
def test_an_archive_with_a_broken_export_record_is_an_integrity_error(
    cli: Cli, registry: Registry, tmp_path: Path, payload: bytes, says: str
) -> None:
    good = registry.export(f"{KEY}/1", tmp_path / "good.tar.gz")
    bad = _with_export_info(good, tmp_path / "bad.tar.gz", payload)
    code, out, _ = cli("--home", str(tmp_path / "other"), "registry", "import", str(bad), "--json")
    error = _error(out)
    assert (code, error["error"]) == (1, "integrity_error")
    assert error["message"].startswith(f"{bad}: ")
    assert says in error["message"]
    assert "export" in error["fix"]
    with pytest.raises(IntegrityError, match=says):
        registry.import_archive(bad)
    assert [v.version for v in registry.list_versions(KEY)] == [1]


def test_a_registry_url_without_artifacts_is_refused_without_echoing_its_password() -> None:
    from alphaops.core.errors import UsageError as Usage
    from alphaops.registry import open_registry

    with pytest.raises(Usage) as caught:
        open_registry("postgresql://bot:s3cret@127.0.0.1:5432/alphaops")
    assert "s3cret" not in str(caught.value)
    assert "bot:***@127.0.0.1" in str(caught.value)
