"""Turn candles and a :class:`TrainingJob` into leak-free training and validation sets.

Features and labels come from the same dataset builder as ``alphaops dataset build``:
tabular models see the features of bar ``t`` (a window of one bar), sequence models the
``lookback`` bars ending at ``t``; no window crosses a gap or a symbol boundary. The split is
a purged holdout (see :class:`~alphaops.training.job.SplitPolicy`).

>>> import numpy as np
>>> t0 = np.arange(10) * 3_600_000
>>> train, val = purged_holdout(t0, t0 + 2 * 3_600_000, validation_fraction=0.3, embargo_ms=0)
>>> train.tolist(), val.tolist()                # samples 5 and 6 end inside validation
([0, 1, 2, 3, 4], [7, 8, 9])
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaops.core.errors import InsufficientDataError, SpecError, TrainingError
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles
from alphaops.datasets import SequenceWindows
from alphaops.datasets.build import DatasetSpec, build_sequence_dataset
from alphaops.training.job import TrainingJob

__all__ = ["PreparedData", "prepare_data", "purged_holdout", "select_candles"]

IntArray = npt.NDArray[np.int64]
_REFERENCE_ROWS = 64


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Training and validation inputs of one job, with their provenance.

    ``X_train``/``X_val`` are float32 ``(N, F)`` arrays for tabular models and
    :class:`SequenceWindows` ``(N, T, F)`` for sequence models. ``val_start_ms``/
    ``val_end_ms`` are the open times of the first and last validation bars decided.
    """

    X_train: Any
    y_train: IntArray
    X_val: Any
    y_val: IntArray
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    lookback: int | None
    fingerprint: str
    start: datetime
    end: datetime
    purged: int
    val_start_ms: int | None = None
    val_end_ms: int | None = None
    calendar: str = "24/7"
    """The session calendar of the training candles (every symbol's must be the same)."""
    train_forward_returns: npt.NDArray[np.float64] | None = None
    """The forward return over the label horizon of each training sample (the decision
    rule's typical move is measured on these, never on validation)."""

    @property
    def rows(self) -> int:
        """Return the number of training plus validation samples."""
        return int(self.y_train.size + self.y_val.size)

    def reference_inputs(self) -> npt.NDArray[np.float32]:
        """Return the first validation inputs (at most 64) as a float32 array."""
        n = min(_REFERENCE_ROWS, int(self.y_val.size))
        if isinstance(self.X_val, SequenceWindows):
            return self.X_val.batch(np.arange(n))
        return np.ascontiguousarray(self.X_val[:n], dtype=np.float32)


def select_candles(job: TrainingJob, candles: Mapping[str, Candles]) -> dict[str, Candles]:
    """Return the job's symbols, cut to ``job.start``/``job.end``; raise if one is missing."""
    missing = [s for s in job.symbols if s not in candles]
    if missing:
        raise SpecError(
            f"no candles given for {missing}; got {sorted(candles)}",
            fix="import the data first: alphaops data import <file>",
        )
    chosen: dict[str, Candles] = {}
    for symbol in job.symbols:
        series = candles[symbol]
        if series.timeframe != Timeframe.parse(job.timeframe):
            raise SpecError(
                f"{symbol} candles are {series.timeframe}, the job trains on {job.timeframe}",
                fix="load candles of the job's timeframe or resample them",
            )
        if job.start is not None or job.end is not None:
            series = series.between(_ts(job.start), _ts(job.end))
        chosen[symbol] = series
    return chosen


