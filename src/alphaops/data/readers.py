"""Read candle files (Parquet, CSV, freqtrade feather and JSON) into validated :class:`Candles`.

A reader only *maps* a file onto the canonical columns — timestamp column names, epoch units,
ISO strings with offsets — and then hands the frame to :meth:`Candles.from_frame`, the single
validation path. It never sorts, deduplicates or fills anything: a bad file is refused with the
problems, the rows and the fix, prefixed by the file name.

>>> import tempfile
>>> from pathlib import Path
>>> tmp = tempfile.TemporaryDirectory()
>>> path = Path(tmp.name) / "BTC_USDT-1h.csv"
>>> _ = path.write_text(
...     "open_time,open,high,low,close,volume\\n"
...     "1735689600000,93548.8,94950.0,93500.0,94591.8,1200.5\\n"
...     "1735693200000,94591.8,94700.0,94300.0,94500.1,800.25\\n")
>>> symbol, timeframe = infer_symbol_timeframe(path)
>>> candles = read_candles(path, symbol=symbol, timeframe=timeframe)
>>> candles.symbol, str(candles.timeframe), len(candles)
('BTCUSDT', '1h', 2)
>>> str(candles.frame["timestamp"].iloc[0])
'2025-01-01 00:00:00+00:00'
>>> tmp.cleanup()
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd

from alphaops.core.errors import (
    DataFormatError,
    DataValidationError,
    NotFoundError,
    UsageError,
)
from alphaops.core.names import normalize_symbol
from alphaops.core.timeframes import Timeframe
from alphaops.data._columns import TIMESTAMP_ALIASES, ChunkedColumns, is_number, source_names
from alphaops.data._streaming import (
    JSON_FIX,
    SNIFF_BYTES,
    content_size,
    iter_json_batches,
    sniff_head,
)
from alphaops.data.candles import OHLCV, Candles

__all__ = [
    "TIMESTAMP_ALIASES",
    "CandleFormat",
    "infer_format",
    "infer_symbol_timeframe",
    "read_candles",
]

CandleFormat = Literal["parquet", "csv", "feather", "json"]

_SUFFIXES: dict[str, CandleFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".feather": "feather",
    ".arrow": "feather",
    ".json": "json",
}
# Naming used by Binance/alphaops (BTCUSDT-1h) and freqtrade (BTC_USDT-1h).
_NAME = re.compile(r"(?P<symbol>[A-Za-z0-9]+(?:_[A-Za-z0-9]+)?)-(?P<timeframe>[0-9]+[smhdw])")
_FORMAT_FIX = "pass format='parquet', 'csv', 'feather' or 'json', or convert the file to Parquet"
# Rows of a large CSV parsed at a time (about 10 MB of parser memory for candle rows).
CSV_CHUNK_ROWS = 100_000


def infer_format(path: str | Path) -> CandleFormat:
    """Return the candle format of ``path`` from its suffix (``.csv.gz`` and ``.json.gz`` too).

    >>> infer_format("BTC_USDT-1h.feather"), infer_format("btc.json.gz")
    ('feather', 'json')
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DataFormatError(
            f"cannot tell the candle format of {path}: suffix {''.join(Path(path).suffixes)!r} "
            f"is not one of {sorted(_SUFFIXES)} (optionally + .gz)",
            fix=_FORMAT_FIX,
            path=str(path),
        )
    return fmt


def infer_symbol_timeframe(path: str | Path) -> tuple[str, Timeframe]:
    """Return the canonical symbol and timeframe encoded in a file name.

    Understands ``BTCUSDT-1h.parquet`` (alphaops, Binance) and ``BTC_USDT-1h.feather``
    (freqtrade spot).

    >>> infer_symbol_timeframe("data/BTC_USDT-5m.feather")
    ('BTCUSDT', Timeframe(value='5m'))
    """
    name = Path(path).name
    stem = name.split(".", 1)[0]
    match = _NAME.fullmatch(stem)
    if match is None:
        raise UsageError(
            f"cannot infer symbol and timeframe from the file name {name!r}",
            fix="name the file like 'BTCUSDT-1h.parquet' or 'BTC_USDT-1h.feather', "
            "or give the symbol and timeframe explicitly",
            path=str(path),
        )
    symbol = normalize_symbol(match.group("symbol").replace("_", ""))
    return symbol, Timeframe.parse(match.group("timeframe"))


