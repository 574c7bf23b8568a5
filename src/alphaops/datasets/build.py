"""Sequence datasets for LSTM / PatchTST: features and labels of one or many symbols as
``(N, T, F)`` float32 windows, written as ``.npz`` (no pickle) with a Markdown report.

The window ending at bar ``t`` holds the features of bars ``t - T + 1 .. t``; its label looks
at bars ``t + 1 .. t + h`` only. No window crosses a data gap or a symbol boundary, rows
inside the feature warm-up are skipped, and bars without a full label horizon are dropped.

>>> from alphaops.features import FeatureSpec, LabelRule, Returns
>>> spec = DatasetSpec(symbols=("BTCUSDT",), timeframe="1h", lookback=8,
...     label=LabelRule(kind="ternary", horizon=4, threshold=0.01),
...     features=FeatureSpec(features=(Returns(bars=1),)))
>>> spec.label.classes
('SELL', 'HOLD', 'BUY')
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator

from alphaops._version import __version__
from alphaops.core.errors import InsufficientDataError, SpecError, UsageError
from alphaops.core.names import validate_name
from alphaops.core.specs import SpecModel, SymbolList, TimeframeName
from alphaops.data.candles import Candles
from alphaops.datasets.plots import PLOT_TITLES, draw_plots
from alphaops.datasets.windows import SequenceWindows, segment_ids
from alphaops.features import (
    FeaturePipeline,
    FeatureSpec,
    LabelRule,
    check_lookahead,
    make_labels,
)

__all__ = [
    "DatasetFiles",
    "DatasetSpec",
    "LoadedDataset",
    "SequenceDataset",
    "SymbolStats",
    "build_sequence_dataset",
    "load_dataset",
    "save_dataset",
]

DATASET_FORMAT = 1


class DatasetSpec(SpecModel):
    """What to build: symbols, timeframe, lookback ``T``, label rule and feature spec."""

    spec_label: ClassVar[str] = "dataset spec"
    spec_example: ClassVar[str] = (
        "symbols=('BTCUSDT',), timeframe='1h', lookback=64, label=LabelRule(...)"
    )

    symbols: SymbolList = Field(min_length=1, description="Symbols, in output order.")
    timeframe: TimeframeName = Field(description="Candle timeframe, e.g. '1h'.")
    lookback: int = Field(ge=1, le=4096, description="Bars per window (T).")
    label: LabelRule
    features: FeatureSpec = Field(default_factory=FeatureSpec.default)
    name: str = Field("dataset", description="File name prefix under <home>/datasets.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_name(value, kind="dataset name")


@dataclass(frozen=True)
class SymbolStats:
    """Row accounting of one symbol: how many bars became windows, and why the rest did not."""

    symbol: str
    rows: int
    warmup: int
    no_label_end_of_data: int
    no_label_gap: int
    no_full_window: int
    windows: int
    class_counts: dict[str, int]
    first: str
    last: str
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready copy."""
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class SequenceDataset:
    """Windows, labels and their provenance, before or after being written to disk."""

    spec: DatasetSpec
    windows: SequenceWindows
    labels: npt.NDArray[np.int64]
    forward_returns: npt.NDArray[np.float64]
    end_timestamps_ms: npt.NDArray[np.int64]
    symbol_index: npt.NDArray[np.int16]
    stats: tuple[SymbolStats, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return ``(N, T, F)``."""
        return self.windows.shape

    def class_counts(self) -> dict[str, int]:
        """Return window counts per class over all symbols, in class order."""
        counts = np.bincount(self.labels, minlength=len(self.spec.label.classes))
        return {c: int(n) for c, n in zip(self.spec.label.classes, counts, strict=True)}

    def metadata(self) -> dict[str, Any]:
        """Return the JSON metadata stored beside the arrays."""
        return {
            "format": DATASET_FORMAT,
            "alphaops_version": __version__,
            "name": self.spec.name,
            "symbols": list(self.spec.symbols),
            "timeframe": self.spec.timeframe,
            "lookback": self.spec.lookback,
            "horizon": self.spec.label.horizon,
            "shape": list(self.shape),
            "feature_names": list(self.spec.features.names),
            "feature_spec": self.spec.features.to_dict(),
            "feature_spec_hash": self.spec.features.spec_hash,
            "label_rule": self.spec.label.to_dict(),
            "label_rule_hash": self.spec.label.rule_hash,
            "label_description": self.spec.label.describe(self.spec.timeframe),
            "classes": list(self.spec.label.classes),
            "class_counts": self.class_counts(),
            "symbol_stats": [s.to_dict() for s in self.stats],
        }


def build_sequence_dataset(
    candles: Mapping[str, Candles] | Sequence[Candles], spec: DatasetSpec
) -> SequenceDataset:
    """Compute features and labels per symbol and cut them into gap-free windows.

    ``candles`` holds one series per symbol of ``spec.symbols`` (a mapping by symbol or a
    sequence); each must have the spec's timeframe.
    """
    by_symbol = _by_symbol(candles, spec)
    pipeline = FeaturePipeline(spec.features)
    blocks: list[npt.NDArray[np.float64]] = []
    labels: list[npt.NDArray[np.int64]] = []
    returns: list[npt.NDArray[np.float64]] = []
    times: list[npt.NDArray[np.int64]] = []
    groups: list[npt.NDArray[np.int16]] = []
    segments: list[npt.NDArray[np.int64]] = []
    partial: list[tuple[Candles, int, Any]] = []
    for index, symbol in enumerate(spec.symbols):
        series = by_symbol[symbol]
        features = pipeline.transform(series)[list(spec.features.names)].to_numpy(np.float64)
        if spec.features.custom:  # a user's own feature that reads the future is refused
            check_lookahead(FeatureSpec(features=spec.features.custom), series)
        labelled = make_labels(series, spec.label)
        # Align labels to bars: -1 marks bars without a full horizon (never guessed).
        rows = np.searchsorted(series.timestamps_ms, _ms(labelled.frame["timestamp"]))
        label = np.full(len(series), -1, dtype=np.int64)
        label[rows] = labelled.frame["label"].to_numpy()
        forward = np.full(len(series), np.nan)
        forward[rows] = labelled.frame["forward_return"].to_numpy()
        warm = int((~np.isfinite(features).all(axis=1)).sum())
        blocks.append(features)
        labels.append(label)
        returns.append(forward)
        times.append(series.timestamps_ms)
        groups.append(np.full(len(series), index, dtype=np.int16))
        # Segments count trading bars of the series' calendar (a weekend is no gap).
        segments.append(
            segment_ids(series.timestamps_ms, series.timeframe, calendar=series.calendar)
        )
        partial.append((series, warm, labelled.dropped))
    all_labels = np.concatenate(labels)
    all_groups = np.concatenate(groups)
    all_times = np.concatenate(times)
    try:
        windows = SequenceWindows.build(
            np.concatenate(blocks),
            lookback=spec.lookback,
            segments=_concat_segments(segments),
            valid=all_labels >= 0,
        )
    except InsufficientDataError as exc:
        raise InsufficientDataError(
            f"no {spec.lookback}-bar window of {', '.join(spec.symbols)} has finite features "
            f"and a label ({exc.message})",
            fix=f"load more history, or lower the lookback or the feature warm-up "
            f"({spec.features.warmup_bars} bars)",
        ) from exc
    ends = windows.ends
    window_labels = all_labels[ends]
    stats = tuple(
        _stats(spec, series, warm, dropped, all_labels, all_groups, ends, index)
        for index, (series, warm, dropped) in enumerate(partial)
    )
    return SequenceDataset(
        spec=spec,
        windows=windows,
        labels=window_labels,
        forward_returns=np.concatenate(returns)[ends],
        end_timestamps_ms=all_times[ends],
        symbol_index=all_groups[ends],
        stats=stats,
    )


def _concat_segments(per_series: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
    # Number each series' segments after the previous series' so no segment spans two.
    offsets = np.cumsum([0] + [int(s[-1]) + 1 if s.size else 0 for s in per_series[:-1]])
    return np.concatenate([s + o for s, o in zip(per_series, offsets, strict=True)])


def _by_symbol(
    candles: Mapping[str, Candles] | Sequence[Candles], spec: DatasetSpec
) -> dict[str, Candles]:
    items = list(candles.values()) if isinstance(candles, Mapping) else list(candles)
    found = {c.symbol: c for c in items}
    missing = [s for s in spec.symbols if s not in found]
    if missing:
        raise SpecError(
            f"no candles given for {missing}; got {sorted(found)}",
            fix="load every symbol named in the dataset spec",
        )
    for symbol in spec.symbols:
        if found[symbol].timeframe.value != spec.timeframe:
            raise SpecError(
                f"{symbol} candles are {found[symbol].timeframe}, the dataset is {spec.timeframe}",
                fix="resample the candles or change the dataset timeframe",
            )
    return found


def _stats(
    spec: DatasetSpec,
    series: Candles,
    warm: int,
    dropped: Mapping[str, int],
    all_labels: npt.NDArray[np.int64],
    all_groups: npt.NDArray[np.int16],
    ends: npt.NDArray[np.int64],
    index: int,
) -> SymbolStats:
    mine = ends[all_groups[ends] == index]
    in_group = all_groups == index
    labelled = int((all_labels[in_group] >= 0).sum())
    counts = np.bincount(all_labels[mine], minlength=len(spec.label.classes))
    return SymbolStats(
        symbol=series.symbol,
        rows=len(series),
        warmup=warm,
        no_label_end_of_data=int(dropped.get("end_of_data", 0)),
        no_label_gap=int(dropped.get("gap", 0)),
        no_full_window=labelled - len(mine),
        windows=len(mine),
        class_counts={c: int(n) for c, n in zip(spec.label.classes, counts, strict=True)},
        first=series.frame["timestamp"].iloc[0].isoformat(),
        last=series.frame["timestamp"].iloc[-1].isoformat(),
        fingerprint=series.fingerprint,
    )


def _ms(values: Any) -> npt.NDArray[np.int64]:
    return np.asarray(values.to_numpy(dtype="datetime64[ms]")).astype(np.int64)


@dataclass(frozen=True)
class DatasetFiles:
    """Where a dataset was written: the arrays, the human-readable report and its plots.

    ``plots`` maps a plot kind (``class_balance``, ``coverage``, ``features``) to its PNG
    beside the report; it is empty when no plots were drawn, and ``plots_skipped`` says why.
    """

    npz: Path
    report: Path
    plots: Mapping[str, Path] = field(default_factory=dict)
    plots_skipped: str = ""


def save_dataset(
    dataset: SequenceDataset,
    folder: Path,
    *,
    now: datetime | None = None,
    compress: bool = True,
    plots: bool = True,
) -> DatasetFiles:
    """Write ``<folder>/<name>_<UTC timestamp>.npz`` and a Markdown report beside it.

    The file is written to a temporary name and renamed, so a crash never leaves a partial
    dataset under the final name. It loads with ``numpy.load(path, allow_pickle=False)``.

    With ``plots`` (and matplotlib, from ``pip install 'alphaops[reports]'``) the report links
    PNGs written beside it: ``<name>_<timestamp>_class_balance.png``, ``…_coverage.png`` and
    ``…_features.png``. Without matplotlib the report is written without them and says how to
    get them.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / f"{dataset.spec.name}_{stamp}.npz"
    arrays: dict[str, Any] = {
        "X": dataset.windows.materialize(),
        "y": dataset.labels,
        "forward_return": dataset.forward_returns,
        "end_timestamp_ms": dataset.end_timestamps_ms,
        "symbol_index": dataset.symbol_index,
        "symbols": np.array(dataset.spec.symbols, dtype=np.str_),
        "feature_names": np.array(dataset.spec.features.names, dtype=np.str_),
        "metadata": np.array(json.dumps(dataset.metadata(), sort_keys=True), dtype=np.str_),
    }
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{npz.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            (np.savez_compressed if compress else np.savez)(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, npz)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    drawn: dict[str, Path] = {}
    skipped = "turned off"
    if plots:
        try:
            drawn = draw_plots(dataset, folder, npz.stem)
            skipped = ""
        except UsageError as exc:  # matplotlib is missing: keep the tables, say how to get plots
            skipped = f"{exc.message}; `{exc.fix}` adds them"
    report = npz.with_suffix(".md")
    text = render_report(dataset, npz.name, plots=drawn, plots_skipped=skipped)
    report.write_text(text, encoding="utf-8")
    return DatasetFiles(npz, report, drawn, skipped)


@dataclass(frozen=True, eq=False)
class LoadedDataset:
    """A dataset read back from ``.npz``: arrays plus metadata."""

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    forward_return: npt.NDArray[np.float64]
    end_timestamp_ms: npt.NDArray[np.int64]
    symbol_index: npt.NDArray[np.int16]
    symbols: tuple[str, ...]
    feature_names: tuple[str, ...]
    metadata: dict[str, Any]


def load_dataset(path: Path) -> LoadedDataset:
    """Read a dataset written by :func:`save_dataset` (never unpickles anything)."""
    with np.load(path, allow_pickle=False) as data:
        return LoadedDataset(
            X=data["X"],
            y=data["y"],
            forward_return=data["forward_return"],
            end_timestamp_ms=data["end_timestamp_ms"],
            symbol_index=data["symbol_index"],
            symbols=tuple(str(s) for s in data["symbols"]),
            feature_names=tuple(str(s) for s in data["feature_names"]),
            metadata=json.loads(str(data["metadata"])),
        )


def render_report(
    dataset: SequenceDataset,
    file_name: str,
    *,
    plots: Mapping[str, Path] | None = None,
    plots_skipped: str = "",
) -> str:
    """Return the Markdown report: shapes, class balance, feature ranges, dropped rows.

    ``plots`` (kind to PNG beside the report, from :func:`~alphaops.datasets.plots.draw_plots`)
    are linked by file name under their tables; ``plots_skipped`` says why there are none.
    """
    spec, (n, t, f) = dataset.spec, dataset.shape
    drawn = dict(plots or {})

    def image(kind: str) -> list[str]:
        # Relative link: the PNGs sit beside the report, so the pair can be moved together.
        return ["", f"![{PLOT_TITLES[kind]}]({drawn[kind].name})"] if kind in drawn else []

    classes = spec.label.classes
    lines = [
        f"# Dataset `{file_name}`",
        "",
        f"- symbols: {', '.join(spec.symbols)} ({spec.timeframe})",
        f"- windows: **{n:,}** × lookback {t} × {f} features (float32, "
        f"{n * t * f * 4 / 1e6:,.1f} MB materialised)",
        f"- label: {spec.label.describe(spec.timeframe)}; classes {', '.join(classes)}",
        f"- feature spec hash `{spec.features.spec_hash[:16]}…`, warm-up {spec.features.warmup_bars} bars",
    ]
    if plots_skipped:
        lines.append(f"- plots: none ({plots_skipped})")
    lines += [
        "",
        "## Class balance per symbol",
        "",
        "| symbol | windows | " + " | ".join(classes) + " | first bar | last bar |",
        "|---|---:|" + "---:|" * len(classes) + "---|---|",
    ]
    for s in dataset.stats:
        shares = " | ".join(
            f"{s.class_counts[c]:,} ({s.class_counts[c] / max(s.windows, 1):.1%})" for c in classes
        )
        lines.append(f"| {s.symbol} | {s.windows:,} | {shares} | {s.first} | {s.last} |")
    lines += image("class_balance")
    lines += [
        "",
        "## Rows that did not become windows, and why",
        "",
        "| symbol | bars | feature warm-up | no label: end of data | no label: horizon crosses a gap "
        "| window would cross a gap, symbol start or warm-up | windows |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in dataset.stats:
        lines.append(
            f"| {s.symbol} | {s.rows:,} | {s.warmup:,} | {s.no_label_end_of_data:,} | "
            f"{s.no_label_gap:,} | {s.no_full_window:,} | {s.windows:,} |"
        )
    lines += image("coverage")
    lines += ["", "## Feature ranges (bars used by at least one window)", ""]
    lines += ["| feature | min | max | mean | std |", "|---|---:|---:|---:|---:|"]
    rows = _rows_in_windows(dataset)
    values = dataset.windows.features[rows]
    for j, name in enumerate(spec.features.names):
        col = values[:, j].astype(np.float64)
        lines.append(
            f"| {name} | {col.min():.6g} | {col.max():.6g} | {col.mean():.6g} | {col.std():.6g} |"
        )
    lines += image("features")
    return "\n".join(lines) + "\n"


def _rows_in_windows(dataset: SequenceDataset) -> npt.NDArray[np.int64]:
    used = np.zeros(dataset.windows.features.shape[0] + 1, dtype=np.int64)
    ends = dataset.windows.ends
    np.add.at(used, ends - dataset.spec.lookback + 1, 1)
    np.add.at(used, ends + 1, -1)
    return np.flatnonzero(np.cumsum(used)[:-1] > 0)