def prepare_data(job: TrainingJob, candles: Mapping[str, Candles]) -> PreparedData:
    """Compute features and labels, cut windows and split them for ``job``."""
    chosen = select_candles(job, candles)
    sequence = job.input_kind == "sequence"
    spec = DatasetSpec(
        symbols=job.symbols,
        timeframe=job.timeframe,
        lookback=job.lookback if sequence else 1,
        label=job.label,
        features=job.features,
    )
    dataset = build_sequence_dataset(chosen, spec)
    step = Timeframe.parse(job.timeframe).milliseconds
    t0 = dataset.end_timestamps_ms
    t1 = t0 + job.label.horizon * step
    train, val = purged_holdout(
        t0,
        t1,
        validation_fraction=job.split.validation_fraction,
        embargo_ms=job.split.embargo_bars * step,
    )
    labels = dataset.labels
    _check_classes(job, labels[train], labels[val])
    windows = dataset.windows
    if sequence:
        X_train: Any = SequenceWindows(windows.features, windows.ends[train], windows.lookback)
        X_val: Any = SequenceWindows(windows.features, windows.ends[val], windows.lookback)
    else:
        rows = windows.features
        X_train = np.ascontiguousarray(rows[windows.ends[train]])
        X_val = np.ascontiguousarray(rows[windows.ends[val]])
    used = np.concatenate([train, val])
    return PreparedData(
        X_train=X_train,
        y_train=labels[train],
        X_val=X_val,
        y_val=labels[val],
        feature_names=job.features.names,
        classes=job.label.classes,
        lookback=job.lookback if sequence else None,
        fingerprint=_fingerprint(chosen),
        calendar=_calendar(chosen),
        start=_utc(int(t0[used].min()) - (spec.lookback - 1) * step),
        end=_utc(int(t1[used].max())),
        purged=int(len(labels) - used.size),
        val_start_ms=int(t0[val].min()),
        val_end_ms=int(t0[val].max()),
        train_forward_returns=dataset.forward_returns[train],
    )


def purged_holdout(
    t0: npt.ArrayLike, t1: npt.ArrayLike, *, validation_fraction: float, embargo_ms: int
) -> tuple[IntArray, IntArray]:
    """Return ``(train, val)`` positions: the latest samples validate, leaks are purged.

    ``t0``/``t1`` are each sample's entry and label-end times in ms (any order, e.g. several
    symbols concatenated). Validation holds the samples with ``t0 >= cutoff``, the cutoff
    leaving about ``validation_fraction`` of them; training holds those with ``t1 < cutoff -
    embargo_ms``.
    """
    start = np.asarray(t0, dtype=np.int64)
    end = np.asarray(t1, dtype=np.int64)
    n = start.size
    n_val = round(n * validation_fraction)
    if n < 2 or n_val < 1 or n_val >= n:
        raise InsufficientDataError(
            f"{n} labelled samples cannot be split with validation_fraction={validation_fraction}",
            fix="provide more history or change the validation fraction",
        )
    cutoff = int(np.sort(start)[n - n_val])
    val = np.flatnonzero(start >= cutoff).astype(np.int64)
    train = np.flatnonzero(end < cutoff - embargo_ms).astype(np.int64)
    if train.size == 0:
        raise InsufficientDataError(
            f"no training sample ends before the validation cutoff {_utc(cutoff).isoformat()} "
            f"minus the embargo",
            fix="provide more history, or lower the embargo or the validation fraction",
        )
    return train, val


def _check_classes(job: TrainingJob, train: IntArray, val: IntArray) -> None:
    counts = np.bincount(train, minlength=len(job.label.classes))
    absent = [c for c, n in zip(job.label.classes, counts, strict=True) if n == 0]
    if absent:
        raise TrainingError(
            f"class(es) {absent} never occur in the {train.size} training samples of "
            f"{job.registry_symbol} under the rule '{job.label.describe(job.timeframe)}'",
            fix="use more history or a smaller threshold so that every class occurs",
            class_counts=dict(zip(job.label.classes, counts.tolist(), strict=True)),
        )
    if val.size == 0:
        raise InsufficientDataError("no validation samples", fix="provide more history")


def _calendar(chosen: Mapping[str, Candles]) -> str:
    names = sorted({str(c.calendar) for c in chosen.values()})
    if len(names) > 1:
        raise SpecError(
            f"the job's symbols follow different session calendars ({', '.join(names)}): one "
            "model serves one market's bars",
            fix="train one job per calendar, or declare the series with the same calendar",
        )
    return names[0]


def _fingerprint(chosen: Mapping[str, Candles]) -> str:
    if len(chosen) == 1:
        return next(iter(chosen.values())).fingerprint
    digest = hashlib.sha256()
    for symbol in sorted(chosen):
        digest.update(f"{symbol}:{chosen[symbol].fingerprint}|".encode())
    return digest.hexdigest()


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ts(value: datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