def read_candles(
    path: str | Path,
    *,
    symbol: str,
    timeframe: str | Timeframe,
    format: CandleFormat | None = None,
    assume_utc: bool = False,
) -> Candles:
    """Read a candle file and return validated :class:`Candles`.

    ``format`` defaults to the one implied by the suffix (see :func:`infer_format`). The open
    time may be called ``timestamp``, ``date``, ``time``, ``open_time`` or ``datetime`` (any
    case), or be the frame's index. Epoch numbers become UTC (unit s/ms/us/ns picked by
    magnitude); strings and datetimes with an offset are converted to UTC. Timestamps without a
    timezone are refused by validation (``timezone_naive``) unless ``assume_utc=True`` says
    they are UTC. Extra columns are ignored.

    Raise :class:`NotFoundError` for a missing file, :class:`DataFormatError` when the file
    cannot be read or lacks columns, and :class:`DataValidationError` listing every problem.
    """
    file = Path(path)
    if not file.is_file():
        raise NotFoundError(
            f"candle file {file} does not exist",
            fix="check the path (relative paths start from the current folder)",
            path=str(file),
        )
    fmt = infer_format(file) if format is None else _check_format(format, file)
    frame = _read_raw(file, fmt, assume_utc=assume_utc)
    try:
        return Candles.from_frame(frame, symbol=symbol, timeframe=timeframe)
    except DataValidationError as exc:
        fix = exc.fix or ""
        if any(p.get("check") == "timezone_naive" for p in exc.details.get("problems", [])):
            fix += "; if the file's times are UTC, read it with assume_utc=True"
        raise DataValidationError(
            f"{file}: {exc.message}", fix=fix, path=str(file), **exc.details
        ) from exc


def _check_format(fmt: str, file: Path) -> CandleFormat:
    if fmt in get_args(CandleFormat):
        return cast(CandleFormat, fmt)
    raise DataFormatError(
        f"unknown candle format {fmt!r} for {file}", fix=_FORMAT_FIX, path=str(file)
    )


def _read_raw(file: Path, fmt: CandleFormat, *, assume_utc: bool) -> pd.DataFrame:
    """Return the canonical frame (OHLCV columns, timestamps converted) of ``file``."""
    try:
        if fmt in ("parquet", "feather"):
            raw = pd.read_parquet(file) if fmt == "parquet" else pd.read_feather(file)
            return ChunkedColumns(file, assume_utc=assume_utc).frame_of([raw])
        if fmt == "csv":
            return _read_csv(file, assume_utc=assume_utc)
        return _read_json(file, assume_utc=assume_utc)
    except (DataFormatError, DataValidationError):
        raise
    except Exception as exc:  # every parser has its own error types; all mean "unreadable"
        raise DataFormatError(
            f"cannot read {file} as {fmt}: {type(exc).__name__}: {exc}",
            fix=f"check that the file really is {fmt} and not truncated; {_FORMAT_FIX}",
            path=str(file),
        ) from exc


