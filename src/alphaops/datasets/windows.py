"""Sequence windows ``(N, T, F)`` for LSTM / PatchTST models, never crossing a gap or a symbol.

The window ending at row ``i`` holds rows ``i - T + 1 .. i`` of a ``(n, F)`` feature array.
Rows are split into *segments*: a new one starts wherever the time step is not exactly one
bar (a data gap, or the series going backwards) and wherever the symbol changes, so rows of
several symbols can be concatenated into one array. A window is kept only if

- all of its ``T`` rows lie in one segment (no gap, no symbol boundary inside),
- all of its ``T`` rows have finite features (indicator warm-up NaNs are skipped, not
  filled; values beyond the float32 range count as non-finite), and
- its end row is ``valid`` (e.g. the row has a label), when a mask is given.

:class:`SequenceWindows` keeps one float32 ``(n, F)`` array and the end rows of its windows;
it hands out a zero-copy view, a materialised copy, or mini-batches.

>>> import numpy as np
>>> ts = np.array([0, 1, 2, 3, 7, 8, 9]) * 3_600_000       # a gap after the 4th bar
>>> x = np.arange(14, dtype=np.float64).reshape(7, 2)
>>> windows = SequenceWindows.build(x, lookback=2, segments=segment_ids(ts, 3_600_000))
>>> windows.ends.tolist()                                   # no window holds rows 3 and 4
[1, 2, 3, 5, 6]
>>> windows[3].tolist()                                     # the window ending at row 5
[[8.0, 9.0], [10.0, 11.0]]
>>> windows.shape
(5, 2, 2)
"""

from __future__ import annotations

import itertools
import operator
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from alphaops.core.errors import InsufficientDataError, SpecError
from alphaops.core.timeframes import Timeframe
from alphaops.data.calendars import Calendar

