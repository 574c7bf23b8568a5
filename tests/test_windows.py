"""Sequence windows: exact contents, no window across gaps or symbols, zero-copy view, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaops.core.errors import InsufficientDataError, SpecError
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles
from alphaops.datasets import SequenceWindows, segment_ids

HOUR_MS = 3_600_000
OHLCV = ["open", "high", "low", "close", "volume"]


def reference_windows(features: Any, ends: Any, lookback: int) -> np.ndarray[Any, Any]:
    """The obvious loop: one slice per window end."""
    data = np.asarray(features, dtype=np.float32)
    return np.stack([data[e - lookback + 1 : e + 1] for e in ends]).astype(np.float32)


def one_segment(n: int) -> np.ndarray[Any, Any]:
    return np.zeros(n, dtype=np.int64)


@pytest.fixture
def gappy() -> SequenceWindows:
    """Seven hourly rows with a gap after row 3, two features: row i is [2i, 2i + 1]."""
    ts = np.array([0, 1, 2, 3, 7, 8, 9]) * HOUR_MS
    features = np.arange(14, dtype=np.float64).reshape(7, 2)
    return SequenceWindows.build(features, lookback=3, segments=segment_ids(ts, HOUR_MS))


# --- exact contents --------------------------------------------------------------------------


def test_windows_of_a_hand_made_series_hold_exactly_the_rows_before_each_end(
    gappy: SequenceWindows,
) -> None:
    assert gappy.ends.tolist() == [2, 3, 6]  # rows 4 and 5 follow the gap too closely
    assert gappy.shape == (3, 3, 2)
    assert len(gappy) == 3
    expected = [
        [[0, 1], [2, 3], [4, 5]],
        [[2, 3], [4, 5], [6, 7]],
        [[8, 9], [10, 11], [12, 13]],
    ]
    assert gappy.materialize().tolist() == expected
    assert gappy[1].tolist() == expected[1]
    assert gappy[-1].tolist() == expected[2]
    assert gappy.batch([2, 0]).tolist() == [expected[2], expected[0]]
    assert gappy[1:].tolist() == expected[1:]
    assert gappy[np.array([True, False, True])].tolist() == [expected[0], expected[2]]


def test_end_rows_align_labels_with_batches(gappy: SequenceWindows) -> None:
    labels = np.array([10, 11, 12, 13, 14, 15, 16])
    indices = np.array([2, 0])
    assert labels[gappy.end_rows(indices)].tolist() == [16, 12]
    assert labels[gappy.ends].tolist() == [12, 13, 16]


def test_windows_skip_rows_with_non_finite_features() -> None:
    features = np.arange(8, dtype=np.float64).reshape(8, 1)
    features[0] = np.nan  # indicator warm-up
    features[4] = np.inf
    windows = SequenceWindows.build(features, lookback=2, segments=one_segment(8))
    assert windows.ends.tolist() == [2, 3, 6, 7]
    assert np.isfinite(windows.materialize()).all()


def test_values_beyond_float32_range_count_as_non_finite() -> None:
    features = np.array([[1.0], [2.0], [1e300], [3.0], [4.0]])
    windows = SequenceWindows.build(features, lookback=2, segments=one_segment(5))
    assert windows.ends.tolist() == [1, 4]


def test_valid_mask_chooses_which_rows_may_end_a_window() -> None:
    labels = np.array([np.nan, 1, 0, np.nan, 1, 1])
    windows = SequenceWindows.build(
        np.ones((6, 2)), lookback=2, segments=one_segment(6), valid=np.isfinite(labels)
    )
    assert windows.ends.tolist() == [1, 2, 4, 5]


def test_lookback_of_one_gives_each_valid_row_as_its_own_window() -> None:
    features = np.arange(6.0).reshape(3, 2)
    windows = SequenceWindows.build(features, lookback=1, segments=[0, 1, 2])
    assert windows.view().tolist() == features[:, None, :].tolist()


# --- segments: gaps and symbol boundaries ----------------------------------------------------


def test_segments_start_at_every_gap_backwards_step_and_symbol_change() -> None:
    ts = np.array([0, 1, 2, 5, 6, 6, 7, 8, 9]) * HOUR_MS
    group = np.array(["A"] * 7 + ["B"] * 2)
    assert segment_ids(ts, HOUR_MS).tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert segment_ids(ts, Timeframe.parse("1h"), group=group).tolist() == [
        0, 0, 0, 1, 1, 2, 2, 3, 3,
    ]  # fmt: skip
    as_datetimes = ts.astype("datetime64[ms]")
    assert segment_ids(as_datetimes, HOUR_MS).tolist() == segment_ids(ts, HOUR_MS).tolist()


def test_windows_never_cross_a_gap_in_real_btcusdt_hourly_candles(
    load_real: Callable[[str, str], Candles],
) -> None:
    candles = load_real("BTCUSDT", "1h")
    assert candles.gaps.count == 28
    ts = candles.timestamps_ms
    segments = segment_ids(ts, candles.timeframe)
    lookback = 48
    windows = SequenceWindows.build(
        candles.frame[OHLCV].to_numpy(), lookback=lookback, segments=segments
    )
    rows = windows.ends[:, None] - lookback + 1 + np.arange(lookback)
    assert (np.diff(ts[rows], axis=1) == candles.timeframe.milliseconds).all()
    # Every window that fits inside a gap-free run is there, and no other.
    lengths = np.bincount(segments)
    assert lengths.size == 29
    assert len(windows) == int(np.maximum(lengths - lookback + 1, 0).sum())
    close = candles.frame["close"].to_numpy(dtype=np.float32)
    assert np.array_equal(windows.materialize()[:, -1, 3], close[windows.ends])


def test_windows_never_mix_two_concatenated_symbols(
    load_real: Callable[[str, str], Candles],
) -> None:
    btc, eth = load_real("BTCUSDT", "1h"), load_real("ETHUSDT", "1h")
    ts = np.concatenate([btc.timestamps_ms, eth.timestamps_ms])
    symbol = np.repeat(["BTCUSDT", "ETHUSDT"], [len(btc), len(eth)])
    features = np.concatenate([btc.frame[OHLCV].to_numpy(), eth.frame[OHLCV].to_numpy()])
    lookback = 24
    windows = SequenceWindows.build(
        features, lookback=lookback, segments=segment_ids(ts, HOUR_MS, group=symbol)
    )
    rows = windows.ends[:, None] - lookback + 1 + np.arange(lookback)
    assert (symbol[rows] == symbol[rows[:, :1]]).all()
    assert (np.diff(ts[rows], axis=1) == HOUR_MS).all()
    assert set(symbol[windows.ends]) == {"BTCUSDT", "ETHUSDT"}


def test_symbol_boundary_splits_series_whose_times_happen_to_continue() -> None:
    ts = np.arange(10) * HOUR_MS  # ETH rows continue BTC's clock exactly
    symbol = np.array(["BTC"] * 5 + ["ETH"] * 5)
    without_group = SequenceWindows.build(
        np.ones((10, 1)), lookback=3, segments=segment_ids(ts, HOUR_MS)
    )
    with_group = SequenceWindows.build(
        np.ones((10, 1)), lookback=3, segments=segment_ids(ts, HOUR_MS, group=symbol)
    )
    assert without_group.ends.tolist() == list(range(2, 10))
    assert with_group.ends.tolist() == [2, 3, 4, 7, 8, 9]


# --- view and materialize --------------------------------------------------------------------


def test_view_is_a_read_only_zero_copy_window_over_the_callers_float32_array() -> None:
    features = np.random.default_rng(0).standard_normal((100, 3)).astype(np.float32)
    windows = SequenceWindows.build(features, lookback=10, segments=one_segment(100))
    view = windows.view()
    assert view.shape == (91, 10, 3)
    assert np.shares_memory(view, features)
    assert not view.flags.writeable
    assert features.flags.writeable  # the caller's array is left as it was
    assert np.array_equal(view, reference_windows(features, range(9, 100), 10))


def test_view_covers_a_contiguous_run_that_starts_after_warm_up() -> None:
    features = np.arange(10.0).reshape(10, 1)
    features[:3] = np.nan
    windows = SequenceWindows.build(features, lookback=2, segments=one_segment(10))
    assert windows.view()[:, :, 0].tolist() == [[i - 1, i] for i in range(4, 10)]


def test_view_of_windows_split_by_a_gap_is_refused_with_the_alternatives(
    gappy: SequenceWindows,
) -> None:
    assert not gappy.is_contiguous
    with pytest.raises(SpecError, match="2 separate runs") as info:
        gappy.view()
    assert info.value.fix is not None
    assert "materialize()" in info.value.fix


def test_materialize_is_a_c_contiguous_float32_copy_equal_to_the_view() -> None:
    features = np.random.default_rng(1).standard_normal((200, 4))
    windows = SequenceWindows.build(features, lookback=16, segments=one_segment(200))
    copy = windows.materialize()
    assert copy.dtype == np.float32
    assert copy.flags.c_contiguous
    assert copy.flags.writeable
    assert not np.shares_memory(copy, windows.features)
    assert np.array_equal(copy, windows.view())


@pytest.mark.parametrize(
    "valid",
    [
        None,  # one contiguous run
        np.arange(5000) % 2500 != 0,  # two long runs: one copy per run
        np.arange(5000) % 2 == 0,  # thousands of one-window runs: gathered in blocks
    ],
    ids=["contiguous", "few-runs", "many-runs"],
)
def test_materialize_into_a_preallocated_array_equals_the_reference_loop(valid: Any) -> None:
    features = np.random.default_rng(2).standard_normal((5000, 3))
    windows = SequenceWindows.build(features, lookback=8, segments=one_segment(5000), valid=valid)
    out = np.full(windows.shape, np.nan, dtype=np.float32)
    assert windows.materialize(out=out) is out
    expected = reference_windows(features, windows.ends, 8)
    assert np.array_equal(out, expected)
    assert np.array_equal(windows.materialize(), expected)


def test_batch_is_a_writeable_copy_that_leaves_the_source_untouched(
    gappy: SequenceWindows,
) -> None:
    batch = gappy.batch(np.array([0, 1]))
    single = gappy[0]
    batch[:] = -1
    single[:] = -1
    assert gappy.features.min() == 0


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lookback", [0, -3, 2.0, True])
def test_lookback_that_is_not_a_positive_integer_is_refused(lookback: Any) -> None:
    with pytest.raises(SpecError, match=f"lookback={lookback!r}"):
        SequenceWindows.build(np.ones((5, 1)), lookback=lookback, segments=one_segment(5))


def test_lookback_longer_than_every_segment_says_how_many_rows_are_needed() -> None:
    segments = np.repeat([0, 1, 2], [10, 30, 20])
    with pytest.raises(
        InsufficientDataError, match=r"needs 64 consecutive.*longest segment has 30"
    ):
        SequenceWindows.build(np.ones((60, 2)), lookback=64, segments=segments)


def test_no_finite_stretch_as_long_as_the_lookback_is_reported_as_such() -> None:
    features = np.ones((10, 1))
    features[[3, 6]] = np.nan
    with pytest.raises(InsufficientDataError, match=r"finite features.*longest such run has 3"):
        SequenceWindows.build(features, lookback=4, segments=one_segment(10))


def test_a_valid_mask_that_excludes_every_end_is_reported_as_such() -> None:
    with pytest.raises(InsufficientDataError, match="ends on a row marked valid"):
        SequenceWindows.build(
            np.ones((10, 1)), lookback=2, segments=one_segment(10), valid=np.zeros(10, bool)
        )


@pytest.mark.parametrize(
    ("features", "segments", "valid", "message"),
    [
        (np.ones(5), one_segment(5), None, r"2-D \(rows, features\); got shape \(5,\)"),
        (np.ones((5, 0)), one_segment(5), None, "no columns"),
        (np.array([["a"], ["b"]]), one_segment(2), None, "not numbers"),
        (np.ones((5, 1)), one_segment(4), None, r"segments has shape \(4,\) but features has 5"),
        (np.ones((5, 1)), np.zeros(5), None, "not integer ids"),
        (np.ones((5, 1)), one_segment(5), np.ones(6, bool), r"valid has shape \(6,\)"),
        (np.ones((5, 1)), one_segment(5), np.ones(5), "valid has dtype float64, not bool"),
    ],
)
def test_malformed_inputs_are_refused_with_the_offending_shape_or_dtype(
    features: Any, segments: Any, valid: Any, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        SequenceWindows.build(features, lookback=1, segments=segments, valid=valid)


def test_empty_features_are_insufficient_data() -> None:
    with pytest.raises(InsufficientDataError, match="no rows"):
        SequenceWindows.build(np.ones((0, 3)), lookback=1, segments=one_segment(0))


def test_window_index_out_of_range_raises_index_error_with_the_valid_range(
    gappy: SequenceWindows,
) -> None:
    with pytest.raises(IndexError, match=r"window index 3 is out of range.*\[-3, 3\)"):
        gappy[3]
    with pytest.raises(IndexError, match="out of range"):
        gappy.batch([0, -4])


def test_two_dimensional_indices_are_refused(gappy: SequenceWindows) -> None:
    with pytest.raises(SpecError, match=r"indices has shape \(1, 2\)"):
        gappy.batch(np.array([[0, 1]]))


@pytest.mark.parametrize(
    "out",
    [
        np.empty((3, 3, 2), dtype=np.float64),
        np.empty((3, 3, 3), dtype=np.float32),
        np.empty((3, 2, 3), dtype=np.float32).transpose(0, 2, 1),
        [[0.0]],
    ],
    ids=["float64", "wrong-shape", "not-c-contiguous", "list"],
)
def test_materialize_into_an_unsuitable_array_is_refused(gappy: SequenceWindows, out: Any) -> None:
    with pytest.raises(SpecError, match=r"out must be a writeable C-contiguous float32 array"):
        gappy.materialize(out=out)


def test_segment_ids_refuse_bad_steps_shapes_and_dtypes() -> None:
    with pytest.raises(SpecError, match="step_ms=0"):
        segment_ids([0, 1], 0)
    with pytest.raises(SpecError, match="one-dimensional"):
        segment_ids(np.zeros((2, 2), dtype=np.int64), 1)
    with pytest.raises(SpecError, match="dtype float64"):
        segment_ids(np.zeros(3), 1)
    with pytest.raises(SpecError, match=r"group has shape \(2,\)"):
        segment_ids([0, 1, 2], 1, group=["A", "B"])


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 2), st.booleans(), st.booleans(), st.floats(-1e6, 1e6)),
        min_size=1,
        max_size=60,
    ),
    lookback=st.integers(1, 6),
)
def test_windows_are_exactly_the_gap_free_finite_runs_ending_on_a_valid_row(
    rows: list[tuple[int, bool, bool, float]], lookback: int
) -> None:
    # Per row: bars since the previous row (1 = no gap), finite?, valid end?, value.
    step = np.array([r[0] for r in rows])
    ts = np.cumsum(step) * HOUR_MS
    finite = np.array([r[1] for r in rows])
    valid = np.array([r[2] for r in rows])
    features = np.column_stack(
        [np.where(finite, [r[3] for r in rows], np.nan), np.arange(len(rows))]
    )
    segments = segment_ids(ts, HOUR_MS)
    expected_ends = [
        i
        for i in range(len(rows))
        if i >= lookback - 1
        and valid[i]
        and finite[i - lookback + 1 : i + 1].all()
        and (step[i - lookback + 2 : i + 1] == 1).all()
    ]
    if not expected_ends:
        with pytest.raises(InsufficientDataError):
            SequenceWindows.build(features, lookback=lookback, segments=segments, valid=valid)
        return
    windows = SequenceWindows.build(features, lookback=lookback, segments=segments, valid=valid)
    assert windows.ends.tolist() == expected_ends
    expected = reference_windows(features, expected_ends, lookback)
    assert np.array_equal(windows.materialize(), expected)
    out = np.empty(windows.shape, dtype=np.float32)
    assert np.array_equal(windows.materialize(out=out), expected)
    assert np.array_equal(windows.batch(np.arange(len(windows))[::-1]), expected[::-1])
    if windows.is_contiguous:
        assert np.array_equal(windows.view(), expected)
