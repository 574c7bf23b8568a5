"""The candle store: incremental merges without duplicates, conflicts, atomic writes, listing."""

from __future__ import annotations

import itertools
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaops.core.errors import (
    DataConflictError,
    DataFormatError,
    InsufficientDataError,
    NotFoundError,
    UsageError,
)
from alphaops.core.home import AlphaOpsHome
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles
from alphaops.data.store import CandleStore, write_parquet

LoadReal = Callable[[str, str], Candles]


@pytest.fixture
def store(home: AlphaOpsHome) -> CandleStore:
    return CandleStore(home.data_dir)


def _chunk(candles: Candles, start: int, stop: int) -> Candles:
    return Candles.from_frame(
        candles.frame.iloc[start:stop], symbol=candles.symbol, timeframe=candles.timeframe
    )


def _with_changed_close(candles: Candles, rows: list[int]) -> Candles:
    frame = candles.frame.copy()
    frame.loc[rows, "close"] = frame.loc[rows, "close"] + 0.01
    frame.loc[rows, "high"] = np.maximum(frame.loc[rows, "high"], frame.loc[rows, "close"])
    return Candles.from_frame(frame, symbol=candles.symbol, timeframe=candles.timeframe)


def test_overlapping_chunks_of_full_real_history_append_to_exactly_the_whole(
    store: CandleStore, load_real: LoadReal
) -> None:
    btc = load_real("BTCUSDT", "1h")
    bounds = np.linspace(0, len(btc), 9, dtype=int)
    added = present = 0
    for lo, hi in itertools.pairwise(bounds):
        result = store.append(_chunk(btc, max(int(lo) - 100, 0), int(hi)))  # 100 rows overlap
        added += result.added
        present += result.already_present

    pd.testing.assert_frame_equal(store.load("BTCUSDT", "1h").frame, btc.frame)
    assert added == len(btc) == 68_868
    assert present == 7 * 100
    assert result.rows == len(btc)
    assert (result.first, result.last) == (
        btc.frame["timestamp"].iloc[0],
        btc.frame["timestamp"].iloc[-1],
    )


def test_older_chunk_appended_after_newer_one_is_merged_in_order(
    store: CandleStore, load_real: LoadReal
) -> None:
    eth = load_real("ETHUSDT", "1h").tail(3000)
    store.append(_chunk(eth, 2000, 3000))
    result = store.append(_chunk(eth, 0, 2100))

    assert (result.added, result.already_present) == (2000, 100)
    pd.testing.assert_frame_equal(store.load("ETHUSDT", "1h").frame, eth.frame)


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 400), min_size=1, max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_any_split_appended_in_any_order_equals_the_whole(
    load_real: LoadReal, cuts: list[int], order: random.Random
) -> None:
    sol = load_real("SOLUSDT", "1h").between(
        pd.Timestamp("2020-08-11", tz="UTC"), pd.Timestamp("2020-08-28", tz="UTC")
    )
    edges = sorted({0, len(sol), *(c % len(sol) for c in cuts)})
    chunks = [_chunk(sol, a, b) for a, b in itertools.pairwise(edges)]
    order.shuffle(chunks)
    with tempfile.TemporaryDirectory() as tmp:
        store = CandleStore(Path(tmp))
        for chunk in chunks:
            store.append(chunk)
        pd.testing.assert_frame_equal(store.load("SOLUSDT", "1h").frame, sol.frame)


def test_reappending_stored_candles_is_a_no_op_that_leaves_the_file_untouched(
    store: CandleStore, load_real: LoadReal
) -> None:
    bnb = load_real("BNBUSDT", "1h").tail(500)
    store.append(bnb)
    path = store.path("BNBUSDT", "1h")
    before = (path.read_bytes(), path.stat().st_mtime_ns)

    result = store.append(_chunk(bnb, 100, 300))

    assert (result.added, result.already_present, result.replaced) == (0, 200, 0)
    assert not result.changed
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_candles_that_differ_from_stored_ones_are_refused_with_timestamps_and_values(
    store: CandleStore, load_real: LoadReal
) -> None:
    btc = load_real("BTCUSDT", "1h").tail(200)
    store.append(btc)
    before = store.path("BTCUSDT", "1h").read_bytes()
    changed = _with_changed_close(btc, [160, 170, 180, 190])

    with pytest.raises(DataConflictError) as caught:
        store.append(_chunk(changed, 150, 200))

    err = caught.value
    first = btc.frame.iloc[160]
    assert err.details["count"] == 4
    assert err.details["conflicts"][0]["timestamp"] == first["timestamp"].isoformat()
    assert err.details["conflicts"][0]["stored"]["close"] == first["close"]
    assert err.details["conflicts"][0]["new"]["close"] == first["close"] + 0.01
    assert first["timestamp"].isoformat() in err.message
    assert "(+1 more)" in err.message
    assert "on_conflict='replace'" in (err.fix or "")
    assert store.path("BTCUSDT", "1h").read_bytes() == before


