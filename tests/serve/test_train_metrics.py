"""``alphaops train --metrics-textfile``: real LightGBM trainings on real candles write the
training metrics teams alert on, in node_exporter's textfile format; a cancelled training
observes its cancellation latency."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from alphaops.cli import main
from alphaops.core.config import load_config
from alphaops.core.home import AlphaOpsHome
from alphaops.data import CandleStore
from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, LabelRule
from alphaops.serve.metrics import TrainingMetrics
from alphaops.services.training import train_models
from alphaops.training import CancelToken, TrainingJob

BARS = 2500


@pytest.fixture
def home(tmp_path: Path, load_real: Callable[[str, str], Candles]) -> Path:
    root = AlphaOpsHome(tmp_path / "home").ensure()
    store = CandleStore(root.data_dir)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        store.append(load_real(symbol, "1h").tail(BARS))
    return root.root


def _read(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def _train(home: Path, *args: str) -> int:
    return main(["--home", str(home), "train", "--model", "lightgbm", "--executor", "sequential",
                 "--param", "n_estimators=20", *args])  # fmt: skip


def test_train_writes_the_training_metrics_as_a_textfile(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    textfile = tmp_path / "textfile" / "alphaops_train.prom"
    textfile.parent.mkdir()
    assert _train(home, "--symbols", "BTCUSDT,ETHUSDT", "--metrics-textfile", str(textfile)) == 0
    got = _read(textfile)
    lgbm = (("implementation", "lightgbm"),)
    assert got[("training_requests_total", (*lgbm, ("status", "published")))] == 2
    assert got[("training_duration_seconds_count", lgbm)] == 2
    assert got[("training_duration_seconds_sum", lgbm)] > 0
    assert got[("active_training_sessions", lgbm)] == 0  # both done
    # LightGBM reports progress every few boosting rounds: gaps between updates observed.
    assert got[("progress_update_interval_seconds_count", ())] > 0
    assert list(tmp_path.joinpath("textfile").iterdir()) == [textfile]  # no temp file left

    # A failing training (a label class that never occurs) is counted as failed.
    capsys.readouterr()
    code = _train(home, "--symbols", "BTCUSDT", "--label-scale", "fixed", "--threshold", "0.9",
                  "--metrics-textfile", str(textfile))  # fmt: skip
    assert code == 1
    got = _read(textfile)
    assert got[("training_requests_total", (*lgbm, ("status", "failed")))] == 1
    assert ("training_requests_total", (*lgbm, ("status", "published"))) not in got


def test_a_missing_textfile_folder_is_refused_before_training(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "train.prom"
    code = _train(home, "--symbols", "BTCUSDT", "--metrics-textfile", str(missing), "--json")
    captured = capsys.readouterr()
    assert code != 0
    problem = json.loads(captured.out or captured.err)
    assert str(missing.parent) in problem["message"]
    assert "textfile.directory" in problem["fix"]
    assert not missing.parent.exists()


def test_a_cancelled_training_observes_its_cancellation_latency(
    home: Path, load_real: Callable[[str, str], Candles]
) -> None:
    metrics = TrainingMetrics(CollectorRegistry())
    cancel = CancelToken()
    job = TrainingJob(
        symbols=("BTCUSDT",), timeframe="1h", model="lightgbm", features=FeatureSpec.default(),
        label=LabelRule(kind="ternary", horizon=4, threshold=0.01),
        params={"n_estimators": 2000, "early_stopping_rounds": 0}, seed=1,
    )  # fmt: skip
    progress, on_done = metrics.sinks([job], cancel)

    def cancel_at_first_update(index: int, update: object) -> None:
        progress(index, update)
        cancel.cancel()

    summary = train_models(
        load_config(environ={}, home=home), [job], executor="sequential",
        progress=cancel_at_first_update, on_done=on_done, cancel=cancel,
    )  # fmt: skip
    assert summary.cancelled
    assert (
        metrics.registry.get_sample_value(
            "training_requests_total", {"implementation": "lightgbm", "status": "cancelled"}
        )
        == 1
    )
    assert metrics.registry.get_sample_value("cancellation_latency_seconds_count") == 1
    latency = metrics.registry.get_sample_value("cancellation_latency_seconds_sum")
    assert latency is not None
    assert 0 < latency < 5
    assert (
        metrics.registry.get_sample_value(
            "active_training_sessions", {"implementation": "lightgbm"}
        )
        == 0
    )
