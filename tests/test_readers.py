"""Readers: every supported format round-trips real candles; every bad file is refused clearly."""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import alphaops.data as data_pkg
from alphaops.core.errors import DataFormatError, DataValidationError, NotFoundError, UsageError
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import Candles
from alphaops.data.readers import infer_format, infer_symbol_timeframe, read_candles

LoadReal = Callable[[str, str], Candles]


@pytest.fixture(scope="module")
def btc(load_real: LoadReal) -> Candles:
    """Real BTCUSDT 1h candles across the 2018-01-01 source join and the 34 h outage of Feb 2018."""
    return load_real("BTCUSDT", "1h").between(
        pd.Timestamp("2017-12-01", tz="UTC"), pd.Timestamp("2018-04-01", tz="UTC")
    )


def _epoch_ms(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.int64]]:
    return frame["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _write_freqtrade_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.rename(columns={"timestamp": "date"}).to_parquet(path, index=False)


def _write_parquet_with_index(frame: pd.DataFrame, path: Path) -> None:
    frame.set_index("timestamp").rename_axis("date").to_parquet(path)


def _write_freqtrade_feather(frame: pd.DataFrame, path: Path) -> None:
    frame.rename(columns={"timestamp": "date"}).to_feather(path)


def _write_freqtrade_json(frame: pd.DataFrame, path: Path) -> None:
    rows = frame.assign(timestamp=_epoch_ms(frame)).to_numpy(dtype=object).tolist()
    path.write_text(json.dumps([[int(r[0]), *r[1:]] for r in rows]))


def _write_freqtrade_json_gz(frame: pd.DataFrame, path: Path) -> None:
    rows = frame.assign(timestamp=_epoch_ms(frame)).to_numpy(dtype=object).tolist()
    with gzip.open(path, "wt") as handle:
        json.dump([[int(r[0]), *r[1:]] for r in rows], handle)


def _write_json_records(frame: pd.DataFrame, path: Path) -> None:
    records = frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat()))
    path.write_text(json.dumps(records.to_dict(orient="records")))


def _write_csv_iso_utc(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)  # "2017-12-01 00:00:00+00:00"


def _write_csv_iso_other_offset(frame: pd.DataFrame, path: Path) -> None:
    local = frame["timestamp"].dt.tz_convert("Asia/Tokyo").map(lambda t: t.isoformat())
    frame.assign(timestamp=local).rename(columns={"timestamp": "Datetime"}).to_csv(
        path, index=False
    )


def _write_csv_epoch_ms(frame: pd.DataFrame, path: Path) -> None:
    frame.assign(timestamp=_epoch_ms(frame)).rename(columns={"timestamp": "open_time"}).to_csv(
        path, index=False
    )


def _write_csv_epoch_seconds(frame: pd.DataFrame, path: Path) -> None:
    seconds = _epoch_ms(frame) // 1000
    frame.assign(timestamp=seconds).rename(columns={"timestamp": "Time"}).to_csv(path, index=False)


def _write_csv_gz(frame: pd.DataFrame, path: Path) -> None:
    frame.rename(columns={"timestamp": "date"}).to_csv(path, index=False, compression="gzip")


def _write_binance_klines_us(frame: pd.DataFrame, path: Path) -> None:
    # data.binance.vision spot klines: no header, 12 columns, microseconds since 2025.
    out = frame.assign(timestamp=_epoch_ms(frame) * 1000)
    out["close_time"] = out["timestamp"] + 3_600_000_000 - 1
    for extra in ("quote_volume", "trades", "taker_base", "taker_quote", "ignore"):
        out[extra] = 0
    out.to_csv(path, index=False, header=False)


