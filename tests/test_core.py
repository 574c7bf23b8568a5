"""Errors, configuration, names and timeframes: the contracts every layer relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import alphaops.core as core
from alphaops.core import errors
from alphaops.core.config import load_config
from alphaops.core.errors import (
    ERROR_TABLE,
    AlphaOpsError,
    ConfigError,
    InvalidNameError,
    SpecError,
)
from alphaops.core.names import normalize_symbol, validate_name
from alphaops.core.timeframes import Timeframe


def _all_error_classes() -> list[type[AlphaOpsError]]:
    found: list[type[AlphaOpsError]] = []
    todo: list[type[AlphaOpsError]] = [AlphaOpsError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_a_row_in_the_error_table() -> None:
    for cls in _all_error_classes():
        assert cls.code in ERROR_TABLE, f"{cls.__name__}.code {cls.code!r} missing from ERROR_TABLE"


def test_error_codes_are_unique_per_class() -> None:
    codes = [cls.code for cls in _all_error_classes()]
    assert len(codes) == len(set(codes))


def test_only_the_gate_failure_errors_exit_with_code_2() -> None:
    # Exit code 2 means "blocked by a gate" (a blocker, not a bug). Only GateFailedError and
    # its subclass for an unacknowledged drift alarm carry it, so that a usage or runtime
    # error is never mistaken for a blocked promotion.
    blocked = [code for code, row in ERROR_TABLE.items() if row.exit_code == 2]
    assert blocked == ["gate_failed", "drift_alarm"]
    assert issubclass(errors.DriftAlarmError, errors.GateFailedError)


def test_error_tree_docstring_lists_every_class() -> None:
    doc = errors.__doc__ or ""
    for cls in _all_error_classes():
        assert cls.__name__ in doc
        assert cls.code in doc


def test_error_to_dict_carries_code_message_fix_and_details() -> None:
    exc = SpecError("lookback 0 is too small", fix="use a lookback >= 1", lookback=0)
    assert exc.to_dict() == {
        "error": "spec_invalid",
        "message": "lookback 0 is too small",
        "fix": "use a lookback >= 1",
        "details": {"lookback": 0},
    }


def test_config_defaults_without_file_or_environment() -> None:
    cfg = load_config(environ={})
    assert cfg.home == Path(".alphaops")
    assert cfg.download.exchange == "binance"


def test_config_precedence_is_defaults_then_yaml_then_env_then_overrides(tmp_path: Path) -> None:
    file = tmp_path / "alphaops.yaml"
    file.write_text("home: /from/yaml\nlog_level: DEBUG\ndownload:\n  exchange: kraken\n")
    env = {"ALPHAOPS_HOME": "/from/env", "ALPHAOPS_DOWNLOAD__PAGE_LIMIT": "200"}
    cfg = load_config(file, environ=env)
    assert (cfg.home, cfg.log_level, cfg.download.exchange, cfg.download.page_limit) == (
        Path("/from/env"),
        "DEBUG",
        "kraken",
        200,
    )
    assert load_config(file, environ=env, home=Path("/explicit")).home == Path("/explicit")


def test_config_file_is_found_through_alphaops_config_env(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("home: /x\n")
    assert load_config(environ={"ALPHAOPS_CONFIG": str(file)}).home == Path("/x")


def test_config_with_unknown_key_is_refused_naming_the_key(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("hoem: /typo\n")
    with pytest.raises(ConfigError, match="hoem"):
        load_config(file, environ={})


def test_config_with_invalid_value_from_env_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"download\.page_limit"):
        load_config(environ={"ALPHAOPS_DOWNLOAD__PAGE_LIMIT": "0"})


def test_config_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(file, environ={})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", environ={})


def test_config_is_frozen_and_its_hash_follows_its_content() -> None:
    a = load_config(environ={})
    b = load_config(environ={})
    c = load_config(environ={"ALPHAOPS_LOG_LEVEL": "ERROR"})
    assert a.config_hash == b.config_hash != c.config_hash
    with pytest.raises(Exception, match="frozen"):
        a.log_level = "DEBUG"  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/b", "a\\b", "..", "a..b", ".hidden", "x" * 65, "a b"]
)
def test_unsafe_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_name(bad, kind="alias")


@given(st.text(min_size=1, max_size=80))
def test_any_accepted_name_is_a_single_safe_path_segment(text: str) -> None:
    try:
        name = validate_name(text)
    except InvalidNameError:
        return
    assert "/" not in name
    assert "\\" not in name
    assert ".." not in name
    assert Path(name).name == name
    assert not name.startswith(".")


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("BTCUSDT", "BTCUSDT"),
        ("btc/usdt", "BTCUSDT"),
        ("BTC/USDT:USDT", "BTCUSDT"),
        (" ethusdt ", "ETHUSDT"),
    ],
)
def test_symbols_are_normalised_to_exchange_neutral_form(given_: str, expected: str) -> None:
    assert normalize_symbol(given_) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1m", 60), ("5m", 300), ("1h", 3600), ("4h", 14400), ("1d", 86400), ("1w", 604800)],
)
def test_timeframes_parse_to_their_length(text: str, seconds: int) -> None:
    assert Timeframe.parse(text).seconds == seconds


@pytest.mark.parametrize("bad", ["", "1", "h", "0h", "1y", "1.5h", "-1h"])
def test_malformed_timeframe_is_refused_with_examples(bad: str) -> None:
    with pytest.raises(SpecError, match="'5m', '1h', '1d'"):
        Timeframe.parse(bad)


def test_core_all_lists_exactly_its_public_names() -> None:
    public = {n for n in dir(core) if not n.startswith("_") and n not in {"annotations"}}
    modules = {"config", "errors", "home", "logs", "names", "specs", "timeframes"}
    assert set(core.__all__) == public - modules
