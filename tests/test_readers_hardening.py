"""Huge and hostile candle files: read in bounded pieces, refused from their first megabyte.

A file that cannot be candles (no time column, no OHLC columns, text where prices go, times
that are not times, a first line longer than the sniff window, JSON that is not a list of rows)
is refused by looking at its head only. The proof that the rest is never read: every hostile
file here is a ``.gz`` whose compressed stream is cut short after the first megabytes, so
reading it through would fail with a different error ("cannot read … truncated").

Files larger than the sniff window are read in chunks; real candles (BTCUSDT 1h, ~4 MB as CSV
or JSON) must come back exactly as they went in, and a text cell deep in the file is named
by its row. Memory figures are measured in ``benchmarks/bench_ingest.py``, not here.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaops.core.errors import DataFormatError, DataValidationError
from alphaops.data._streaming import SNIFF_BYTES
from alphaops.data.candles import Candles
from alphaops.data.readers import read_candles

LoadReal = Callable[[str, str], Candles]
HEADER = b"timestamp,open,high,low,close,volume\n"


def _garbage(size: int, seed: int = 1) -> bytes:
    text = base64.b64encode(random.Random(seed).randbytes(size)).decode()
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76)).encode() + b"\n"


def _cut_gz(path: Path, head: bytes, tail_mb: int = 4) -> Path:
    """Write ``head`` then ``tail_mb`` MiB more as gzip, and cut the compressed stream short."""
    whole = gzip.compress(head + _garbage(tail_mb * 1024 * 1024, seed=2), compresslevel=1)
    path.write_bytes(whole[: len(whole) * 3 // 4])
    with gzip.open(path) as handle, pytest.raises(EOFError):
        handle.read()  # reading it through really fails
    return path


def _rows(body: str, count: int) -> bytes:
    return ("".join(body.format(i=i) for i in range(count))).encode()


def test_a_csv_without_candle_columns_is_refused_from_its_head(tmp_path: Path) -> None:
    path = _cut_gz(tmp_path / "BTCUSDT-1h.csv.gz", b"when,price\n" + _rows("{i},1.5\n", 200_000))
    with pytest.raises(DataFormatError, match=r"lacks column\(s\) \['timestamp', 'open'"):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")


def test_garbage_lines_are_refused_from_the_head(tmp_path: Path) -> None:
    path = _cut_gz(tmp_path / "BTCUSDT-1h.csv.gz", _garbage(2 * SNIFF_BYTES))
    with pytest.raises(DataFormatError, match="lacks column"):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")


def test_text_where_prices_go_is_refused_from_the_head_naming_rows_and_value(
    tmp_path: Path,
) -> None:
    rows = _rows("{i}000000,open?,2,0.5,1.5,3\n", 100_000)
    path = _cut_gz(tmp_path / "BTCUSDT-1h.csv.gz", HEADER + rows)
    with pytest.raises(DataValidationError, match=r"'open' holds text, e\.g\. 'open\?'") as err:
        read_candles(path, symbol="BTCUSDT", timeframe="1h")
    (problem,) = err.value.details["problems"]
    assert problem["check"] == "not_numeric"
    assert problem["rows"] == (0, 1, 2, 3, 4)
    assert "convert the column to numbers" in problem["fix"]


def test_times_that_are_not_times_are_refused_from_the_head(tmp_path: Path) -> None:
    path = _cut_gz(
        tmp_path / "BTCUSDT-1h.csv.gz", HEADER + _rows("yesterday {i},1,2,0.5,1.5,3\n", 100_000)
    )
    with pytest.raises(DataFormatError, match=r"not ISO 8601 dates.*'yesterday 0'"):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")


def test_a_first_line_longer_than_the_sniff_window_is_refused(tmp_path: Path) -> None:
    path = _cut_gz(tmp_path / "BTCUSDT-1h.csv.gz", b"x" * (SNIFF_BYTES + 10))
    with pytest.raises(DataFormatError, match=f"first line is longer than {SNIFF_BYTES} bytes"):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")


@pytest.mark.parametrize(
    ("head", "says"),
    [
        (b'["' + b"a" * 100 + b'", ' * 40_000, "holds no candle row at character 1"),
        (b'{"open": [' + b"1.5, " * 400_000, r"does not hold a JSON list \(starts '\{"),
        (b"[[1, 2], " * 200_000, r"shape list of lists of 2 values \(a candle row has 6\)"),
    ],
)
def test_json_that_is_not_a_list_of_candle_rows_is_refused_from_its_head(
    tmp_path: Path, head: bytes, says: str
) -> None:
    path = _cut_gz(tmp_path / "BTCUSDT-1h.json.gz", head)
    with pytest.raises(DataFormatError, match=says):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")


@pytest.fixture(scope="module")
def btc(load_real: LoadReal) -> Candles:
    return load_real("BTCUSDT", "1h")


def _epoch_ms(frame: pd.DataFrame) -> np.ndarray:  # type: ignore[type-arg]
    return frame["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)


def _same(read: Candles, real: Candles) -> None:
    assert len(read) == len(real)
    pd.testing.assert_frame_equal(read.frame, real.frame)
    assert read.fingerprint == real.fingerprint


def test_a_csv_larger_than_the_sniff_window_is_read_in_chunks_exactly(
    btc: Candles, tmp_path: Path
) -> None:
    path = tmp_path / "BTCUSDT-1h.csv"
    btc.frame.assign(open_time=_epoch_ms(btc.frame)).drop(columns="timestamp")[
        ["open_time", "open", "high", "low", "close", "volume"]
    ].to_csv(path, index=False)
    assert path.stat().st_size > 3 * SNIFF_BYTES
    _same(read_candles(path, symbol="BTCUSDT", timeframe="1h"), btc)


def test_a_headerless_binance_dump_larger_than_the_sniff_window_is_read(
    btc: Candles, tmp_path: Path
) -> None:
    path = tmp_path / "BTCUSDT-1h.csv"
    out = btc.frame.assign(timestamp=_epoch_ms(btc.frame))
    out["close_time"] = out["timestamp"] + 3_599_999
    out.to_csv(path, index=False, header=False)
    assert path.stat().st_size > 3 * SNIFF_BYTES
    _same(read_candles(path, symbol="BTCUSDT", timeframe="1h"), btc)


@pytest.mark.parametrize("kind", ["freqtrade rows", "records", "records.gz"])
def test_json_larger_than_the_sniff_window_is_read_in_batches_exactly(
    btc: Candles, tmp_path: Path, kind: str
) -> None:
    if kind == "freqtrade rows":
        rows = btc.frame.assign(timestamp=_epoch_ms(btc.frame)).to_numpy(dtype=object).tolist()
        text = json.dumps([[int(r[0]), *r[1:]] for r in rows])
    else:
        records = btc.frame.assign(timestamp=btc.frame["timestamp"].map(lambda t: t.isoformat()))
        text = json.dumps(records.to_dict(orient="records"), indent=1)
    path = tmp_path / ("BTC_USDT-1h.json.gz" if kind.endswith(".gz") else "BTC_USDT-1h.json")
    path.write_bytes(gzip.compress(text.encode()) if kind.endswith(".gz") else text.encode())
    assert len(text) > 3 * SNIFF_BYTES
    _same(read_candles(path, symbol="BTCUSDT", timeframe="1h"), btc)


def test_a_text_cell_deep_in_a_large_csv_stops_the_read_naming_its_row(
    btc: Candles, tmp_path: Path
) -> None:
    frame = btc.frame.assign(timestamp=_epoch_ms(btc.frame)).astype({"close": object})
    frame.loc[60_000, "close"] = "oops"
    path = tmp_path / "BTCUSDT-1h.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(
        DataValidationError, match=r"'close' holds text, e\.g\. 'oops' at rows 60000"
    ):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")


def test_a_json_list_cut_short_is_refused_as_ending_inside_the_list(
    btc: Candles, tmp_path: Path
) -> None:
    rows = btc.frame.assign(timestamp=_epoch_ms(btc.frame)).to_numpy(dtype=object).tolist()
    text = json.dumps([[int(r[0]), *r[1:]] for r in rows])
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_text(text[: len(text) - 100])
    with pytest.raises(DataFormatError, match="ends inside the list"):
        read_candles(path, symbol="BTCUSDT", timeframe="1h")
