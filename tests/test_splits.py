"""Leak-free splits: worked examples, input validation, properties, real-data-shaped input."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from alphaops.core.errors import InsufficientDataError, SpecError
from alphaops.data.candles import Candles
from alphaops.data.splits import Split, purged_kfold, walk_forward

HOUR_MS = 3_600_000
HOUR_NS = HOUR_MS * 1_000_000


def hourly(n: int, horizon_bars: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    t0 = np.arange(n, dtype=np.int64) * HOUR_MS
    return t0, t0 + horizon_bars * HOUR_MS


def as_lists(splits: list[Split]) -> list[tuple[list[int], list[int]]]:
    return [(s.train.tolist(), s.test.tolist()) for s in splits]


# --- worked examples: ten hourly samples whose labels look two bars ahead --------------------


def test_purged_kfold_purges_overlapping_labels_and_embargoes_one_sample_after_each_test() -> None:
    t0, t1 = hourly(10, 2)
    folds = purged_kfold(t0, t1, n_splits=5, embargo=0.1)  # ceil(0.1 * 10) = 1 sample
    assert as_lists(folds) == [
        ([5, 6, 7, 8, 9], [0, 1]),  # 2, 3 start inside the test span [0h, 3h]; 4 embargoed
        ([7, 8, 9], [2, 3]),  # 0, 1 end inside [2h, 5h]; 4, 5 start in it; 6 embargoed
        ([0, 1, 9], [4, 5]),
        ([0, 1, 2, 3], [6, 7]),  # nothing left after the test span to embargo
        ([0, 1, 2, 3, 4, 5], [8, 9]),
    ]
    assert [(f.purged, f.embargoed) for f in folds] == [(2, 1), (4, 1), (4, 1), (4, 0), (2, 0)]
    assert folds[1].test_start == np.datetime64("1970-01-01T02:00", "ns")
    assert folds[1].test_end == np.datetime64("1970-01-01T05:00", "ns")


def test_purged_kfold_time_embargo_of_one_bar_equals_one_sample_embargo_on_a_regular_grid() -> None:
    t0, t1 = hourly(10, 2)
    by_time = purged_kfold(t0, t1, n_splits=5, embargo=pd.Timedelta("1h"))
    assert as_lists(by_time) == as_lists(purged_kfold(t0, t1, n_splits=5, embargo=0.1))


def test_purged_kfold_without_embargo_only_purges() -> None:
    t0, t1 = hourly(10, 2)
    assert purged_kfold(t0, t1, n_splits=5)[2].train.tolist() == [0, 1, 8, 9]


def test_walk_forward_trains_only_on_labels_that_end_before_the_test_starts() -> None:
    t0, t1 = hourly(10, 2)
    folds = walk_forward(t0, t1, n_splits=3, test_size=2)
    assert as_lists(folds) == [
        ([0, 1], [4, 5]),
        ([0, 1, 2, 3], [6, 7]),
        ([0, 1, 2, 3, 4, 5], [8, 9]),
    ]
    assert [f.purged for f in folds] == [2, 2, 2]


def test_walk_forward_with_max_train_size_rolls_the_window() -> None:
    t0, t1 = hourly(10, 2)
    folds = walk_forward(t0, t1, n_splits=3, test_size=2, max_train_size=2)
    assert [f.train.tolist() for f in folds] == [[0, 1], [2, 3], [4, 5]]


@pytest.mark.parametrize("embargo", [0.1, pd.Timedelta("1h"), np.timedelta64(60, "m")])
def test_walk_forward_embargo_widens_the_gap_before_the_test(embargo: Any) -> None:
    t0, t1 = hourly(10, 2)
    folds = walk_forward(t0, t1, n_splits=3, test_size=2, embargo=embargo)
    assert [f.train.tolist() for f in folds] == [[0], [0, 1, 2], [0, 1, 2, 3, 4]]
    assert [(f.purged, f.embargoed) for f in folds] == [(2, 1), (2, 1), (2, 1)]


def test_walk_forward_default_test_size_splits_like_sklearn_time_series_split() -> None:
    t0, t1 = hourly(12, 0)
    folds = walk_forward(t0, t1, n_splits=3)  # test_size = 12 // 4 = 3
    assert [f.test.tolist() for f in folds] == [[3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert [f.train.tolist() for f in folds] == [[0, 1, 2], list(range(6)), list(range(9))]


def test_walk_forward_with_min_train_size_picks_the_largest_test_size_that_fits() -> None:
    t0, t1 = hourly(10, 2)
    folds = walk_forward(t0, t1, n_splits=2, min_train_size=3)
    # A test starting at sample s trains on s - 2 samples, so s >= 5 and test_size = 5 // 2.
    assert as_lists(folds) == [([0, 1, 2, 3], [6, 7]), ([0, 1, 2, 3, 4, 5], [8, 9])]


def test_splits_accept_tz_aware_pandas_series_and_datetime64_like_int_milliseconds() -> None:
    t0, t1 = hourly(20, 3)
    expected = as_lists(purged_kfold(t0, t1, n_splits=4, embargo=0.05))
    series0 = pd.Series(pd.to_datetime(t0, unit="ms", utc=True))
    series1 = pd.Series(pd.to_datetime(t1, unit="ms", utc=True))
    assert as_lists(purged_kfold(series0, series1, n_splits=4, embargo=0.05)) == expected
    numpy0, numpy1 = t0.astype("datetime64[ms]"), t1.astype("datetime64[ms]")
    assert as_lists(purged_kfold(numpy0, numpy1, n_splits=4, embargo=0.05)) == expected


def test_split_indices_are_read_only() -> None:
    split = purged_kfold(*hourly(10, 1), n_splits=2)[0]
    with pytest.raises(ValueError, match="read-only"):
        split.train[0] = 5


# --- input validation ------------------------------------------------------------------------


@pytest.mark.parametrize("splitter", [purged_kfold, walk_forward])
def test_unsorted_t0_is_refused_with_the_position(splitter: Callable[..., list[Split]]) -> None:
    t0 = np.array([0, 2, 1, 3]) * HOUR_MS
    with pytest.raises(SpecError, match=r"not sorted.*position 2") as info:
        splitter(t0, t0, n_splits=2)
    assert info.value.fix is not None
    assert "sort" in info.value.fix


@pytest.mark.parametrize("splitter", [purged_kfold, walk_forward])
def test_label_ending_before_it_starts_is_refused(splitter: Callable[..., list[Split]]) -> None:
    t0, t1 = hourly(6, 1)
    t1[3] = t0[3] - HOUR_MS
    with pytest.raises(SpecError, match=r"1 sample\(s\) have t1 < t0, first at position 3"):
        splitter(t0, t1, n_splits=2)


@pytest.mark.parametrize("splitter", [purged_kfold, walk_forward])
@pytest.mark.parametrize("n_splits", [1, 0, 2.5, True])
def test_n_splits_below_two_or_not_an_integer_is_refused(
    splitter: Callable[..., list[Split]], n_splits: Any
) -> None:
    with pytest.raises(SpecError, match=f"n_splits={n_splits!r}"):
        splitter(*hourly(10, 1), n_splits=n_splits)


def test_purged_kfold_with_more_folds_than_samples_reports_both_counts() -> None:
    with pytest.raises(InsufficientDataError, match="at least 5 samples; got 3"):
        purged_kfold(*hourly(3, 0), n_splits=5)


def test_walk_forward_with_more_folds_than_samples_reports_the_sample_count() -> None:
    with pytest.raises(InsufficientDataError, match=r"needs 5 test folds of 1 sample.*got 3"):
        walk_forward(*hourly(3, 0), n_splits=5)


def test_walk_forward_with_too_few_samples_says_how_many_training_samples_are_needed() -> None:
    with pytest.raises(InsufficientDataError, match="at least 4 needed") as info:
        walk_forward(*hourly(10, 0), n_splits=2, min_train_size=4, test_size=4)
    assert info.value.details["needed_train"] == 4


def test_label_horizon_longer_than_the_data_leaves_no_training_set() -> None:
    t0, t1 = hourly(6, 10)
    with pytest.raises(InsufficientDataError, match=r"fold 0 .* no training samples"):
        purged_kfold(t0, t1, n_splits=3)
    with pytest.raises(InsufficientDataError, match="leaves 0 training sample"):
        walk_forward(t0, t1, n_splits=2)
    with pytest.raises(InsufficientDataError, match="after at least 1 training sample"):
        walk_forward(t0, t1, n_splits=2, min_train_size=1)


@pytest.mark.parametrize(
    ("embargo", "message"),
    [
        (5, "read as a fraction"),
        (-0.1, "read as a fraction"),
        (float("nan"), "read as a fraction"),
        (pd.Timedelta("-1h"), "negative"),
        ("4h", "neither a fraction"),
    ],
)
def test_bad_embargo_is_refused_with_the_accepted_forms(embargo: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        purged_kfold(*hourly(10, 1), embargo=embargo)
    assert "Timedelta" in str(info.value)


def test_max_train_size_below_min_train_size_is_refused() -> None:
    with pytest.raises(SpecError, match="max_train_size=2 is smaller than min_train_size=3"):
        walk_forward(*hourly(20, 1), n_splits=2, min_train_size=3, max_train_size=2)


@pytest.mark.parametrize(
    ("t0", "t1", "message"),
    [
        (np.zeros(4), np.zeros(4), "dtype float64, not times"),
        (np.zeros(4, dtype=np.int64), np.zeros(3, dtype=np.int64), "4 samples but t1 has 3"),
        (np.zeros((2, 2), dtype=np.int64), np.zeros(4, dtype=np.int64), "one-dimensional"),
        (np.array(["NaT"] * 3, dtype="datetime64[ms]"), np.zeros(3, dtype=np.int64), "NaT"),
    ],
)
def test_times_that_are_not_one_time_per_sample_are_refused(t0: Any, t1: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        purged_kfold(t0, t1, n_splits=2)


# --- properties ------------------------------------------------------------------------------


@st.composite
def events(draw: st.DrawFn) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Sorted sample starts (ties allowed) with label horizons of 0..6 bars, in ms."""
    n = draw(st.integers(2, 40))
    steps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    horizons = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    t0 = np.cumsum(steps).astype(np.int64) * HOUR_MS
    return t0, t0 + np.asarray(horizons, dtype=np.int64) * HOUR_MS