def test_replace_lets_the_new_candles_win(store: CandleStore, load_real: LoadReal) -> None:
    btc = load_real("BTCUSDT", "1h").tail(200)
    store.append(_chunk(btc, 0, 180))
    changed = _with_changed_close(btc, [160, 170])

    result = store.append(_chunk(changed, 150, 200), on_conflict="replace")

    assert (result.added, result.already_present, result.replaced) == (20, 28, 2)
    pd.testing.assert_frame_equal(store.load("BTCUSDT", "1h").frame, changed.frame)


def test_unknown_conflict_policy_is_refused(store: CandleStore, load_real: LoadReal) -> None:
    with pytest.raises(UsageError, match="on_conflict='merge'"):
        store.append(load_real("BTCUSDT", "1h").tail(3), on_conflict="merge")  # type: ignore[arg-type]


def test_write_replaces_the_whole_series(store: CandleStore, load_real: LoadReal) -> None:
    btc = load_real("BTCUSDT", "1h").tail(300)
    store.append(btc)

    result = store.write(_chunk(btc, 100, 150))

    assert (result.added, result.already_present, result.removed, result.rows) == (0, 50, 250, 50)
    pd.testing.assert_frame_equal(store.load("BTCUSDT", "1h").frame, _chunk(btc, 100, 150).frame)


# -- atomicity ------------------------------------------------------------------------------