WRITERS: dict[str, tuple[str, Callable[[pd.DataFrame, Path], None]]] = {
    "parquet": ("BTCUSDT-1h.parquet", _write_parquet),
    "parquet with freqtrade's date column": ("BTC_USDT-1h.parquet", _write_freqtrade_parquet),
    "parquet with a datetime index": ("BTCUSDT-1h.parquet", _write_parquet_with_index),
    "freqtrade feather": ("BTC_USDT-1h.feather", _write_freqtrade_feather),
    "freqtrade json": ("BTC_USDT-1h.json", _write_freqtrade_json),
    "freqtrade json.gz": ("BTC_USDT-1h.json.gz", _write_freqtrade_json_gz),
    "json records with iso times": ("BTCUSDT-1h.json", _write_json_records),
    "csv with iso utc times": ("BTCUSDT-1h.csv", _write_csv_iso_utc),
    "csv with iso +09:00 times": ("BTCUSDT-1h.csv", _write_csv_iso_other_offset),
    "csv with epoch ms open_time": ("BTCUSDT-1h.csv", _write_csv_epoch_ms),
    "csv with epoch seconds": ("BTCUSDT-1h.csv", _write_csv_epoch_seconds),
    "csv.gz": ("BTCUSDT-1h.csv.gz", _write_csv_gz),
    "binance kline csv in microseconds": ("BTCUSDT-1h.csv", _write_binance_klines_us),
}


@pytest.mark.parametrize("layout", list(WRITERS))
def test_real_candles_round_trip_through_every_format(
    layout: str, btc: Candles, tmp_path: Path
) -> None:
    name, write = WRITERS[layout]
    path = tmp_path / name
    write(btc.frame, path)

    symbol, timeframe = infer_symbol_timeframe(path)
    result = read_candles(path, symbol=symbol, timeframe=timeframe)

    assert (result.symbol, result.timeframe) == ("BTCUSDT", Timeframe("1h"))
    pd.testing.assert_frame_equal(result.frame, btc.frame)
    assert result.gaps.largest is not None
    assert result.gaps.largest.missing_bars == 33  # the 2018-02-08 maintenance, kept as a gap


def test_format_given_explicitly_overrides_the_suffix(btc: Candles, tmp_path: Path) -> None:
    path = tmp_path / "candles.dat"
    btc.frame.to_parquet(path, index=False)

    result = read_candles(path, symbol="BTCUSDT", timeframe="1h", format="parquet")

    pd.testing.assert_frame_equal(result.frame, btc.frame)


def test_naive_times_are_read_as_utc_only_when_asked(btc: Candles, tmp_path: Path) -> None:
    path = tmp_path / "naive.csv"
    btc.frame.assign(timestamp=btc.frame["timestamp"].dt.tz_localize(None)).to_csv(
        path, index=False
    )

    result = read_candles(path, symbol="BTCUSDT", timeframe="1h", assume_utc=True)

    pd.testing.assert_frame_equal(result.frame, btc.frame)


def test_naive_datetimes_in_parquet_are_read_as_utc_only_when_asked(
    btc: Candles, tmp_path: Path
) -> None:
    path = tmp_path / "naive.parquet"
    btc.frame.assign(timestamp=btc.frame["timestamp"].dt.tz_localize(None)).to_parquet(path)

    with pytest.raises(DataValidationError, match="timezone_naive"):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")
    result = read_candles(path, symbol="BTCUSDT", timeframe="1h", assume_utc=True)

    pd.testing.assert_frame_equal(result.frame, btc.frame)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z"),
        ("2025-01-01 00:00:00+0000", "2025-01-01 01:00:00+0000"),
        ("2025-01-01 00:00:00 UTC", "2025-01-01 01:00:00 UTC"),
        ("2025-01-01T01:00+01:00", "2025-01-01T02:00+01:00"),
    ],
)
def test_time_strings_with_any_common_utc_notation_become_utc(
    first: str, second: str, tmp_path: Path
) -> None:
    path = tmp_path / "excel-export.csv"
    rows = f"{first},1,2,0.5,1.5,3\n{second},1,2,0.5,1.5,3\n"
    path.write_text("\ufeffDate,Open,High,Low,Close,Volume\n" + rows, encoding="utf-8")

    result = read_candles(path, symbol="BTCUSDT", timeframe="1h")

    assert list(result.frame["timestamp"]) == list(
        pd.date_range("2025-01-01", periods=2, freq="1h", tz="UTC")
    )