embargoes = st.one_of(
    st.floats(0, 0.3),
    st.integers(0, 5).map(lambda h: pd.Timedelta(hours=h)),
)


def embargo_zone_purged_kfold(t0: Any, test_end_ns: int, embargo: Any) -> set[int]:
    """Positions the embargo after a test span covers, straight from the definition."""
    after = [i for i in range(len(t0)) if t0[i] * 1_000_000 > test_end_ns]
    if isinstance(embargo, pd.Timedelta):
        return {i for i in after if t0[i] * 1_000_000 <= test_end_ns + embargo.value}
    return set(after[: math.ceil(embargo * len(t0))])


def assert_no_leak(split: Split, t0: Any, t1: Any) -> None:
    train, test = split.train, split.test
    span_start, span_end = t0[test].min(), t1[test].max()
    overlapping = (t0[train] <= span_end) & (t1[train] >= span_start)
    assert not overlapping.any(), f"fold {split.fold} trains on labels overlapping its test"
    assert not np.intersect1d(train, test).size
    assert split.test_start == np.datetime64(int(span_start), "ms")
    assert split.test_end == np.datetime64(int(span_end), "ms")


@settings(max_examples=300, deadline=None)
@given(data=events(), n_splits=st.integers(2, 6), embargo=embargoes)
def test_purged_kfold_never_leaks_and_drops_nothing_it_need_not(
    data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]], n_splits: int, embargo: Any
) -> None:
    t0, t1 = data
    n = len(t0)
    expected_trains = []
    for block in np.array_split(np.arange(n), min(n_splits, n)):
        start, end = t0[block].min(), t1[block].max()
        embargoed = embargo_zone_purged_kfold(t0, int(end) * 1_000_000, embargo)
        expected_trains.append(
            [
                i
                for i in range(n)
                if i not in block and not (t0[i] <= end and t1[i] >= start) and i not in embargoed
            ]
        )
    if n < n_splits or not all(expected_trains):
        event("refused: a fold has no training samples")
        with pytest.raises(InsufficientDataError):
            purged_kfold(t0, t1, n_splits=n_splits, embargo=embargo)
        return
    folds = purged_kfold(t0, t1, n_splits=n_splits, embargo=embargo)
    assert np.concatenate([f.test for f in folds]).tolist() == list(range(n))
    for fold, expected in zip(folds, expected_trains, strict=True):
        assert_no_leak(fold, t0, t1)
        embargoed = embargo_zone_purged_kfold(t0, int(fold.test_end.astype(np.int64)), embargo)
        assert not embargoed & set(fold.train.tolist())
        assert fold.train.tolist() == expected


