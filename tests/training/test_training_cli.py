"""``alphaops train`` and ``alphaops train compare`` on a temporary home with real candles.

The commands run through a root app built like ``alphaops.cli.app`` (the lead wires
``_train.app`` as ``alphaops train``), with the same error handling as ``alphaops.cli.main``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import click
import pytest
import typer
from tests.training.conftest import make_job

from alphaops.cli import _root, _train
from alphaops.core.errors import AlphaOpsError
from alphaops.core.home import AlphaOpsHome
from alphaops.data import CandleStore
from alphaops.data.candles import Candles
from alphaops.registry import open_registry
from alphaops.services.training import job_to_yaml

Runner = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    tmp_path: Path,
    market: dict[str, Candles],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Runner:
    home = AlphaOpsHome(tmp_path / "home").ensure()
    store = CandleStore(home.data_dir)
    for candles in market.values():
        store.append(candles)
    monkeypatch.setenv("COLUMNS", "200")
    root = typer.Typer(pretty_exceptions_enable=False)
    root.callback()(_root)
    root.add_typer(_train.app, name="train")

    def run(*args: str) -> tuple[int, str, str]:
        try:
            result = root(args=["--home", str(home.root), "train", *args], standalone_mode=False)
            code = result if isinstance(result, int) else 0
        except AlphaOpsError as exc:
            print(json.dumps(exc.to_dict()))
            code = exc.exit_code
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_train_publishes_one_candidate_per_symbol_and_prints_a_json_summary(
    cli: Runner, tmp_path: Path
) -> None:
    code, out, _ = cli(
        "--symbols", "BTCUSDT,ETHUSDT", "--model", "lightgbm", "--executor", "sequential",
        "--param", "n_estimators=30", "--seed", "3", "--json",
    )  # fmt: skip
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["published"], summary["failed"], summary["cancelled"]) == (2, 0, 0)
    assert [j["ref"] for j in summary["jobs"]] == ["BTCUSDT/lightgbm/1", "ETHUSDT/lightgbm/1"]
    with open_registry(AlphaOpsHome(tmp_path / "home")) as registry:
        version = registry.get("ETHUSDT/lightgbm", 1)
        assert version.manifest.seed == 3
        assert version.manifest.params["n_estimators"] == 30
        assert registry.aliases("ETHUSDT/lightgbm") == {}


def test_train_shows_progress_bars_and_a_table_naming_the_failed_symbol(cli: Runner) -> None:
    code, out, err = cli(
        "--symbols", "BTCUSDT,SOLUSDT", "--model", "random_forest", "--executor", "sequential",
        "--param", "n_estimators=20", "--label-scale", "fixed", "--threshold", "0.9",
    )  # fmt: skip
    assert code == 1  # a failed job fails the command after the others ran
    assert "all jobs" in err
    assert "BTCUSDT random_forest" in err
    assert out.count("failed") >= 2
    assert "never occur" in out
    assert "0 published as candidates, 2 failed" in out


def test_train_without_symbols_is_a_usage_error_with_the_fix(cli: Runner) -> None:
    code, out, _ = cli("--model", "lightgbm")
    assert code == 1
    assert json.loads(out)["fix"].startswith("pass --symbols")


def test_train_compare_reports_differences_and_exits_2_outside_the_tolerance(
    cli: Runner, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(job_to_yaml(make_job("lightgbm", "binary")))
    b.write_text(
        job_to_yaml(
            make_job("lightgbm", "binary", params={"n_estimators": 5, "learning_rate": 0.5})
        )
    )
    code, out, _ = cli("compare", str(a), str(a), "--json")
    assert code == 0, out
    assert json.loads(out)["within_tolerance"] is True
    code, out, _ = cli("compare", str(a), str(b), "--tolerance", "0.000001")
    assert code == 2
    assert "outside tolerance" in out
    assert "val_accuracy" in out


def test_the_quickstart_trains_a_tree_and_a_sequence_model_on_the_sample_as_candidates(
    tmp_path: Path,
) -> None:
    from alphaops.core.config import load_config
    from alphaops.data import sample_files
    from alphaops.services.data import import_files
    from alphaops.services.training import train_quickstart_candidates

    config = load_config(home=tmp_path / "home", environ={})
    sample = next(s for s in sample_files() if s.symbol == "BTCUSDT")
    import_files(config, [sample.path], symbol="BTCUSDT", timeframe="1h")
    updates: list[int] = []
    summary = train_quickstart_candidates(config, progress=lambda i, u: updates.append(i))
    assert [(o.job.model, o.status, o.ref) for o in summary.outcomes] == [
        ("lightgbm", "published", "BTCUSDT/lightgbm/1"),
        ("lightgbm", "published", "BTCUSDT/lightgbm/2"),
        ("lstm", "published", "BTCUSDT/lstm/1"),
    ]
    assert set(updates) == {0, 1, 2}
    with open_registry(AlphaOpsHome(tmp_path / "home")) as registry:
        assert registry.aliases("BTCUSDT/lstm") == {}
        assert registry.get("BTCUSDT/lstm", 1).manifest.input.shape == [None, 32, 11]


_CTRL_C_SCRIPT = """
import json, sys
from alphaops.core.config import load_config
from alphaops.services.training import make_jobs, train_models
from alphaops.features import LabelRule
config = load_config(home=sys.argv[1], environ={})
jobs = make_jobs(["BTCUSDT", "ETHUSDT"], "lightgbm", timeframe="1h",
                 label=LabelRule(kind="ternary", horizon=4, threshold=0.01),
                 params={"n_estimators": 1000000, "early_stopping_rounds": 0})
def started(index, update):
    print("training", flush=True)
summary = train_models(config, jobs, executor="process", max_workers=2, progress=started)
print(json.dumps(summary.to_dict()), flush=True)
"""


def test_ctrl_c_cancels_the_process_pool_cleanly_and_publishes_nothing(
    tmp_path: Path, market: dict[str, Candles]
) -> None:
    import signal
    import subprocess
    import sys

    home = AlphaOpsHome(tmp_path / "home").ensure()
    store = CandleStore(home.data_dir)
    for candles in market.values():
        store.append(candles)
    process = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_SCRIPT, str(home.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while process.stdout.readline().strip() != "training":
        assert time.monotonic() < deadline, "the jobs never started"
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert [j["status"] for j in summary["jobs"]] == ["cancelled", "cancelled"]
    with open_registry(home) as registry:
        assert registry.list_versions(all_statuses=True) == []