def _read_csv(file: Path, *, assume_utc: bool) -> pd.DataFrame:
    # The first MiB decides whether this can be candles at all (header, columns, numbers,
    # times); only then is the rest read, in chunks of CSV_CHUNK_ROWS rows.
    head, whole = sniff_head(file)
    if not head.strip():
        raise DataFormatError(
            f"cannot read {file} as csv: the file is empty", fix=_FORMAT_FIX, path=str(file)
        )
    lines = head if whole else head[: head.rfind(b"\n") + 1]
    if not lines:
        raise DataFormatError(
            f"{file}: its first line is longer than {SNIFF_BYTES} bytes, so it is not a candle "
            f"CSV (it starts {head[:40]!r})",
            fix=_FORMAT_FIX,
            path=str(file),
        )
    try:
        text = lines.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{file} is not UTF-8 text (byte {exc.start} of its first lines): not a candle CSV",
            fix=_FORMAT_FIX,
            path=str(file),
        ) from exc
    sample = pd.read_csv(io.StringIO(text))
    header: int | None = 0
    if len(sample.columns) >= 6 and all(is_number(c) for c in sample.columns[:6]):
        # No header: Binance kline dumps start open_time, open, high, low, close, volume.
        header = None
        sample = pd.read_csv(io.StringIO(text), header=None)
    rename = None if header == 0 else dict(enumerate(OHLCV))
    # Rows expected from the head's bytes per row (an overestimate costs address space only).
    per_row = max(1, len(lines) // max(1, len(sample)))
    expected = 0 if whole else int(content_size(file) / per_row * 1.1) + CSV_CHUNK_ROWS
    columns = ChunkedColumns(file, assume_utc=assume_utc, rename=rename, expected_rows=expected)
    if whole:
        return columns.frame_of([sample])
    columns.add(sample)  # refuses missing columns, text prices and bad times before the rest
    columns.restart()
    usecols = source_names(sample) if header == 0 else list(range(len(OHLCV)))
    with pd.read_csv(
        file, header=header, usecols=usecols, chunksize=CSV_CHUNK_ROWS, low_memory=False
    ) as chunks:
        return columns.frame_of(chunks)


def _read_json(file: Path, *, assume_utc: bool) -> pd.DataFrame:
    head, whole = sniff_head(file)
    if whole:  # small: parse it at once (the same shapes are accepted below, in batches)
        return ChunkedColumns(file, assume_utc=assume_utc).frame_of([_json_frame(file, head)])
    # A candle row of JSON takes at least ~25 bytes: rows expected from the file size.
    expected = content_size(file) // 25
    columns = ChunkedColumns(file, assume_utc=assume_utc, expected_rows=expected)
    return columns.frame_of(
        _json_batch_frame(file, batch, first=i == 0)
        for i, batch in enumerate(iter_json_batches(file))
    )


def _json_frame(file: Path, raw: bytes) -> pd.DataFrame:
    data = json.loads(raw.decode("utf-8"))
    if isinstance(data, list):
        return _json_batch_frame(file, data, first=True)
    raise DataFormatError(
        f"{file} holds JSON of shape {type(data).__name__}, not candles",
        fix=JSON_FIX,
        path=str(file),
    )


def _freqtrade_rows(data: list[list[Any]]) -> pd.DataFrame:
    try:  # all numbers, 6 per row: one C-speed conversion (most files)
        table = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        table = None
    if table is None or table.ndim != 2 or table.shape[1] < len(OHLCV):
        return pd.DataFrame([r[:6] for r in data], columns=list(OHLCV))
    stamps = table[:, 0]
    # Epoch milliseconds are integers: keep them int64 (float nanoseconds would round).
    if np.all(np.isfinite(stamps)) and np.all(stamps == np.round(stamps)):
        first: Any = stamps.astype(np.int64)
    else:
        first = pd.Series([r[0] for r in data])
    columns = {"timestamp": first} | {c: table[:, i + 1] for i, c in enumerate(OHLCV[1:])}
    return pd.DataFrame(columns, copy=False)


def _json_batch_frame(file: Path, data: list[Any], *, first: bool) -> pd.DataFrame:
    if all(isinstance(r, list) and len(r) >= 6 for r in data):
        # freqtrade: [[ms, open, high, low, close, volume], ...]
        return _freqtrade_rows(data)
    if all(isinstance(r, dict) for r in data):
        return pd.DataFrame(data)
    odd = next(r for r in data if not (isinstance(r, list) and len(r) >= 6))
    shape = f"list of {type(odd).__name__}" if first else "list with a row of another kind"
    if isinstance(odd, list):
        shape += f"s of {len(odd)} values (a candle row has 6)"
    raise DataFormatError(
        f"{file} holds JSON of shape {shape}, not candles",
        fix=JSON_FIX,
        path=str(file),
    )