__all__ = ["SequenceWindows", "segment_ids"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# materialize(out=...) copies each run of consecutive windows in one call when runs are
# long; with many short runs it gathers blocks of this many windows (a few MB, cache-sized).
_GATHER_BLOCK = 1024


def segment_ids(
    timestamps_ms: npt.ArrayLike,
    step_ms: int | Timeframe,
    group: npt.ArrayLike | None = None,
    *,
    calendar: str | Calendar | None = None,
) -> IntArray:
    """Number the gap-free, single-symbol runs of rows: 0, 0, 0, 1, 1, …

    A new segment starts at every row that is not the next trading bar after the previous
    row's, and at every change of ``group`` (e.g. the symbol of each row). Trading bars follow
    ``calendar`` (default ``24/7``: exactly ``step_ms`` apart; with ``XNYS`` daily bars a
    weekend or holiday is no break, a missing session is). ``timestamps_ms`` are integer
    milliseconds or ``datetime64`` values.

    >>> ts = np.array([0, 60, 120, 300, 0, 60]) * 1000
    >>> segment_ids(ts, 60_000).tolist()
    [0, 0, 0, 1, 2, 2]
    >>> segment_ids([0, 60_000, 120_000], 60_000, group=["BTC", "BTC", "ETH"]).tolist()
    [0, 0, 1]
    >>> days = np.array(["2024-07-03", "2024-07-05", "2024-07-08", "2024-07-10"], "datetime64[ms]")
    >>> segment_ids(days, Timeframe.parse("1d"), calendar="XNYS").tolist()  # 4 Jul: holiday
    [0, 0, 0, 1]
    """
    step = step_ms.milliseconds if isinstance(step_ms, Timeframe) else _positive(step_ms, "step_ms")
    times = np.asarray(timestamps_ms)
    if times.ndim != 1:
        raise SpecError(
            f"timestamps_ms must be one-dimensional; got shape {times.shape}",
            fix="pass one timestamp per row",
        )
    if times.dtype.kind == "M":
        times = times.astype("datetime64[ms]").view(np.int64)
    elif times.dtype.kind not in "iu":
        raise SpecError(
            f"timestamps_ms has dtype {times.dtype}, not integer milliseconds",
            fix="pass Candles.timestamps_ms, or datetime64 values",
        )
    new = np.ones(times.size, dtype=bool)
    cal = Calendar.parse(calendar)
    if cal.continuous:
        new[1:] = np.diff(times.astype(np.int64)) != step
    else:
        tf = step_ms if isinstance(step_ms, Timeframe) else Timeframe.parse(f"{step // 1000}s")
        bars = cal.bar_numbers(times.astype(np.int64), tf)
        # Off-session rows (-1) stand alone: both neighbours start new segments.
        new[1:] = (np.diff(bars) != 1) | (bars[1:] < 0) | (bars[:-1] < 0)
    if group is not None:
        groups = np.asarray(group)
        if groups.shape != times.shape:
            raise SpecError(
                f"group has shape {groups.shape} but timestamps_ms has {times.shape}",
                fix="pass one group label (e.g. symbol) per row",
            )
        new[1:] |= groups[1:] != groups[:-1]
    return (np.cumsum(new, dtype=np.int64) - 1).astype(np.int64)


class SequenceWindows:
    """Windows of ``lookback`` rows over one float32 feature array; build with :meth:`build`.

    Window ``k`` ends at source row ``ends[k]``: align labels and timestamps with
    ``labels[windows.ends]``. Indexing (``windows[k]``, ``windows[idx]``) and :meth:`batch`
    return copies, as a torch ``Dataset`` would; :meth:`view` is zero-copy when possible.
    """

    __slots__ = ("_data", "_ends", "_lookback", "_windows")

    def __init__(self, data: FloatArray, ends: IntArray, lookback: int) -> None:
        # Arguments are trusted: build() checks them. Use build() to make windows.
        self._data = data
        self._ends = ends
        self._lookback = lookback
        # All n - T + 1 windows as a read-only strided view (N, T, F); costs no memory.
        self._windows: FloatArray = sliding_window_view(data, lookback, axis=0).transpose(0, 2, 1)

    @classmethod
    def build(
        cls,
        features: npt.ArrayLike,
        *,
        lookback: int,
        segments: npt.ArrayLike,
        valid: npt.ArrayLike | None = None,
    ) -> SequenceWindows:
        """Find every window of ``lookback`` rows inside one segment with finite features.

        ``features`` is ``(n, F)``; it is converted to C-contiguous float32, without a copy
        when it already is one (do not modify it afterwards). ``segments`` holds one id per
        row (see :func:`segment_ids`); ``valid`` is an optional boolean mask of rows allowed
        to end a window. Raise :class:`InsufficientDataError` if no window qualifies.

        >>> x = np.array([[np.nan], [1.0], [2.0], [3.0]])
        >>> SequenceWindows.build(x, lookback=2, segments=np.zeros(4, int)).ends.tolist()
        [2, 3]
        """
        data = _feature_array(features)
        n = data.shape[0]
        window = _positive(lookback, "lookback")
        segment = _row_vector(segments, n, "segments")
        if segment.dtype.kind not in "iu":
            raise SpecError(
                f"segments has dtype {segment.dtype}, not integer ids",
                fix="pass segment_ids(timestamps_ms, step_ms, group=symbols)",
            )
        rows = np.arange(n, dtype=np.int64)
        new_segment = np.ones(n, dtype=bool)
        new_segment[1:] = segment[1:] != segment[:-1]
        finite = np.asarray(np.isfinite(data).all(axis=1), dtype=np.bool_)
        segment_start = np.maximum.accumulate(np.where(new_segment, rows, 0))
        last_non_finite = np.maximum.accumulate(np.where(finite, -1, rows))
        first_row = rows - (window - 1)
        eligible = (first_row >= segment_start) & (last_non_finite < first_row)
        if valid is not None:
            mask = _row_vector(valid, n, "valid")
            if mask.dtype != np.bool_:
                raise SpecError(
                    f"valid has dtype {mask.dtype}, not bool",
                    fix="pass a boolean mask, e.g. np.isfinite(labels)",
                )
            eligible &= mask
        ends = np.flatnonzero(eligible).astype(np.int64)
        if ends.size == 0:
            raise _no_windows(window, new_segment, new_segment | ~finite, finite)
        data.flags.writeable = False
        ends.flags.writeable = False
        return cls(data, ends, window)

    @property
    def lookback(self) -> int:
        """Return ``T``, the number of rows in each window."""
        return self._lookback

    @property
    def n_features(self) -> int:
        """Return ``F``, the number of features per row."""
        return int(self._data.shape[1])

    @property
    def features(self) -> FloatArray:
        """Return the read-only float32 ``(n, F)`` source array."""
        return self._data

    @property
    def ends(self) -> IntArray:
        """Return the read-only, ascending source rows at which the windows end."""
        return self._ends

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return ``(N, T, F)``: windows, lookback, features."""
        return (int(self._ends.size), self._lookback, self.n_features)

    @property
    def is_contiguous(self) -> bool:
        """Return whether the window ends are consecutive rows, so :meth:`view` works."""
        return int(self._ends[-1] - self._ends[0]) + 1 == self._ends.size

    def __len__(self) -> int:
        return int(self._ends.size)

    def __repr__(self) -> str:
        n, t, f = self.shape
        return (
            f"SequenceWindows({n} windows x {t} rows x {f} features, from {len(self._data)} rows)"
        )

    def view(self) -> FloatArray:
        """Return all windows as a read-only ``(N, T, F)`` view sharing the source memory.

        Constant time. Raise :class:`SpecError` when the window ends are not consecutive
        rows (gaps, non-finite rows, or ``valid`` left holes): use :meth:`materialize` or
        :meth:`batch` then.

        >>> w = SequenceWindows.build(np.ones((5, 3)), lookback=4, segments=np.zeros(5, int))
        >>> v = w.view()
        >>> v.shape, np.shares_memory(v, w.features)
        ((2, 4, 3), True)
        """
        if not self.is_contiguous:
            runs = int(np.count_nonzero(np.diff(self._ends) != 1)) + 1
            raise SpecError(
                f"the {len(self)} windows end in {runs} separate runs of rows (gaps, "
                "non-finite rows or invalid ends), so one strided view cannot hold them",
                fix="use materialize() for a copy, or batch(indices) for mini-batches",
            )
        first = int(self._ends[0]) - self._lookback + 1
        return self._windows[first : first + len(self)]

    def materialize(self, out: FloatArray | None = None) -> FloatArray:
        """Return all windows as a C-contiguous float32 ``(N, T, F)`` copy.

        ``out`` is an optional preallocated C-contiguous float32 array of that shape to fill
        (reusing it avoids allocating and page-faulting a new array each time).

        >>> w = SequenceWindows.build(np.eye(3), lookback=2, segments=[0, 0, 0])
        >>> w.materialize().tolist()
        [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]
        """
        starts = self._ends - (self._lookback - 1)
        if out is None:
            if self.is_contiguous:
                return np.ascontiguousarray(self.view())
            return np.ascontiguousarray(self._windows[starts])
        self._check_out(out)
        breaks = np.flatnonzero(np.diff(self._ends) != 1) + 1
        if (breaks.size + 1) * _GATHER_BLOCK <= len(self):
            bounds = [0, *breaks.tolist(), len(self)]
            for lo, hi in itertools.pairwise(bounds):
                first = int(starts[lo])
                np.copyto(out[lo:hi], self._windows[first : first + hi - lo])
        else:
            for lo in range(0, len(self), _GATHER_BLOCK):
                hi = lo + _GATHER_BLOCK
                np.copyto(out[lo:hi], self._windows[starts[lo:hi]])
        return out

    def batch(self, indices: Any) -> FloatArray:
        """Return a C-contiguous float32 copy of the windows at ``indices``.

        ``indices`` is anything that indexes a 1-D array of length ``N``: an int (giving a
        ``(T, F)`` window), a slice, an integer array or a boolean mask (giving ``(B, T,
        F)``). Negative indices count from the end; out-of-range ones raise ``IndexError``.

        >>> w = SequenceWindows.build(np.arange(5.0)[:, None], lookback=3, segments=[0] * 5)
        >>> w.batch([2, 0])[:, :, 0].tolist()
        [[2.0, 3.0, 4.0], [0.0, 1.0, 2.0]]
        """
        starts = self.end_rows(indices) - (self._lookback - 1)
        windows = self._windows[starts]
        # One int gives a view of one window; fancy indexing already copies.
        return windows.copy() if starts.ndim == 0 else np.ascontiguousarray(windows)

    __getitem__ = batch

    def end_rows(self, indices: Any) -> IntArray:
        """Return the source rows at which the windows at ``indices`` end (see :meth:`batch`).

        >>> w = SequenceWindows.build(np.ones((6, 1)), lookback=4, segments=[0] * 6)
        >>> w.end_rows(slice(None)).tolist(), int(w.end_rows(-1))
        ([3, 4, 5], 5)
        """
        if isinstance(indices, np.ndarray | list) and np.asarray(indices).ndim > 1:
            raise SpecError(
                f"indices has shape {np.asarray(indices).shape}; window indices are one-dimensional",
                fix="flatten the indices, e.g. indices.ravel()",
            )
        try:
            rows = self._ends[indices]
        except IndexError as exc:
            raise IndexError(
                f"window index {_describe(indices)} is out of range for {len(self)} windows "
                f"({exc}); pass indices in [-{len(self)}, {len(self)})"
            ) from None
        return np.asarray(rows, dtype=np.int64)

    def _check_out(self, out: Any) -> None:
        if (
            not isinstance(out, np.ndarray)
            or out.dtype != np.float32
            or out.shape != self.shape
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            got = (
                f"{type(out).__name__} {out.dtype} {out.shape}"
                if isinstance(out, np.ndarray)
                else type(out).__name__
            )
            raise SpecError(
                f"out must be a writeable C-contiguous float32 array of shape {self.shape}; "
                f"got {got}",
                fix=f"allocate it with np.empty({self.shape}, dtype=np.float32)",
            )


def _feature_array(features: npt.ArrayLike) -> FloatArray:
    raw = np.asarray(features)
    if raw.ndim != 2:
        raise SpecError(
            f"features must be 2-D (rows, features); got shape {raw.shape}",
            fix="stack feature columns into an (n, F) array; use x[:, None] for one feature",
        )
    if raw.dtype.kind not in "fiub":
        raise SpecError(
            f"features has dtype {raw.dtype}, not numbers",
            fix="convert the features to float (e.g. frame.to_numpy(dtype='float32'))",
        )
    if raw.shape[1] == 0:
        raise SpecError("features has no columns", fix="pass at least one feature column")
    if raw.shape[0] == 0:
        raise InsufficientDataError("features has no rows", fix="pass at least one row")
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are skipped
        data = np.ascontiguousarray(raw, dtype=np.float32)
    return data.view()  # our own read-only flag must not touch the caller's array


def _row_vector(values: npt.ArrayLike, n: int, name: str) -> npt.NDArray[Any]:
    array = np.asarray(values)
    if array.shape != (n,):
        raise SpecError(
            f"{name} has shape {array.shape} but features has {n} rows",
            fix=f"pass one {name} entry per feature row",
        )
    return array


def _positive(value: Any, name: str) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise SpecError(f"{name}={value!r} is not an integer", fix="pass an integer >= 1") from None
    if number < 1:
        raise SpecError(f"{name}={number} is below 1", fix="pass an integer >= 1")
    return number


def _longest_run(breaks: npt.NDArray[np.bool_], keep: npt.NDArray[np.bool_]) -> int:
    # Longest run of `keep` rows with no break inside; every non-kept row also breaks a run.
    run = np.cumsum(breaks | ~keep) - 1
    return int(np.bincount(run, weights=keep).max())


def _no_windows(
    lookback: int,
    new_segment: npt.NDArray[np.bool_],
    new_clean: npt.NDArray[np.bool_],
    finite: npt.NDArray[np.bool_],
) -> InsufficientDataError:
    longest_segment = _longest_run(new_segment, np.ones_like(finite))
    if longest_segment < lookback:
        return InsufficientDataError(
            f"lookback={lookback} needs {lookback} consecutive gap-free rows of one symbol; "
            f"the longest segment has {longest_segment}",
            fix=f"lower lookback to at most {longest_segment}, or provide longer gap-free history",
            lookback=lookback,
            longest_segment=longest_segment,
        )
    longest_clean = _longest_run(new_clean, finite)
    if longest_clean < lookback:
        return InsufficientDataError(
            f"lookback={lookback} needs {lookback} consecutive rows with finite features in "
            f"one segment; the longest such run has {longest_clean}",
            fix="check the features for NaN/inf (warm-up periods, divisions by zero)",
            lookback=lookback,
            longest_finite_run=longest_clean,
        )
    return InsufficientDataError(
        f"no window of lookback={lookback} ends on a row marked valid",
        fix="check the valid mask (e.g. labels present) against the feature rows",
        lookback=lookback,
    )


def _describe(indices: Any) -> str:
    text = repr(indices)
    return text if len(text) <= 60 else text[:57] + "..."
