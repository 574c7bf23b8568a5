"""The ``alphaops`` command end to end: exit codes, JSON output, the main job."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaops.cli import main
from alphaops.core.config import load_config
from alphaops.data import Candles
from alphaops.gates import GatePolicy
from alphaops.services._common import open_configured_registry
from alphaops.services.data import download_data, list_data, open_store
from alphaops.services.quickstart import RULE
from alphaops.services.replay import replay_rollout
from alphaops.testing import FakeExchange

DEMO_POLICY = Path(__file__).resolve().parents[1] / "docs" / "examples" / "gates-demo.yaml"

Loader = Callable[[str, str], Candles]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err or out
    return json.loads(out)


@pytest.fixture
def btc_file(tmp_path: Path, load_real: Loader) -> Path:
    path = tmp_path / "BTCUSDT-1h.parquet"
    candles = load_real("BTCUSDT", "1h")
    candles.frame.iloc[-3000:].to_parquet(path)
    return path


def test_quickstart_runs_the_lifecycle_on_the_bundled_sample_and_can_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    summary = run_json(capsys, "--home", home, "quickstart")
    assert isinstance(summary, dict)
    assert summary["imported"] == {"BTCUSDT": 8760, "ETHUSDT": 8760, "SOLUSDT": 8760}
    assert all(check["ok"] for check in summary["checks"])
    n, t, f = summary["dataset"]["shape"]
    assert (t, f) == (64, 11)
    assert n > 20_000
    assert Path(summary["dataset"]["npz"]).exists()
    assert Path(summary["dataset"]["report"]).read_text().startswith("# Dataset")
    assert len(summary["dataset"]["plots"]) == 3
    assert all(Path(p).exists() for p in summary["dataset"]["plots"].values())
    published = [o["model"] for o in summary["training"]["jobs"] if o["status"] == "published"]
    assert sorted(published) == ["lightgbm", "lightgbm", "lstm"]
    verdicts = {g["ref"]: g["passed"] for g in summary["gates"]}
    assert verdicts == {
        "BTCUSDT/lightgbm/1": True,
        "BTCUSDT/lightgbm/2": True,
        "BTCUSDT/lstm/1": False,
    }
    assert all(Path(p).exists() for g in summary["gates"] for p in g["reports"].values())
    # Judged under the sample's demo policy, set with its reason in the fresh home.
    assert summary["gate_policy"]["reason"].startswith("quickstart: a demonstration")
    assert summary["gate_policy"]["policy_hash"] == GatePolicy.from_file(DEMO_POLICY).policy_hash
    # The first champion (the passing candidate with the lowest validation loss) is promoted
    # directly; the other passing candidate is rolled out while the holdout is replayed
    # through a live predictor, and ends up champion.
    loss = {
        f"BTCUSDT/lightgbm/{j['version']}": j["metrics"]["val_loss"]
        for j in summary["training"]["jobs"]
        if j["model"] == "lightgbm"
    }
    first, second = sorted(loss, key=loss.__getitem__)
    number = {ref: int(ref.rsplit("/", 1)[1]) for ref in (first, second)}
    assert f"BTCUSDT/lightgbm/{summary['promoted']}" == first
    replay = summary["replay"]
    assert replay["challenger"] == second
    assert [(i["phase"], i["percentage"]) for i in replay["intervals"]] == [
        ("shadow", 0),
        ("canary", 10),
        ("canary", 50),
        ("canary", 100),
        ("live", 100),
    ]
    assert replay["final_phase"] == "live"
    # Every decision was journaled (shadow ones too) and the simulated trader's fills became
    # round trips; the journal's live figures stand beside each version's backtest.
    acted = sum(i["bars"] for i in replay["intervals"])
    assert replay["decisions"] == acted + replay["intervals"][0]["challenger_predictions"]
    assert replay["fills"] > 0
    assert replay["round_trips"] > 0
    perf = {(v["version"], v["role"]): v for v in summary["performance"]["versions"]}
    c, n = number[first], number[second]
    assert {(c, "champion"), (n, "shadow"), (n, "challenger"), (n, "champion")} <= set(perf)
    assert all(v["backtest"] is not None for v in perf.values())
    assert all(v["divergence"]["verdict"] for v in perf.values())
    assert perf[(c, "champion")]["decisions"]["hit_rate"] is not None
    assert perf[(n, "shadow")]["trades"]["trades"] == 0  # a shadow never trades
    assert sum(v["trades"]["trades"] for v in perf.values()) == replay["round_trips"]
    drift = summary["drift"]
    assert drift["ref"] == second
    assert len(drift["features"]["rows"]) == 11
    # The replayed bars are enough to judge every feature (none "insufficient").
    assert drift["bars"] >= 200
    assert all(r["psi"] is not None for r in drift["features"]["rows"])
    assert drift["status"] in ("ok", "warn", "alarm")
    assert set(replay["served"]) == {"BTCUSDT/lightgbm/1", "BTCUSDT/lightgbm/2"}
    assert replay["intervals"][-1]["served"] == {second: 24}
    moves = [(h["alias"], h["from"], h["to"]) for h in summary["history"]]
    assert moves.count(("champion", number[first], number[second])) == 1
    # A replay that runs out of bars before the rollout finishes aborts it, leaving no
    # active rollout and no challenger behind.
    config = load_config(environ={}, home=Path(home))
    candles = open_store(config).load("BTCUSDT", "1h")
    short = replay_rollout(
        config,
        first,
        candles,
        start_ms=int(candles.timestamps_ms[-5]),
        label=RULE,
    )
    assert short.final_phase == "rolled_back"
    assert short.served == {second: 5}
    with open_configured_registry(config) as registry:
        assert "challenger" not in registry.aliases("BTCUSDT/lightgbm")
        assert registry.active_rollout("BTCUSDT/lightgbm") is None
    # A second run adds no candles and rolls its best passing candidate out against the
    # champion instead of promoting directly; the printed summary is for people.
    code, out, err = run(capsys, "--home", home, "quickstart")
    assert code == 0, err[-2000:]
    for text in (
        "BTCUSDT/lightgbm/3",
        "BTCUSDT/lstm/2",
        "PASS",
        "FAIL",
        "live replay",
        "added now",
    ):
        assert text in out
    listed = run_json(capsys, "--home", home, "registry", "list")
    assert isinstance(listed, list)
    assert len(listed) == 6


def test_data_import_list_check_show(
    tmp_path: Path, btc_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    imported = run_json(capsys, "--home", home, "data", "import", str(btc_file))
    assert isinstance(imported, list)
    assert (imported[0]["symbol"], imported[0]["added"]) == ("BTCUSDT", 3000)
    listed = run_json(capsys, "--home", home, "data", "list")
    assert isinstance(listed, list)
    assert [(e["symbol"], e["timeframe"], e["rows"]) for e in listed] == [("BTCUSDT", "1h", 3000)]
    report = run_json(capsys, "--home", home, "data", "check", "BTCUSDT", "1h")
    assert isinstance(report, dict)
    assert report["ok"] is True
    assert report["gaps"]["count"] == 0
    shown = run_json(capsys, "--home", home, "data", "show", "BTCUSDT", "1h", "--tail", "3")
    assert isinstance(shown, list)
    assert len(shown) == 3
    assert shown[-1]["timestamp"] == "2025-06-30T23:00:00+00:00"


def test_importing_a_bad_file_exits_1_with_a_typed_json_error(
    tmp_path: Path, load_real: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = load_real("BTCUSDT", "1h").frame.iloc[:100].copy()
    frame.loc[10, "close"] = np.nan
    path = tmp_path / "BTCUSDT-1h.parquet"
    frame.to_parquet(path)
    code, out, _ = run(capsys, "--home", str(tmp_path / "h"), "data", "import", str(path), "--json")
    assert code == 1
    error = json.loads(out)
    assert error["error"] == "data_invalid"
    assert "not_finite" in error["message"]
    assert "rows 10" in error["message"]
    assert list_data(load_config(environ={}, home=tmp_path / "h")) == []


def test_error_for_people_names_the_problem_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--home", str(tmp_path), "data", "show", "BTCUSDT", "1h")
    assert code == 1
    assert "not_found" in err
    assert "fix" in err


def test_usage_errors_exit_1_never_the_gate_failure_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = run(capsys, "data", "no-such-command")
    assert code == 1
    code, _, _ = run(capsys, "dataset", "build", "--lookback", "x", "--symbols", "BTCUSDT")
    assert code == 1


def test_ctrl_c_inside_a_command_exits_130_and_says_interrupted(
    tmp_path: Path,
    btc_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Typer turns a KeyboardInterrupt into a returned 130; the CLI still has to say so.
    import alphaops.services.data as data_service

    run(capsys, "--home", str(tmp_path), "data", "import", str(btc_file))

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(data_service, "list_data", interrupted)
    code, out, err = run(capsys, "--home", str(tmp_path), "data", "list")
    assert code == 130
    assert err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in err + out


def test_dataset_build_from_the_store(
    tmp_path: Path, btc_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    run_json(capsys, "--home", home, "data", "import", str(btc_file))
    built = run_json(
        capsys,
        "--home",
        home,
        "dataset",
        "build",
        "--symbols",
        "BTCUSDT",
        "--lookback",
        "32",
        "--horizon",
        "4",
        "--threshold",
        "0.01",
        "--label-scale",
        "fixed",
        "--kind",
        "binary",
        "--name",
        "btc",
    )
    assert isinstance(built, dict)
    assert built["classes"] == ["LOSS", "WIN"]
    assert built["shape"][1:] == [32, 11]
    assert Path(built["npz"]).name.startswith("btc_")
    plots = {kind: Path(path) for kind, path in built["plots"].items()}
    assert sorted(plots) == ["class_balance", "coverage", "features"]
    assert built["plots_skipped"] == ""
    report = Path(built["report"]).read_text()
    for kind, path in plots.items():
        assert path.name == f"{Path(built['npz']).stem}_{kind}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({path.name})" in report


def test_dataset_build_prints_plot_paths_and_can_skip_them(
    tmp_path: Path, btc_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    run_json(capsys, "--home", home, "data", "import", str(btc_file))
    args = ("--home", home, "dataset", "build", "--symbols", "BTCUSDT", "--lookback", "16")
    code, out, err = run(capsys, *args, "--name", "drawn")
    assert code == 0, err
    for kind in ("class balance", "coverage", "features"):
        assert f"plot ({kind}): " in out
    assert "_class_balance.png" in out
    built = run_json(capsys, *args, "--name", "plain", "--no-plots")
    assert isinstance(built, dict)
    assert built["plots"] == {}
    assert built["plots_skipped"] == "turned off"
    assert not list(Path(built["npz"]).parent.glob("plain_*.png"))
    code, out, _ = run(capsys, *args, "--name", "plain", "--no-plots")
    assert code == 0
    assert "plots: none (turned off)" in out


def test_dataset_build_with_a_bad_threshold_is_a_spec_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "--home",
        str(tmp_path),
        "dataset",
        "build",
        "--symbols",
        "BTCUSDT",
        "--threshold",
        "5",
        "--label-scale",
        "fixed",
        "--json",
    )
    assert code == 1
    assert json.loads(out)["error"] == "spec_invalid"


def test_dataset_build_refuses_a_fraction_given_as_a_volatility_multiple(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default scale is volatility: "--threshold 0.01" (the old 1%) would be 0.01 σ·√h,
    # a barrier no move stays under. It is refused, naming the way back to fractions.
    args = ("--home", str(tmp_path), "dataset", "build", "--symbols", "BTCUSDT")
    code, out, _ = run(capsys, *args, "--threshold", "0.01", "--json")
    assert code == 1
    error = json.loads(out)
    assert error["error"] == "spec_invalid"
    assert "scale='fixed'" in error["fix"]


def test_config_show_prints_the_effective_config_and_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = run_json(capsys, "--home", str(tmp_path), "config", "show")
    assert isinstance(shown, dict)
    assert shown["home"] == str(tmp_path)
    assert shown["config_hash"] == load_config(environ={}, home=tmp_path).config_hash


def test_download_service_stores_what_the_exchange_serves_and_resumes(
    tmp_path: Path, load_real: Loader
) -> None:
    source = load_real("BTCUSDT", "1h").between(
        pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-02-01", tz="UTC")
    )
    exchange = FakeExchange(source, max_limit=200)
    config = load_config(environ={}, home=tmp_path)
    (result,) = download_data(
        config, ["BTC/USDT"], "1h", since="2025-01-01", until="2025-01-20", exchange=exchange
    )
    assert (result.symbol, result.added) == ("BTCUSDT", 19 * 24)
    (resumed,) = download_data(
        config, ["BTCUSDT"], "1h", since="2025-01-01", until="2025-02-01", exchange=exchange
    )
    assert resumed.added == 12 * 24
    assert list_data(config)[0].rows == 31 * 24
