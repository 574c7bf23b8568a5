"""Gate runs through the services and the CLI: records, reports, fail-closed promotion, scoreboard."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from tests.gates.conftest import (
    EDGE_SYMBOL,
    PlantedMarket,
    feature_scale,
    planted_onnx,
    sound_job,
    write_planted,
)
from typer.testing import CliRunner

from alphaops.cli import _gates
from alphaops.cli._context import CliContext
from alphaops.core.config import AlphaOpsConfig, load_config
from alphaops.core.errors import GateFailedError, NotFoundError, UsageError
from alphaops.core.home import AlphaOpsHome
from alphaops.features import FeatureSpec
from alphaops.gates.records import GateRecordStore
from alphaops.registry import GateRun as RecordedGateRun
from alphaops.registry import open_registry
from alphaops.services import gates as svc
from alphaops.services import registry as registry_svc
from alphaops.services.data import open_store
from alphaops.training import publish_trained, train_job


@dataclass(frozen=True)
class Home:
    config: AlphaOpsConfig
    champion: str
    candidate: str
    constant: str


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, planted_market: PlantedMarket) -> Home:
    """A home with the planted-edge ETHUSDT candles in its store and, in its registry:
    ETHUSDT/lightgbm/1 (champion), ETHUSDT/lightgbm/2 (another seed, a candidate) and a
    planted constant model. The LightGBMs learn the planted edge and pass every gate (on plain
    ETHUSDT the sound model loses money after costs, and the backtest floors block it)."""
    market = planted_market.market
    config = load_config(environ={}, home=tmp_path_factory.mktemp("gate-home") / "home")
    open_store(config).write(market.candles)
    edge = {"symbols": (EDGE_SYMBOL,), "features": FeatureSpec.default()}
    constant = write_planted(
        tmp_path_factory.mktemp("constant") / "bundle",
        planted_onnx("constant", feature_scale(market)),
        market,
        model_type="planted-constant",
    )
    with open_registry(AlphaOpsHome(config.home).ensure()) as registry:
        v1 = publish_trained(train_job(sound_job(**edge), {EDGE_SYMBOL: market.train}), registry)
        v2 = publish_trained(
            train_job(sound_job(seed=11, **edge), {EDGE_SYMBOL: market.train}), registry
        )
        planted = registry.publish(constant)
        registry.promote(v1.ref, expect=None, reason="test setup", force=True)
    return Home(config, v1.ref, v2.ref, planted.ref)


def test_gate_run_records_the_result_and_writes_markdown_and_html_reports(home: Home) -> None:
    summary = svc.gate_run(home.config, home.candidate)
    assert summary.passed, summary.run.record.failed_checks
    assert summary.run.record.champion == home.champion
    assert [g.gate for g in summary.run.record.gates] == [
        "quality",
        "validation",
        "backtest",
        "lookahead",
    ]
    md, html = summary.reports["md"], summary.reports["html"]
    assert md.parent.name == "safety"
    assert md.name.startswith("quality_gate_")
    text = md.read_text()
    assert "# Gate report: ETHUSDT/lightgbm/2 — PASS" in text
    # why a model passes or fails: buy-and-hold beside it, costs, and the Sharpe deflation
    assert "| metric | candidate | buy_and_hold | champion |" in text
    for row in ("net return (after costs)", "gross return (before costs)", "costs paid"):
        assert f"| {row} |" in text
    assert "| beats_flat |" in text
    assert "## Sharpe deflation (candidate)" in text
    assert "| trials N (candidates of this model) | 2 |" in text
    assert html.read_text().count("data:image/png;base64,") == 3
    with open_registry(AlphaOpsHome(home.config.home)) as registry:
        stored = GateRecordStore(registry).latest("ETHUSDT/lightgbm/2")
        recorded = registry.latest_gates("ETHUSDT/lightgbm/2")
    assert stored is not None
    assert stored.passed
    assert set(stored.reports) == {md.name, html.name}
    assert recorded is not None
    assert recorded.run_id == summary.recorded.run_id
    assert (recorded.passed, recorded.policy_hash) == (True, stored.policy_hash)
    assert {a.name for a in recorded.attachments} == {md.name, html.name}
    assert not (Path(home.config.home) / "gates").exists()  # no second, file-based store
    backtest = summary.run.record.gate("backtest").data
    assert backtest["candidate"]["trials"] == 2.0  # two lightgbm versions in the registry
    assert backtest["buy_and_hold"]["trades"] == 1.0


def test_gate_report_without_matplotlib_still_records_and_says_how_to_get_plots(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    summary = svc.gate_run(home.config, home.candidate)
    page = summary.reports["html"].read_text()
    assert "data:image/png" not in page
    assert "pip install 'alphaops[reports]'" in page
    assert summary.recorded.passed == summary.passed


def test_promotion_is_refused_when_gates_never_ran(home: Home) -> None:
    with pytest.raises(GateFailedError, match="never ran") as caught:
        svc.check_promotion(home.config, "ETHUSDT/lightgbm/1")
    assert caught.value.exit_code == 2


def test_promotion_is_refused_when_a_gate_failed_and_names_the_failed_checks(home: Home) -> None:
    summary = svc.gate_run(home.config, home.constant)
    assert not summary.passed
    with pytest.raises(GateFailedError, match=r"quality\.constant_output"):
        svc.check_promotion(home.config, home.constant)


def test_forcing_past_failed_gates_needs_a_reason_and_is_written_to_the_audit_log(
    home: Home,
) -> None:
    svc.gate_run(home.config, home.constant)
    with pytest.raises(UsageError, match="needs a reason"):
        svc.check_promotion(home.config, home.constant, force=True, reason=" ")
    move = registry_svc.promote(
        home.config,
        registry_svc.RegistryLocation(),
        home.constant,
        expect=None,
        reason="incident 42",
        force=True,
    )
    assert move.to_version == 1
    with open_registry(AlphaOpsHome(home.config.home)) as registry:
        last = registry.history(home.constant.rsplit("/", 1)[0])[-1]
    assert last.reason.startswith("incident 42 [FORCED past gates: gates failed: quality.")


def test_a_version_whose_gates_passed_is_cleared_for_promotion(home: Home) -> None:
    svc.gate_run(home.config, home.candidate)
    clearance = svc.check_promotion(home.config, home.candidate, reason="better model")
    assert clearance.passed
    assert not clearance.forced
    assert clearance.audit_reason == "better model"


def test_scoreboard_shows_every_model_of_the_symbol_with_a_status(home: Home) -> None:
    svc.gate_run(home.config, home.candidate)
    svc.gate_run(home.config, home.constant)
    board, path = svc.scoreboard(home.config, "ethusdt")
    assert board.champion == home.champion
    assert board.row(home.champion).status == "CHAMPION"
    assert board.row(home.constant).status == "NO-GO"
    candidate = board.row(home.candidate)
    assert candidate.gates == "PASS"
    assert candidate.agreement is not None
    assert candidate.hard_disagreement is not None
    in_range = 0.55 <= candidate.agreement <= 0.80 and candidate.hard_disagreement < 0.20
    assert candidate.status == ("GO" if in_range else "WAIT")
    assert path.name == "scoreboard_latest.md"
    assert "| ETHUSDT/planted-constant/1 |" in path.read_text()


def _cli(home: Home) -> typer.Typer:
    # The lead wires these the same way into alphaops.cli.app.
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = CliContext(home.config)

    root.add_typer(_gates.app, name="gate")
    root.command("scoreboard")(_gates.scoreboard)
    return root


def test_cli_gate_quality_exits_0_on_pass_and_2_on_a_degenerate_model(home: Home) -> None:
    runner = CliRunner()
    app = _cli(home)
    passed = runner.invoke(app, ["gate", "quality", home.champion, "--json"])
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.output)["passed"] is True
    failed = runner.invoke(app, ["gate", "quality", home.constant])
    assert failed.exit_code == 2
    assert "constant_output" in failed.output


def test_cli_gate_run_and_scoreboard_print_their_results(home: Home) -> None:
    runner = CliRunner()
    app = _cli(home)
    result = runner.invoke(app, ["gate", "run", home.candidate, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["champion"] == home.champion
    board = runner.invoke(app, ["scoreboard", "ETHUSDT", "--json"])
    assert board.exit_code == 0, board.output
    assert {r["status"] for r in json.loads(board.output)["rows"]} >= {"CHAMPION", "NO-GO"}


def test_gate_on_an_unknown_version_is_an_error_not_a_gate_failure(home: Home) -> None:
    with pytest.raises(NotFoundError):
        svc.gate_quality(home.config, "ETHUSDT/lightgbm/99")


def test_a_window_outside_the_data_cannot_be_evaluated(home: Home) -> None:
    with pytest.raises(Exception, match="no ETHUSDT 1h candles in the gate window"):
        svc.gate_quality(home.config, home.champion, window="2030-01-01..")


def test_window_text_must_be_start_dot_dot_end() -> None:
    with pytest.raises(UsageError, match=r"START\.\.END"):
        svc.parse_window("2025-01-01")


def test_gate_results_of_a_run_map_to_registry_manifest_gate_entries(home: Home) -> None:
    record = svc.gate_run(home.config, home.candidate).run.record
    entries = record.to_manifest_results()
    assert {e.name for e in entries} >= {"quality.majority_share", "lookahead.mismatched_bars"}
    assert all(e.passed for e in entries)


def test_reports_attached_to_the_version_are_readable_from_the_registry(home: Home) -> None:
    summary = svc.gate_run(home.config, home.candidate)
    with open_registry(AlphaOpsHome(home.config.home)) as registry:
        attached = GateRecordStore(registry).read_report(home.candidate, summary.reports["md"].name)
        run = registry.latest_gates(home.candidate)
    assert attached.decode() == summary.reports["md"].read_text()
    assert run is not None
    assert "/ETHUSDT/lightgbm/_gates/2/" in run.location


def test_every_gate_run_is_kept_in_the_registry_gate_log(home: Home) -> None:
    before = len(_runs(home, home.constant))
    summary = svc.gate_run(home.config, home.constant)
    runs = _runs(home, home.constant)
    assert len(runs) == before + 1
    assert runs[-1].run_id == summary.recorded.run_id
    assert not runs[-1].passed


def test_reading_reports_of_a_version_never_gated_says_to_run_the_gates(home: Home) -> None:
    with (
        open_registry(AlphaOpsHome(home.config.home)) as registry,
        pytest.raises(NotFoundError, match="alphaops gate run ETHUSDT/lightgbm/1"),
    ):
        GateRecordStore(registry).read_report("ETHUSDT/lightgbm/1", "report.md")


def _runs(home: Home, ref: str) -> list[RecordedGateRun]:
    with open_registry(AlphaOpsHome(home.config.home)) as registry:
        return registry.gate_runs(ref)
