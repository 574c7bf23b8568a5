"""``alphaops registry …`` end to end through ``alphaops.cli.main`` on a temporary home."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from alphaops.cli import main
from alphaops.registry import open_registry

KEY = "BTCUSDT/logreg"


@pytest.fixture
def cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    home = tmp_path / "home"
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: wide enough not to wrap cells

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--home", str(home), "registry", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def published(cli: Callable[..., tuple[int, str, str]], make_bundle: Callable[..., Path]) -> None:
    for seed in (1, 2, 3):
        code, out, _ = cli("publish", str(make_bundle(seed=seed, metrics={"accuracy": seed / 10})))
        assert code == 0, out
    # These tiny bundles were never gated: promotion to champion needs --force (audited).
    assert cli("promote", f"{KEY}/1", "--expect", "none", "--reason", "first", "--force")[0] == 0


def test_promoting_an_ungated_version_to_champion_exits_2_and_says_how_to_gate_it(
    cli: Callable[..., tuple[int, str, str]], published: None
) -> None:
    code, out, _ = cli("promote", f"{KEY}/2", "--expect", "1", "--reason", "better", "--json")
    error = json.loads(out)
    assert code == 2
    assert error["error"] == "gate_failed"
    assert "never ran" in error["message"]
    assert "gate run" in error["fix"]
    assert json.loads(cli("show", f"{KEY}@champion", "--json")[1])["version"] == 1


def test_list_shows_versions_with_aliases(
    cli: Callable[..., tuple[int, str, str]], published: None
) -> None:
    code, out, _ = cli("list", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [(r["version"], r["aliases"]) for r in rows] == [
        (1, ["champion"]),
        (2, []),
        (3, []),
    ]
    code, out, _ = cli("list", "BTCUSDT")
    assert code == 0
    assert "BTCUSDT/logreg" in out
    assert "champion" in out


def test_show_and_diff_describe_versions(
    cli: Callable[..., tuple[int, str, str]], published: None
) -> None:
    code, out, _ = cli("show", f"{KEY}@champion", "--json")
    assert code == 0
    assert json.loads(out)["version"] == 1
    code, out, _ = cli("diff", f"{KEY}/1", f"{KEY}/2", "--json")
    changes = json.loads(out)
    assert code == 0
    assert changes["metrics"]["accuracy"] == [0.1, 0.2]
    assert "model.onnx" in changes["files"]
    assert changes["build"]["seed"] == [1, 2]
    code, out, _ = cli("show", f"{KEY}/2")
    assert code == 0
    assert "model.onnx" in out


def test_promote_with_a_stale_expect_exits_1_with_the_current_version(
    cli: Callable[..., tuple[int, str, str]], published: None
) -> None:
    assert cli("promote", f"{KEY}/2", "--expect", "1", "--reason", "better", "--force")[0] == 0
    code, out, _ = cli(
        "promote", f"{KEY}/3", "--expect", "1", "--reason", "stale", "--force", "--json"
    )
    error = json.loads(out)
    assert code == 1
    assert error["error"] == "version_conflict"
    assert "--expect 2" in error["fix"]


def test_rollback_and_history_show_every_move(
    cli: Callable[..., tuple[int, str, str]], published: None
) -> None:
    cli("promote", f"{KEY}/2", "--expect", "1", "--reason", "better", "--force")
    code, out, _ = cli("rollback", KEY, "--reason", "constant output", "--json")
    assert code == 0
    assert json.loads(out)["to_version"] == 1
    code, out, _ = cli("history", KEY, "--json")
    actions = [(r["action"], r["to_version"], r["reason"]) for r in json.loads(out)]
    forced = " [FORCED past gates: gates never ran]"
    assert actions[-3:] == [
        ("promote", 1, "first" + forced),
        ("promote", 2, "better" + forced),
        ("rollback", 1, "constant output"),
    ]
    code, out, _ = cli("history", KEY)
    assert code == 0
    assert "constant output" in out


def test_alias_set_and_rm(cli: Callable[..., tuple[int, str, str]], published: None) -> None:
    assert cli("alias", "set", KEY, "challenger", "3", "--reason", "shadow it")[0] == 0
    assert json.loads(cli("show", f"{KEY}@challenger", "--json")[1])["version"] == 3
    assert cli("alias", "rm", KEY, "challenger", "--reason", "done")[0] == 0
    code, out, _ = cli("show", f"{KEY}@challenger", "--json")
    assert code == 1
    assert json.loads(out)["error"] == "not_found"


def test_verify_exits_1_and_names_the_damaged_file(
    cli: Callable[..., tuple[int, str, str]], published: None, tmp_path: Path
) -> None:
    assert cli("verify")[0] == 0
    target = tmp_path / "home" / "artifacts" / "BTCUSDT" / "logreg" / "2" / "model.onnx"
    target.write_bytes(target.read_bytes()[:-1])
    code, _out, err = cli("verify")
    assert code == 1
    assert "model.onnx" in err
    assert "integrity_error" in err
    assert cli("verify", f"{KEY}/1", "--json")[0] == 0
    code, out, _ = cli("verify", "--json")
    assert code == 1
    report = json.loads(out)  # exactly one JSON document, the report
    assert report["ok"] is False
    assert "model.onnx" in json.dumps(report["problems"])


def test_prune_never_removes_aliased_versions(
    cli: Callable[..., tuple[int, str, str]], published: None
) -> None:
    code, out, _ = cli("prune", "--keep-last", "0", "--json")
    assert code == 0
    assert json.loads(out)["removed"] == [f"{KEY}/2", f"{KEY}/3"]
    assert [r["version"] for r in json.loads(cli("list", "--json")[1])] == [1]


def test_doctor_fixes_a_stale_latest_link(
    cli: Callable[..., tuple[int, str, str]], published: None, tmp_path: Path
) -> None:
    link = tmp_path / "home" / "artifacts" / "BTCUSDT" / "logreg" / "latest"
    link.unlink()
    code, out, _ = cli("doctor", "--json")
    assert code == 0
    assert [f["kind"] for f in json.loads(out)["findings"]] == ["stale_link"]
    assert cli("doctor", "--fix")[0] == 0
    assert link.resolve().name == "1"
    assert "healthy" in cli("doctor")[1]


def test_export_then_import_round_trips_one_archive(
    cli: Callable[..., tuple[int, str, str]], published: None, tmp_path: Path
) -> None:
    archive = tmp_path / "v2.tar.gz"
    assert cli("export", f"{KEY}/2", "-o", str(archive))[0] == 0
    code, out, _ = cli("import", str(archive), "--json")
    assert code == 0
    assert json.loads(out)["version"] == 4


def test_unsafe_reference_exits_1_with_the_name_error(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, _ = cli("show", "BTCUSDT/../../etc@champion", "--json")
    assert code == 1
    assert json.loads(out)["error"] == "name_invalid"


def _record_gates(home: Path, ref: str, *, failing: str | None) -> None:
    from datetime import UTC, datetime

    from alphaops.gates.records import GateRecord
    from alphaops.gates.results import GateOutcome, check

    with open_registry(home) as registry:
        version = registry.resolve(ref)
        value = 0.95 if failing else 0.5
        outcome = GateOutcome.of("quality", [check("majority_share", value, "<=", 0.7, "share")])
        record = GateRecord(
            symbol=version.key.symbol,
            model_type=version.key.model_type,
            version=version.version,
            manifest_sha256=version.manifest_sha256,
            champion=None,
            passed=outcome.passed,
            gates=(outcome,),
            window_start=datetime(2025, 1, 1, tzinfo=UTC),
            window_end=datetime(2025, 2, 1, tzinfo=UTC),
            policy={},
            policy_hash="abc",
            run_at=datetime(2025, 2, 2, tzinfo=UTC),
            code_version="test",
        )
        registry.record_gates(
            version,
            manifest_sha256=version.manifest_sha256,
            passed=record.passed,
            document=json.loads(record.model_dump_json()),
            attachments={"report.md": b"# report"},
            policy_hash=record.policy_hash,
        )


def test_show_includes_the_newest_gate_run_and_list_marks_gate_status(
    cli: Callable[..., tuple[int, str, str]], published: None, tmp_path: Path
) -> None:
    code, out, _ = cli("show", f"{KEY}/1")
    assert code == 0
    assert f"gates never ran (run: alphaops gate run {KEY}/1)" in out
    assert json.loads(cli("show", f"{KEY}/1", "--json")[1])["gates"] is None
    _record_gates(tmp_path / "home", f"{KEY}/1", failing=None)
    _record_gates(tmp_path / "home", f"{KEY}/2", failing="majority_share")
    code, out, _ = cli("show", f"{KEY}/2")
    assert code == 0
    assert "gates FAIL" in out
    assert "quality.majority_share" in out
    shown = json.loads(cli("show", f"{KEY}@champion", "--json")[1])["gates"]
    assert (shown["passed"], shown["failed_checks"], shown["policy_hash"]) == (True, [], "abc")
    assert [a["name"] for a in shown["attachments"]] == ["report.md"]
    assert "gates PASS" in cli("show", f"{KEY}@champion")[1]
    rows = json.loads(cli("list", KEY, "--json")[1])
    assert [(r["version"], r["gates_passed"]) for r in rows] == [(1, True), (2, False), (3, None)]
    code, out, _ = cli("list")
    assert code == 0
    assert "PASS" in out
    assert "FAIL" in out