class _DiskFull:
    """A writer that dies half-way through the file, as a full disk or a crash would."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.paths: list[Path] = []

    def __call__(self, frame: pd.DataFrame, path: Path) -> None:
        self.paths.append(path)
        write_parquet(frame, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        raise self.error


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_while_writing_leaves_the_old_file_intact_and_no_temp_file(
    home: AlphaOpsHome, load_real: LoadReal, error: BaseException
) -> None:
    btc = load_real("BTCUSDT", "1h").tail(400)
    CandleStore(home.data_dir).append(_chunk(btc, 0, 300))
    path = CandleStore(home.data_dir).path("BTCUSDT", "1h")
    before = path.read_bytes()
    failing = _DiskFull(error)

    with pytest.raises(type(error)):
        CandleStore(home.data_dir, writer=failing).append(btc)

    assert failing.paths[0].parent == path.parent  # temp file in the same folder
    assert failing.paths[0] != path
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [
        "1h.parquet"
    ]
    pd.testing.assert_frame_equal(
        CandleStore(home.data_dir).load("BTCUSDT", "1h").frame, _chunk(btc, 0, 300).frame
    )


# -- reading --------------------------------------------------------------------------------


def test_load_returns_the_half_open_range(store: CandleStore, load_real: LoadReal) -> None:
    store.append(load_real("BTCUSDT", "1h"))

    window = store.load("BTCUSDT", "1h", start="2025-06-30T00:00Z", end="2025-06-30T12:00+00:00")

    assert len(window) == 12
    assert window.frame["timestamp"].iloc[0] == pd.Timestamp("2025-06-30", tz="UTC")


def test_load_with_a_naive_bound_is_refused(store: CandleStore, load_real: LoadReal) -> None:
    store.append(load_real("BTCUSDT", "1h").tail(10))

    with pytest.raises(UsageError, match="no timezone"):
        store.load("BTCUSDT", "1h", start="2025-06-30")


def test_load_of_a_range_outside_the_stored_one_names_what_is_stored(
    store: CandleStore, load_real: LoadReal
) -> None:
    store.append(load_real("BTCUSDT", "1h").tail(10))

    with pytest.raises(InsufficientDataError, match="2025-06-30 14:00:00"):
        store.load("BTCUSDT", "1h", end="2020-01-01T00:00Z")


def test_load_of_a_missing_series_names_what_exists_and_how_to_import(
    store: CandleStore, load_real: LoadReal
) -> None:
    with pytest.raises(NotFoundError, match="it is empty"):
        store.load("BTCUSDT", "1h")
    store.append(load_real("ETHUSDT", "1h").tail(5))
    store.append(load_real("ETHUSDT", "5m").tail(5))

    with pytest.raises(NotFoundError) as caught:
        store.load("btc/usdt", "1h")

    assert "no BTCUSDT 1h candles" in caught.value.message
    assert "it holds ETHUSDT 1h, ETHUSDT 5m" in caught.value.message
    assert "alphaops data import" in (caught.value.fix or "")


def test_list_reports_rows_extent_gaps_and_size_of_every_series(
    store: CandleStore, load_real: LoadReal
) -> None:
    for symbol, timeframe in [("ETHUSDT", "1h"), ("BTCUSDT", "5m"), ("BTCUSDT", "1h")]:
        store.append(load_real(symbol, timeframe))

    entries = store.list()

    assert [(e.symbol, e.timeframe) for e in entries] == [
        ("BTCUSDT", Timeframe("5m")),
        ("BTCUSDT", Timeframe("1h")),
        ("ETHUSDT", Timeframe("1h")),
    ]
    btc = entries[1]
    # Figures from the data README: 68,868 rows, 28 gaps / 128 missing candles.
    assert (btc.rows, btc.gaps, btc.missing_bars) == (68_868, 28, 128)
    assert btc.first == pd.Timestamp("2017-08-17 04:00", tz="UTC")
    assert btc.last == pd.Timestamp("2025-06-30 23:00", tz="UTC")
    assert btc.bytes == btc.path.stat().st_size > 0
    assert (entries[0].rows, entries[0].gaps) == (52_416, 0)
    assert btc.to_dict()["first"] == "2017-08-17T04:00:00+00:00"


def test_list_of_an_absent_store_is_empty(tmp_path: Path) -> None:
    assert CandleStore(tmp_path / "nothing-here").list() == []


def test_check_reports_problems_of_a_damaged_file_without_raising(
    store: CandleStore, load_real: LoadReal
) -> None:
    btc = load_real("BTCUSDT", "1h").tail(100)
    store.append(btc)
    assert store.check("BTCUSDT", "1h").ok
    tampered = pd.concat([btc.frame, btc.frame.tail(1)])
    tampered.to_parquet(store.path("BTCUSDT", "1h"), index=False)

    report = store.check("BTCUSDT", "1h")

    assert not report.ok
    assert [p.check for p in report.problems] == ["duplicate_timestamp"]
    assert report.problems[0].rows == (100,)


def test_unreadable_stored_file_is_named_with_the_fix(
    store: CandleStore, load_real: LoadReal
) -> None:
    store.append(load_real("BTCUSDT", "1h").tail(10))
    path = store.path("BTCUSDT", "1h")
    path.write_bytes(b"garbage")

    with pytest.raises(DataFormatError) as caught:
        store.load("BTCUSDT", "1h")

    assert str(path) in caught.value.message
    assert f"delete {path}" in (caught.value.fix or "")


def test_first_and_last_timestamp_follow_the_stored_series(
    store: CandleStore, load_real: LoadReal
) -> None:
    btc = load_real("BTCUSDT", "1h").tail(48)
    assert store.last_timestamp("BTCUSDT", "1h") is None
    store.append(_chunk(btc, 10, 20))
    store.append(_chunk(btc, 30, 40))

    assert store.first_timestamp("BTCUSDT", "1h") == btc.frame["timestamp"].iloc[10]
    assert store.last_timestamp("BTC/USDT", "1h") == btc.frame["timestamp"].iloc[39]


def test_files_are_laid_out_per_symbol_and_timeframe(
    store: CandleStore, home: AlphaOpsHome
) -> None:
    assert store.path("btc/usdt", "5m") == home.data_dir / "BTCUSDT" / "5m.parquet"
    assert store.path("ETHUSDT", "1h") == home.data_dir / "ETHUSDT" / "1h.parquet"
