"""Leak-free train/test splits for labelled events: walk-forward and purged k-fold.

A sample is an event with a start time ``t0`` (the bar its features describe) and an end
time ``t1`` (the last bar its label looks at, ``t1 >= t0``); samples are sorted by ``t0``.
A training sample *leaks* into a test fold when its label interval ``[t0, t1]`` overlaps the
fold's test span ``[min t0_test, max t1_test]`` (both ends closed). Both splitters **purge**
such samples from the training set, and can **embargo** more (López de Prado, *Advances in
Financial Machine Learning*, ch. 7):

- :func:`purged_kfold` drops the training samples that start within the embargo *after* the
  test span, because serially correlated features right after the test would still leak.
- :func:`walk_forward` never trains on samples after the test, so its embargo widens the gap
  *before* it: every training label must end before ``test start - embargo``.

The ``embargo`` is either a fraction of all samples (LdP's ``pct_embargo``; ``ceil(embargo *
n)`` samples, so a positive fraction never rounds down to nothing) or a time span
(:class:`pandas.Timedelta`, :class:`numpy.timedelta64` or :class:`datetime.timedelta`).

Times are ``datetime64`` arrays or pandas Series/Index (naive means UTC; tz-aware is
converted), or integers read as **milliseconds since the epoch** (as in
:attr:`alphaops.data.candles.Candles.timestamps_ms`). Indices in a :class:`Split` are
0-based positions, not pandas labels.

>>> import numpy as np
>>> t0 = np.arange(10) * 3_600_000                 # hourly bars, int milliseconds
>>> t1 = t0 + 2 * 3_600_000                        # each label looks 2 bars ahead
>>> folds = purged_kfold(t0, t1, n_splits=5, embargo=0.1)
>>> fold = folds[2]                                # tests bars 4-5, span [4h, 7h]
>>> fold.test.tolist(), fold.train.tolist(), fold.purged, fold.embargoed
([4, 5], [0, 1, 9], 4, 1)
>>> [s.test.tolist() for s in walk_forward(t0, t1, n_splits=2, test_size=3)]
[[4, 5, 6], [7, 8, 9]]
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from alphaops.core.errors import InsufficientDataError, SpecError

__all__ = ["Embargo", "Split", "purged_kfold", "walk_forward"]

IndexArray: TypeAlias = np.ndarray[Any, np.dtype[np.int64]]
_Ns: TypeAlias = np.ndarray[Any, np.dtype[np.int64]]
#: A fraction of all samples in ``[0, 1)``, or a non-negative time span.
Embargo: TypeAlias = float | pd.Timedelta | np.timedelta64 | dt.timedelta

_NS_PER_MS = 1_000_000
_MAX_MS = np.iinfo(np.int64).max // _NS_PER_MS
_MAX_EMBARGO_NS = 2**62


@dataclass(frozen=True, eq=False)
class Split:
    """One fold: positions to train on and to test on, and the test span it was purged by.

    ``train`` and ``test`` are sorted, read-only ``int64`` position arrays.
    ``test_start``/``test_end`` are ``min t0`` and ``max t1`` of the test samples (UTC,
    ``datetime64[ns]``). ``purged`` and ``embargoed`` count the training candidates dropped
    by each rule (a sample both purged and embargoed counts as purged).
    """

    fold: int
    train: IndexArray
    test: IndexArray
    test_start: np.datetime64
    test_end: np.datetime64
    purged: int
    embargoed: int

    def __repr__(self) -> str:
        return (
            f"Split(fold={self.fold}, train={self.train.size} samples, test={self.test.size} "
            f"samples [{self.test_start}, {self.test_end}], purged={self.purged}, "
            f"embargoed={self.embargoed})"
        )


def purged_kfold(t0: Any, t1: Any, *, n_splits: int = 5, embargo: Embargo = 0.0) -> list[Split]:
    """Split samples into contiguous test folds, training on the rest minus leaks.

    Fold ``k`` tests the ``k``-th of ``n_splits`` contiguous, near-equal blocks of samples
    (sizes differ by at most one). Its training set is every other sample, minus those whose
    ``[t0, t1]`` overlaps the test span (purging), minus those starting within the embargo
    after the test span (the first ``ceil(embargo * n)`` samples with ``t0 > max t1_test``,
    or those with ``t0 <= max t1_test + embargo`` for a time span). Raise
    :class:`InsufficientDataError` if a fold is left without training samples.

    >>> t0 = np.arange(6) * 3_600_000
    >>> [s.train.tolist() for s in purged_kfold(t0, t0 + 3_600_000, n_splits=3)]
    [[3, 4, 5], [0, 5], [0, 1, 2]]
    """
    start, end = _event_times(t0, t1)
    n = start.size
    folds = _count(n_splits, "n_splits", minimum=2)
    if n < folds:
        raise InsufficientDataError(
            f"purged_kfold with n_splits={folds} needs at least {folds} samples; got {n}",
            fix="lower n_splits or provide more samples",
            n_splits=folds,
            samples=n,
        )
    embargo_samples, embargo_ns = _embargo(embargo, n)
    positions = np.arange(n, dtype=np.int64)
    splits: list[Split] = []
    for fold, block in enumerate(np.array_split(positions, folds)):
        first, stop = int(block[0]), int(block[-1]) + 1
        span_start, span_end = int(start[first]), int(end[first:stop].max())
        candidate = np.ones(n, dtype=bool)
        candidate[first:stop] = False
        overlaps = (start <= span_end) & (end >= span_start)
        after = int(np.searchsorted(start, span_end, side="right"))
        embargoed = np.zeros(n, dtype=bool)
        if embargo_ns is None:
            embargo_stop = after + embargo_samples
        else:
            embargo_stop = int(np.searchsorted(start, span_end + embargo_ns, side="right"))
        embargoed[after:embargo_stop] = True
        train = np.flatnonzero(candidate & ~overlaps & ~embargoed)
        if train.size == 0:
            raise InsufficientDataError(
                f"purged_kfold fold {fold} (test samples {first}..{stop - 1}) has no training "
                f"samples left after purging and embargo {embargo!r}",
                fix="shorten the label horizon (t1 - t0) or the embargo, or provide more samples",
                fold=fold,
            )
        splits.append(
            _split(
                fold,
                train,
                block,
                span_start,
                span_end,
                purged=int((candidate & overlaps).sum()),
                embargoed=int((candidate & ~overlaps & embargoed).sum()),
            )
        )
    return splits


def walk_forward(
    t0: Any,
    t1: Any,
    *,
    n_splits: int,
    test_size: int | None = None,
    min_train_size: int | None = None,
    max_train_size: int | None = None,
    embargo: Embargo = 0.0,
) -> list[Split]:
    """Split samples into consecutive test blocks, each trained only on labels that ended before.

    The tests are the last ``n_splits * test_size`` samples in ``n_splits`` ordered,
    disjoint blocks. A fold trains on earlier samples whose label ends before the test
    starts: ``t1 < t0[first test]`` (purging), tightened by the embargo to ``t1 <
    t0[first test] - embargo`` for a time span, or to ``t1 < t0[first test - ceil(embargo *
    n)]`` for a fraction. The training window expands; with ``max_train_size`` it rolls, keeping
    the most recent samples.

    ``test_size`` defaults to ``n // (n_splits + 1)``, or, with ``min_train_size``, to the
    largest size that leaves every fold at least ``min_train_size`` training samples after
    purging and embargo. Raise :class:`InsufficientDataError` if a fold gets fewer (at least
    one is always required).

    >>> t0 = np.arange(8) * 3_600_000
    >>> folds = walk_forward(t0, t0 + 3_600_000, n_splits=2, min_train_size=3)
    >>> [(s.train.tolist(), s.test.tolist()) for s in folds]
    [([0, 1, 2], [4, 5]), ([0, 1, 2, 3, 4], [6, 7])]
    """
    start, end = _event_times(t0, t1)
    n = start.size
    folds = _count(n_splits, "n_splits", minimum=2)
    min_train = 1 if min_train_size is None else _count(min_train_size, "min_train_size")
    max_train = None if max_train_size is None else _count(max_train_size, "max_train_size")
    if max_train is not None and max_train < min_train:
        raise SpecError(
            f"max_train_size={max_train} is smaller than min_train_size={min_train}",
            fix="raise max_train_size or lower min_train_size",
        )
    embargo_samples, embargo_ns = _embargo(embargo, n)
    kept = _kept_counts(start, end, embargo_samples, embargo_ns)
    if test_size is not None:
        size = _count(test_size, "test_size")
    elif min_train_size is None:
        size = n // (folds + 1)
    else:
        enough = np.flatnonzero(kept >= min_train)
        size = (n - int(enough[0])) // folds if enough.size else 0
    first_test = n - folds * size
    if size == 0 or first_test < 1:
        raise InsufficientDataError(
            f"walk_forward with n_splits={folds} needs {folds} test folds of "
            f"{max(size, 1)} sample(s) after at least {min_train} training sample(s); "
            f"got {n} samples",
            fix="lower n_splits, test_size or min_train_size, or provide more samples",
            samples=n,
            needed_train=min_train,
        )
    if kept[first_test] < min_train:
        raise InsufficientDataError(
            f"walk_forward with n_splits={folds}, test_size={size} leaves "
            f"{int(kept[first_test])} training sample(s) for the first fold after purging and "
            f"embargo {embargo!r}; at least {min_train} needed ({n} samples in all)",
            fix="lower n_splits, test_size, min_train_size or the embargo, or provide more samples",
            samples=n,
            needed_train=min_train,
        )
    splits: list[Split] = []
    for fold in range(folds):
        first = first_test + fold * size
        threshold = _threshold(start, first, embargo_samples, embargo_ns)
        before = end[:first]
        train = np.flatnonzero(before < threshold)
        if max_train is not None:
            train = train[-max_train:]
        purged = int((before >= start[first]).sum())
        embargoed = int(((before >= threshold) & (before < start[first])).sum())
        block = np.arange(first, first + size, dtype=np.int64)
        span_end = int(end[first : first + size].max())
        splits.append(_split(fold, train, block, int(start[first]), span_end, purged, embargoed))
    return splits


def _split(
    fold: int,
    train: IndexArray,
    test: IndexArray,
    span_start: int,
    span_end: int,
    purged: int,
    embargoed: int,
) -> Split:
    train = train.astype(np.int64, copy=True)
    test = test.astype(np.int64, copy=True)
    train.flags.writeable = False
    test.flags.writeable = False
    return Split(
        fold,
        train,
        test,
        np.datetime64(span_start, "ns"),
        np.datetime64(span_end, "ns"),
        purged,
        embargoed,
    )


def _threshold(start: _Ns, first: int, embargo_samples: int, embargo_ns: int | None) -> int:
    # Training labels must end strictly before this time (ns) for a test starting at `first`.
    if embargo_ns is not None:
        return int(start[first]) - embargo_ns
    if first - embargo_samples < 0:
        return int(np.iinfo(np.int64).min)
    return int(start[first - embargo_samples])


def _kept_counts(start: _Ns, end: _Ns, embargo_samples: int, embargo_ns: int | None) -> _Ns:
    # kept[s] = training samples available to a test starting at position s. A label ending
    # before t0[s] also starts before it, so counting t1 < threshold over all samples suffices.
    n = start.size
    positions = np.arange(n)
    if embargo_ns is not None:
        thresholds = start - embargo_ns
    else:
        thresholds = np.where(
            positions >= embargo_samples,
            start[np.maximum(positions - embargo_samples, 0)],
            np.iinfo(np.int64).min,
        )
    return np.searchsorted(np.sort(end), thresholds, side="left").astype(np.int64)


def _event_times(t0: Any, t1: Any) -> tuple[_Ns, _Ns]:
    start, end = _as_ns(t0, "t0"), _as_ns(t1, "t1")
    if start.size != end.size:
        raise SpecError(
            f"t0 has {start.size} samples but t1 has {end.size}",
            fix="pass one t1 (label end) per t0 (sample start)",
        )
    if start.size == 0:
        raise InsufficientDataError("no samples to split", fix="pass non-empty t0 and t1")
    unsorted = np.flatnonzero(np.diff(start) < 0)
    if unsorted.size:
        i = int(unsorted[0]) + 1
        raise SpecError(
            f"t0 is not sorted: {unsorted.size} sample(s) start earlier than the one before, "
            f"first at position {i} ({np.datetime64(int(start[i]), 'ns')} < "
            f"{np.datetime64(int(start[i - 1]), 'ns')})",
            fix="sort the samples by t0 (and reorder t1, features and labels with them)",
        )
    backwards = np.flatnonzero(end < start)
    if backwards.size:
        i = int(backwards[0])
        raise SpecError(
            f"{backwards.size} sample(s) have t1 < t0, first at position {i} (t0="
            f"{np.datetime64(int(start[i]), 'ns')}, t1={np.datetime64(int(end[i]), 'ns')})",
            fix="set t1 to the last bar the label looks at, never before t0",
        )
    return start, end


def _as_ns(values: Any, name: str) -> _Ns:
    if isinstance(values, pd.Series | pd.Index) and isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.to_numpy(dtype="datetime64[ns]")  # converts to UTC
    array = np.asarray(values)
    if array.ndim != 1:
        raise SpecError(
            f"{name} must be one-dimensional; got shape {array.shape}",
            fix=f"pass one {name} per sample",
        )
    if array.dtype.kind == "M":
        if np.isnat(array).any():
            raise SpecError(
                f"{name} holds {int(np.isnat(array).sum())} missing time(s) (NaT)",
                fix="drop the samples without times",
            )
        return array.astype("datetime64[ns]").view(np.int64)
    if array.dtype.kind in "iu":
        if array.size and (np.abs(array.astype(np.float64)) > _MAX_MS).any():
            raise SpecError(
                f"{name} holds integers beyond the datetime64[ns] range, read as milliseconds",
                fix="pass datetime64 values, or integer milliseconds since the epoch",
            )
        return array.astype(np.int64) * _NS_PER_MS
    raise SpecError(
        f"{name} has dtype {array.dtype}, not times",
        fix="pass datetime64 values (or a pandas datetime Series), or int64 milliseconds",
    )


def _count(value: Any, name: str, *, minimum: int = 1) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise SpecError(
            f"{name}={value!r} is not an integer", fix=f"pass an integer >= {minimum}"
        ) from None
    if number < minimum:
        raise SpecError(f"{name}={number} is below {minimum}", fix=f"pass an integer >= {minimum}")
    return number


def _embargo(embargo: Any, n: int) -> tuple[int, int | None]:
    # Return (samples, None) for a fraction, (0, nanoseconds) for a time span.
    if isinstance(embargo, pd.Timedelta | np.timedelta64 | dt.timedelta):
        delta = pd.Timedelta(embargo)
        if pd.isna(delta) or delta < pd.Timedelta(0):
            raise SpecError(
                f"embargo {embargo!r} is negative or missing", fix="pass a time span >= 0"
            )
        nanoseconds = int(delta.to_timedelta64().astype("timedelta64[ns]").astype(np.int64))
        # Cap at ~146 years: longer than any data set, and t +/- it cannot overflow int64.
        return 0, min(nanoseconds, _MAX_EMBARGO_NS)
    if isinstance(embargo, bool) or not isinstance(embargo, int | float | np.integer | np.floating):
        raise SpecError(
            f"embargo {embargo!r} is neither a fraction of samples nor a time span",
            fix="pass a float in [0, 1) such as 0.01, or a pandas.Timedelta such as '4h'",
        )
    fraction = float(embargo)
    if not 0.0 <= fraction < 1.0:
        raise SpecError(
            f"embargo {embargo!r} is read as a fraction of the samples and must be in [0, 1)",
            fix=f"pass a fraction such as 0.01, k/{n} for k samples, or a pandas.Timedelta",
        )
    return math.ceil(fraction * n), None