def walk_forward_threshold(t0: Any, first: int, embargo: Any) -> float:
    """Labels must end before this time (ms) to train for a test starting at ``first``."""
    if isinstance(embargo, pd.Timedelta):
        return float(t0[first] - embargo.value // 1_000_000)
    back = first - math.ceil(embargo * len(t0))
    return float(t0[back]) if back >= 0 else -math.inf


@settings(max_examples=300, deadline=None)
@given(
    data=events(),
    n_splits=st.integers(2, 5),
    test_size=st.none() | st.integers(1, 6),
    min_train_size=st.none() | st.integers(1, 6),
    max_train_size=st.none() | st.integers(6, 12),
    embargo=embargoes,
)
def test_walk_forward_trains_only_on_the_past_with_ordered_disjoint_tests(
    data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    n_splits: int,
    test_size: int | None,
    min_train_size: int | None,
    max_train_size: int | None,
    embargo: Any,
) -> None:
    t0, t1 = data
    n = len(t0)

    def kept(first: int) -> int:
        return int((t1 < walk_forward_threshold(t0, first, embargo)).sum())

    need = min_train_size or 1
    if test_size is not None:
        size = test_size
    elif min_train_size is None:
        size = n // (n_splits + 1)
    else:
        fits = [s for s in range(1, n) if kept(s) >= need]
        size = (n - fits[0]) // n_splits if fits else 0
    first_test = n - n_splits * size
    kwargs = {
        "n_splits": n_splits,
        "test_size": test_size,
        "min_train_size": min_train_size,
        "max_train_size": max_train_size,
        "embargo": embargo,
    }
    if size < 1 or first_test < 1 or kept(first_test) < need:
        event("refused: not enough training samples")
        with pytest.raises(InsufficientDataError):
            walk_forward(t0, t1, **kwargs)
        return
    folds = walk_forward(t0, t1, **kwargs)
    tests = [f.test.tolist() for f in folds]
    assert np.concatenate(tests).tolist() == list(range(first_test, n))  # ordered, disjoint
    assert {len(t) for t in tests} == {size}
    for fold in folds:
        assert_no_leak(fold, t0, t1)
        first = int(fold.test[0])
        assert (t1[fold.train] < t0[fold.test].min()).all()
        assert (t1[fold.train] < walk_forward_threshold(t0, first, embargo)).all()  # embargo
        eligible = [i for i in range(first) if t1[i] < walk_forward_threshold(t0, first, embargo)]
        assert fold.train.tolist() == eligible[-max_train_size:] if max_train_size else eligible
        assert len(fold.train) >= need


# --- real-data-shaped input ------------------------------------------------------------------


def test_purged_kfold_on_btcusdt_hourly_purges_at_most_the_label_horizon_each_side(
    load_real: Callable[[str, str], Candles],
) -> None:
    candles = load_real("BTCUSDT", "1h")
    t0 = candles.timestamps_ms
    t1 = t0 + 4 * HOUR_MS
    folds = purged_kfold(t0, t1, n_splits=5, embargo=0.01)
    embargo_samples = math.ceil(0.01 * len(t0))
    for fold in folds:
        assert_no_leak(fold, t0, t1)
        assert len(fold.train) + len(fold.test) + fold.purged + fold.embargoed == len(t0)
        # Purged: at most 4 labels reaching into the test and 4 samples inside its tail.
        assert 1 <= fold.purged <= 8
        assert fold.embargoed == (embargo_samples if fold.fold < 4 else 0)


def test_walk_forward_on_btcusdt_hourly_series_keeps_a_label_horizon_before_each_test(
    load_real: Callable[[str, str], Candles],
) -> None:
    candles = load_real("BTCUSDT", "1h")
    t0 = candles.frame["timestamp"]
    t1 = t0 + pd.Timedelta("4h")
    folds = walk_forward(t0, t1, n_splits=5, max_train_size=20_000, embargo=pd.Timedelta("1D"))
    t0_ms, t1_ms = candles.timestamps_ms, candles.timestamps_ms + 4 * HOUR_MS
    for fold in folds:
        assert_no_leak(fold, t0_ms, t1_ms)
        assert len(fold.train) == min(20_000, fold.test[0] - 28)  # rolls once history allows
        gap = t0_ms[fold.test[0]] - t1_ms[fold.train].max()
        assert gap > 24 * HOUR_MS
        assert fold.purged + fold.embargoed == 28  # 4 purged + 24 embargoed hourly samples
