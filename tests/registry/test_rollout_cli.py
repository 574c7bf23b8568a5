"""``alphaops rollout …`` and top-level ``alphaops rollback`` through ``alphaops.cli.main``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from alphaops.cli import main
from alphaops.registry import open_registry
from alphaops.registry.testing import record_passing_gates

KEY = "BTCUSDT/logreg"
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    home = tmp_path / "home"
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--home", str(home), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def published(cli: Cli, make_bundle: Callable[..., Path]) -> None:
    """Champion 1 (forced: tiny bundles are not gated) and candidate 2, never gated."""
    for seed in (1, 2):
        assert cli("registry", "publish", str(make_bundle(seed=seed)))[0] == 0
    first = ("registry", "promote", f"{KEY}/1", "--expect", "none", "--reason", "first", "--force")
    assert cli(*first)[0] == 0


@pytest.fixture
def cleared(published: None, tmp_path: Path) -> None:
    """As ``published``, with passing gates recorded for version 2."""
    with open_registry(tmp_path / "home") as registry:
        record_passing_gates(registry, f"{KEY}/2")


def test_start_status_advance_pause_resume_abort_round_trip_as_json(
    cli: Cli, cleared: None
) -> None:
    code, out, _ = cli(
        "rollout", "start", f"{KEY}/2", "--steps", "shadow,10,50", "--interval", "15m",
        "--max-failures", "2", "--reason", "try", "--json",
    )  # fmt: skip
    started = json.loads(out)
    assert code == 0
    assert (started["phase"], started["interval_s"], started["max_failures"]) == (
        "shadow",
        900.0,
        2,
    )
    assert json.loads(cli("rollout", "advance", KEY, "--json")[1])["percentage"] == 10
    assert json.loads(cli("rollout", "pause", KEY, "--json")[1])["phase"] == "paused"
    assert json.loads(cli("rollout", "resume", KEY, "--json")[1])["phase"] == "canary"
    [row] = json.loads(cli("rollout", "status", "--json")[1])
    assert (row["id"], row["percentage"], row["challenger"]) == (started["id"], 10, 2)
    code, out, _ = cli("rollout", "abort", KEY, "--reason", "enough", "--json")
    assert (code, json.loads(out)["phase"]) == (0, "rolled_back")
    assert json.loads(cli("rollout", "status", KEY, "--json")[1]) == []


def test_status_renders_a_table_with_the_current_step_and_traffic(cli: Cli, cleared: None) -> None:
    cli("rollout", "start", f"{KEY}/2", "--steps", "10,50")
    code, out, _ = cli("rollout", "status")
    assert code == 0
    assert "BTCUSDT/logreg" in out
    assert "canary" in out
    assert "10% → 50%" in out


def test_canary_steps_of_an_ungated_version_exit_2_unless_forced_and_never_go_live(
    cli: Cli, published: None
) -> None:
    code, out, _ = cli("rollout", "start", f"{KEY}/2", "--steps", "50", "--json")
    assert (code, json.loads(out)["error"]) == (2, "gate_failed")
    assert "--force --reason" in json.loads(out)["fix"]
    forced = ("rollout", "start", f"{KEY}/2", "--steps", "50", "--force", "--reason", "hotfix")
    assert cli(*forced)[0] == 0
    code, out, _ = cli("rollout", "advance", KEY, "--json")  # going live checks again
    assert code == 2
    assert json.loads(out)["error"] == "gate_failed"


def test_a_shadow_only_rollout_of_an_ungated_version_needs_no_clearance(
    cli: Cli, published: None
) -> None:
    code, out, _ = cli("rollout", "start", f"{KEY}/2", "--steps", "shadow", "--json")
    assert (code, json.loads(out)["phase"]) == (0, "shadow")


def test_a_bad_interval_or_a_second_start_exits_1_with_a_fix(cli: Cli, cleared: None) -> None:
    code, out, _ = cli("rollout", "start", f"{KEY}/2", "--interval", "soon", "--json")
    assert (code, json.loads(out)["error"]) == (1, "usage_error")
    assert "1h" in json.loads(out)["fix"]
    assert cli("rollout", "start", f"{KEY}/2")[0] == 0
    code, out, _ = cli("rollout", "start", f"{KEY}/2", "--json")
    assert (code, json.loads(out)["error"]) == (1, "version_conflict")


def test_top_level_rollback_returns_to_previous(cli: Cli, published: None, tmp_path: Path) -> None:
    promote = ("registry", "promote", f"{KEY}/2", "--expect", "1", "--reason", "v2", "--force")
    assert cli(*promote)[0] == 0
    code, out, _ = cli("rollback", KEY, "--reason", "v2 misbehaves", "--json")
    assert code == 0
    assert (json.loads(out)["from_version"], json.loads(out)["to_version"]) == (2, 1)
    with open_registry(tmp_path / "home") as reg:
        assert reg.aliases(KEY) == {"champion": 1}  # never back to the version it left


def test_rollback_to_names_a_former_champion_and_refuses_one_that_never_was(
    cli: Cli, published: None
) -> None:
    promote = ("registry", "promote", f"{KEY}/2", "--expect", "1", "--reason", "v2", "--force")
    assert cli(*promote)[0] == 0
    assert cli("rollback", KEY, "--reason", "v2 misbehaves")[0] == 0
    code, out, _ = cli("rollback", KEY, "--reason", "again", "--json")
    assert (code, json.loads(out)["error"]) == (1, "not_found")
    code, out, _ = cli("rollback", KEY, "--reason", "it was the feed", "--to", "2", "--json")
    assert (code, json.loads(out)["to_version"]) == (0, 2)
    code, out, _ = cli("rollback", KEY, "--reason", "x", "--to", "7", "--json")
    assert (code, json.loads(out)["error"]) == (1, "usage_error")