# -- every validation problem, end to end through a file ------------------------------------


def _csv(frame: pd.DataFrame, tmp_path: Path, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _problems(exc: DataValidationError) -> dict[str, dict[str, Any]]:
    return {p["check"]: p for p in exc.details["problems"]}


def _swap_rows(frame: pd.DataFrame) -> pd.DataFrame:
    order = list(range(len(frame)))
    order[10], order[11] = 11, 10
    return frame.iloc[order]


def _duplicate_row(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame.iloc[:21], frame.iloc[20:]])


def _nan_close(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(close=frame["close"].where(frame.index != 5))


def _inf_volume(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(volume=np.where(frame.index == 7, np.inf, frame["volume"]))


def _zero_low(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(low=np.where(frame.index == 3, 0.0, frame["low"]))


def _high_below_close(frame: pd.DataFrame) -> pd.DataFrame:
    high = np.where(frame.index == 4, frame["close"] - 1.0, frame["high"])
    return frame.assign(high=high)


BROKEN: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str, tuple[int, ...], str]] = {
    "unsorted": (_swap_rows, "unsorted", (11,), "sort"),
    "duplicated": (_duplicate_row, "duplicate_timestamp", (21,), "one candle per timestamp"),
    "nan": (_nan_close, "not_finite", (5,), "drop or re-download"),
    "inf": (_inf_volume, "not_finite", (7,), "drop or re-download"),
    "non-positive": (_zero_low, "non_positive_price", (3,), "price scale"),
    "high below close": (_high_below_close, "high_low_inconsistent", (4,), "column order"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file_is_refused_naming_problem_rows_and_fix(
    case: str, btc: Candles, tmp_path: Path
) -> None:
    breaker, check, rows, fix = BROKEN[case]
    path = _csv(breaker(btc.frame.head(50).reset_index(drop=True)), tmp_path)

    with pytest.raises(DataValidationError) as caught:
        read_candles(path, symbol="BTCUSDT", timeframe="1h")

    problem = _problems(caught.value)[check]
    assert problem["rows"] == rows
    assert fix in problem["fix"]
    assert str(path) in caught.value.message
    assert check in str(caught.value)
    assert caught.value.fix


def test_naive_times_are_refused_with_the_assume_utc_fix(btc: Candles, tmp_path: Path) -> None:
    naive = btc.frame.head(10).assign(
        timestamp=btc.frame["timestamp"].head(10).dt.tz_localize(None)
    )
    path = _csv(naive, tmp_path)

    with pytest.raises(DataValidationError) as caught:
        read_candles(path, symbol="BTCUSDT", timeframe="1h")

    assert "timezone_naive" in _problems(caught.value)
    assert "assume_utc=True" in (caught.value.fix or "")


def test_5m_candles_declared_as_1h_are_a_timeframe_mismatch(
    load_real: LoadReal, tmp_path: Path
) -> None:
    five_minutes = load_real("BTCUSDT", "5m").frame.head(48)
    path = _csv(five_minutes, tmp_path, "BTCUSDT-1h.csv")

    with pytest.raises(DataValidationError) as caught:
        read_candles(path, symbol="BTCUSDT", timeframe="1h")

    problem = _problems(caught.value)["timeframe_mismatch"]
    assert problem["count"] > 0
    assert problem["rows"][0] == 1
    assert "timeframe" in problem["fix"]


def test_header_only_file_is_refused_as_empty(btc: Candles, tmp_path: Path) -> None:
    path = _csv(btc.frame.head(0), tmp_path)

    with pytest.raises(DataValidationError) as caught:
        read_candles(path, symbol="BTCUSDT", timeframe="1h")

    assert "empty" in _problems(caught.value)


def test_missing_columns_are_named_with_what_was_found(btc: Candles, tmp_path: Path) -> None:
    path = _csv(btc.frame.drop(columns=["volume"]).rename(columns={"close": "Last"}), tmp_path)

    with pytest.raises(DataFormatError) as caught:
        read_candles(path, symbol="BTCUSDT", timeframe="1h")

    message = str(caught.value)
    assert str(path) in message
    assert "['close', 'volume']" in message
    assert "'Last'" in message
    assert caught.value.fix is not None
    assert "rename the columns" in caught.value.fix


def test_times_with_and_without_offsets_in_one_file_are_refused(
    btc: Candles, tmp_path: Path
) -> None:
    stamps = [t.isoformat() for t in btc.frame["timestamp"].head(4)]
    stamps[2] = stamps[2].replace("+00:00", "")
    path = _csv(btc.frame.head(4).assign(timestamp=stamps), tmp_path)

    with pytest.raises(DataFormatError, match=r"row 2"):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")


def test_unparseable_times_are_refused_with_the_first_value(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("date,open,high,low,close,volume\n01.01.2017 22:00,1,2,0.5,1.5,3\n")

    with pytest.raises(DataFormatError, match=r"01\.01\.2017 22:00"):
        read_candles(path, symbol="EURUSD", timeframe="1h")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("candles.xlsx", b"PK\x03\x04", "suffix '.xlsx'"),
        ("BTCUSDT-1h.parquet", b"not parquet at all", "cannot read"),
        ("BTCUSDT-1h.feather", b"", "cannot read"),
        ("BTCUSDT-1h.csv", b"", "cannot read"),
        ("BTCUSDT-1h.json", b"{not json", "cannot read"),
        ("BTCUSDT-1h.json", b'{"open": [1.0]}', "JSON of shape dict"),
    ],
)
def test_unreadable_files_raise_a_format_error_naming_the_file(
    name: str, content: bytes, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(DataFormatError) as caught:
        read_candles(path, symbol="BTCUSDT", timeframe="1h")

    assert str(path) in str(caught.value)
    assert expected in str(caught.value)
    assert caught.value.fix


def test_unknown_explicit_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("timestamp,open,high,low,close,volume\n")

    with pytest.raises(DataFormatError, match="unknown candle format 'xlsx'"):
        read_candles(path, symbol="BTCUSDT", timeframe="1h", format="xlsx")  # type: ignore[arg-type]


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        read_candles(tmp_path / "nope.parquet", symbol="BTCUSDT", timeframe="1h")


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "symbol", "timeframe"),
    [
        ("BTCUSDT-1h.parquet", "BTCUSDT", "1h"),
        ("BTC_USDT-1h.feather", "BTCUSDT", "1h"),
        ("/data/binance/eth_usdt-5m.json.gz", "ETHUSDT", "5m"),
        ("SPX-1d.csv", "SPX", "1d"),
        ("BTCUSDT-1w.parquet", "BTCUSDT", "1w"),
    ],
)
def test_symbol_and_timeframe_are_inferred_from_file_names(
    name: str, symbol: str, timeframe: str
) -> None:
    assert infer_symbol_timeframe(name) == (symbol, Timeframe(timeframe))


@pytest.mark.parametrize("name", ["candles.parquet", "BTCUSDT_1h.parquet", "BTCUSDT-1M.csv"])
def test_names_without_symbol_and_timeframe_ask_for_them(name: str) -> None:
    with pytest.raises(UsageError, match="give the symbol and timeframe explicitly"):
        infer_symbol_timeframe(name)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.parquet", "parquet"), ("a.CSV", "csv"), ("a.csv.gz", "csv"), ("a.feather", "feather")],
)
def test_format_is_inferred_from_the_suffix(name: str, fmt: str) -> None:
    assert infer_format(name) == fmt


# -- the package surface --------------------------------------------------------------------


def test_data_package_exports_exactly_its_public_names() -> None:
    public = {
        name
        for name, value in vars(data_pkg).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(data_pkg.__all__) == public
    for name in ("candles", "readers", "store", "download", "resampling", "splits", "sample"):
        module = importlib.import_module(f"alphaops.data.{name}")
        assert set(module.__all__) <= set(data_pkg.__all__), name
