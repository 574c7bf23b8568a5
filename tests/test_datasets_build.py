"""Sequence datasets built from real candles: alignment, no leakage across gaps, files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaops.core.errors import InsufficientDataError, SpecError
from alphaops.data import Candles
from alphaops.datasets import DatasetSpec, build_sequence_dataset, load_dataset, save_dataset
from alphaops.features import FeaturePipeline, FeatureSpec, LabelRule, make_labels

Loader = Callable[[str, str], Candles]
# 2018-01..2018-06 holds the 34-hour Binance outage of 2018-02-08 and several shorter gaps.
START, END = pd.Timestamp("2018-01-01", tz="UTC"), pd.Timestamp("2018-07-01", tz="UTC")
RULE = LabelRule(kind="ternary", horizon=4, threshold=0.01)


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return DatasetSpec(symbols=("BTCUSDT", "ETHUSDT"), timeframe="1h", lookback=16, label=RULE)


@pytest.fixture(scope="module")
def candles(load_real: Loader) -> dict[str, Candles]:
    return {s: load_real(s, "1h").between(START, END) for s in ("BTCUSDT", "ETHUSDT")}


def test_every_window_is_gap_free_and_holds_one_symbol(
    candles: dict[str, Candles], spec: DatasetSpec
) -> None:
    ds = build_sequence_dataset(candles, spec)
    assert sum(c.gaps.count for c in candles.values()) > 0  # the period really has gaps
    times = np.concatenate([c.timestamps_ms for c in candles.values()])
    groups = np.repeat([0, 1], [len(c) for c in candles.values()])
    starts = ds.windows.ends - spec.lookback + 1
    spans = times[ds.windows.ends] - times[starts]
    assert (spans == (spec.lookback - 1) * 3_600_000).all()
    assert (groups[starts] == groups[ds.windows.ends]).all()
    assert (groups[ds.windows.ends] == ds.symbol_index).all()


def test_windows_and_labels_match_the_feature_pipeline_and_label_rule(
    candles: dict[str, Candles], spec: DatasetSpec
) -> None:
    ds = build_sequence_dataset(candles, spec)
    btc = candles["BTCUSDT"]
    features = FeaturePipeline(spec.features).transform(btc).set_index("timestamp")
    labels = make_labels(btc, RULE).frame.set_index("timestamp")
    rng = np.random.default_rng(7)
    btc_windows = np.flatnonzero(ds.symbol_index == 0)
    for i in rng.choice(btc_windows, size=40, replace=False):
        end = pd.Timestamp(int(ds.end_timestamps_ms[i]), unit="ms", tz="UTC")
        expected = features.loc[:end].tail(spec.lookback).to_numpy(np.float32)
        np.testing.assert_array_equal(ds.windows[int(i)], expected)
        assert ds.labels[i] == labels.loc[end, "label"]
        assert ds.forward_returns[i] == labels.loc[end, "forward_return"]


def test_label_of_a_window_looks_only_after_its_last_bar(
    candles: dict[str, Candles], spec: DatasetSpec
) -> None:
    ds = build_sequence_dataset(candles, spec)
    btc = candles["BTCUSDT"]
    labels = make_labels(btc, RULE).frame.set_index("timestamp")
    ends = pd.to_datetime(ds.end_timestamps_ms[ds.symbol_index == 0], unit="ms", utc=True)
    assert (labels.loc[ends, "label_end"].to_numpy() > ends.to_numpy()).all()


def test_row_accounting_explains_every_labelled_bar(
    candles: dict[str, Candles], spec: DatasetSpec
) -> None:
    ds = build_sequence_dataset(candles, spec)
    for stats in ds.stats:
        labelled = len(make_labels(candles[stats.symbol], RULE))
        assert stats.windows + stats.no_full_window == labelled
        assert stats.no_label_gap == candles[stats.symbol].gaps.count * RULE.horizon
        assert stats.no_label_end_of_data == RULE.horizon
        assert sum(stats.class_counts.values()) == stats.windows
    assert sum(s.windows for s in ds.stats) == len(ds.labels)


def test_saved_dataset_loads_without_pickle_and_keeps_its_metadata(
    candles: dict[str, Candles], spec: DatasetSpec, tmp_path: Path
) -> None:
    ds = build_sequence_dataset(candles, spec)
    files = save_dataset(ds, tmp_path, now=pd.Timestamp("2026-01-02T03:04:05Z").to_pydatetime())
    assert files.npz.name == "dataset_20260102T030405Z.npz"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    loaded = load_dataset(files.npz)  # allow_pickle=False inside
    np.testing.assert_array_equal(loaded.X, ds.windows.materialize())
    np.testing.assert_array_equal(loaded.y, ds.labels)
    assert loaded.X.dtype == np.float32
    assert loaded.symbols == ("BTCUSDT", "ETHUSDT")
    assert loaded.feature_names == spec.features.names
    meta = loaded.metadata
    assert meta["lookback"] == 16
    assert meta["horizon"] == 4
    assert meta["classes"] == ["SELL", "HOLD", "BUY"]
    assert meta["label_rule_hash"] == RULE.rule_hash
    assert meta["feature_spec_hash"] == spec.features.spec_hash
    assert meta["symbol_stats"][0]["fingerprint"] == candles["BTCUSDT"].fingerprint
    with np.load(files.npz, allow_pickle=False) as raw:
        assert all(raw[k].dtype != object for k in raw.files)


def test_report_names_shapes_balance_ranges_and_dropped_rows(
    candles: dict[str, Candles], spec: DatasetSpec, tmp_path: Path
) -> None:
    ds = build_sequence_dataset(candles, spec)
    report = save_dataset(ds, tmp_path, compress=False).report.read_text()
    n, t, f = ds.shape
    assert f"**{n:,}** × lookback {t} × {f} features" in report
    for heading in (
        "Class balance per symbol",
        "Rows that did not become windows",
        "Feature ranges",
    ):
        assert heading in report
    for name in spec.features.names:
        assert f"| {name} |" in report


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STAMP = pd.Timestamp("2026-01-02T03:04:05Z").to_pydatetime()


def test_report_links_class_balance_coverage_and_feature_plots_written_beside_it(
    candles: dict[str, Candles], spec: DatasetSpec, tmp_path: Path
) -> None:
    from matplotlib.image import imread

    ds = build_sequence_dataset(candles, spec)
    files = save_dataset(ds, tmp_path, now=STAMP, compress=False)
    assert {kind: path.name for kind, path in files.plots.items()} == {
        "class_balance": "dataset_20260102T030405Z_class_balance.png",
        "coverage": "dataset_20260102T030405Z_coverage.png",
        "features": "dataset_20260102T030405Z_features.png",
    }
    assert files.plots_skipped == ""
    report = files.report.read_text()
    for path in files.plots.values():
        assert path.parent == files.report.parent
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 10_000
        pixels = imread(path)
        height, width = pixels.shape[:2]
        assert height >= 150
        assert width >= 400
        assert pixels[..., :3].std() > 0.05  # drawn, not a blank canvas
        assert f"]({path.name})" in report  # relative link, resolves beside the report
    # Each plot sits under the table it illustrates.
    headings = [report.index(h) for h in ("Class balance", "Rows that did not", "Feature ranges")]
    links = [
        report.index(f"]({files.plots[k].name})") for k in ("class_balance", "coverage", "features")
    ]
    assert headings[0] < links[0] < headings[1] < links[1] < headings[2] < links[2]
    assert "plots: none" not in report


def test_feature_plot_has_one_panel_per_feature_in_a_grid_of_four_columns(
    candles: dict[str, Candles], spec: DatasetSpec, tmp_path: Path
) -> None:
    from matplotlib.image import imread

    ds = build_sequence_dataset(candles, spec)
    one = DatasetSpec(
        symbols=("BTCUSDT",),
        timeframe="1h",
        lookback=16,
        label=RULE,
        features=FeatureSpec(features=spec.features.features[:4]),
        name="four",
    )
    small = build_sequence_dataset(candles, one)
    wide = imread(save_dataset(ds, tmp_path, now=STAMP).plots["features"])
    row = imread(save_dataset(small, tmp_path, now=STAMP).plots["features"])
    assert len(spec.features.names) > 8  # three rows of panels against one
    assert wide.shape[0] > 2 * row.shape[0]


def test_report_without_plots_when_they_are_turned_off(
    candles: dict[str, Candles], spec: DatasetSpec, tmp_path: Path
) -> None:
    ds = build_sequence_dataset(candles, spec)
    files = save_dataset(ds, tmp_path, now=STAMP, plots=False)
    assert files.plots == {}
    assert files.plots_skipped == "turned off"
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".md", ".npz"]
    report = files.report.read_text()
    assert "- plots: none (turned off)" in report
    assert ".png" not in report
    assert "Feature ranges" in report


def test_report_without_matplotlib_keeps_the_tables_and_says_how_to_get_plots(
    candles: dict[str, Candles], spec: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    ds = build_sequence_dataset(candles, spec)
    files = save_dataset(ds, tmp_path, now=STAMP)
    assert files.plots == {}
    assert "pip install 'alphaops[reports]'" in files.plots_skipped
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".md", ".npz"]
    report = files.report.read_text()
    assert (
        "- plots: none (drawing dataset plots needs matplotlib, which is not installed; "
        "`pip install 'alphaops[reports]'` adds them)"
    ) in report
    for heading in ("Class balance per symbol", "Rows that did not", "Feature ranges"):
        assert heading in report
    np.testing.assert_array_equal(load_dataset(files.npz).y, ds.labels)


def test_importing_datasets_or_scoring_never_imports_matplotlib() -> None:
    code = (
        "import sys, alphaops.scoring, alphaops.datasets; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_symbol_is_refused_naming_it(candles: dict[str, Candles]) -> None:
    spec = DatasetSpec(symbols=("BTCUSDT", "SOLUSDT"), timeframe="1h", lookback=8, label=RULE)
    with pytest.raises(SpecError, match="SOLUSDT"):
        build_sequence_dataset(candles, spec)


def test_timeframe_mismatch_is_refused(candles: dict[str, Candles]) -> None:
    spec = DatasetSpec(symbols=("BTCUSDT",), timeframe="4h", lookback=8, label=RULE)
    with pytest.raises(SpecError, match="resample"):
        build_sequence_dataset(candles, spec)


def test_lookback_longer_than_any_gap_free_stretch_says_what_to_change(
    candles: dict[str, Candles],
) -> None:
    spec = DatasetSpec(symbols=("BTCUSDT",), timeframe="1h", lookback=4096, label=RULE)
    with pytest.raises(InsufficientDataError, match="lower the lookback"):
        build_sequence_dataset(candles, spec)


def test_spec_normalises_symbols_and_refuses_repeats() -> None:
    assert DatasetSpec(symbols=("btc/usdt",), timeframe="60m", lookback=4, label=RULE).symbols == (
        "BTCUSDT",
    )
    with pytest.raises(SpecError, match="repeat"):
        DatasetSpec(symbols=("BTCUSDT", "btcusdt"), timeframe="1h", lookback=4, label=RULE)


def test_dataset_with_a_single_feature_builds_exact_return_windows(
    candles: dict[str, Candles],
) -> None:
    from alphaops.features import Returns

    spec = DatasetSpec(
        symbols=("BTCUSDT",),
        timeframe="1h",
        lookback=3,
        label=RULE,
        features=FeatureSpec(features=(Returns(bars=1),)),
    )
    ds = build_sequence_dataset([candles["BTCUSDT"]], spec)
    close = candles["BTCUSDT"].frame["close"].to_numpy()
    end = int(ds.windows.ends[0])
    expected = (close[end - 2 : end + 1] / close[end - 3 : end] - 1).astype(np.float32)
    np.testing.assert_array_equal(ds.windows[0][:, 0], expected)
