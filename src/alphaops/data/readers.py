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

import gzip
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
from alphaops.data.candles import OHLCV, Candles

__all__ = [
    "TIMESTAMP_ALIASES",
    "CandleFormat",
    "infer_format",
    "infer_symbol_timeframe",
    "read_candles",
]

CandleFormat = Literal["parquet", "csv", "feather", "json"]
# Column names accepted for the candle open time, in order of preference (after lower-casing).
TIMESTAMP_ALIASES = ("timestamp", "date", "time", "open_time", "datetime")

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
# An explicit UTC offset or zone at the end of a timestamp string.
_HAS_OFFSET = re.compile(r"(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
# Largest absolute epoch value per unit for dates before ~5138 AD; picks the unit by magnitude.
_EPOCH_UNITS: tuple[tuple[float, Literal["s", "ms", "us"]], ...] = (
    (1e11, "s"),
    (1e14, "ms"),
    (1e17, "us"),
)
_FORMAT_FIX = "pass format='parquet', 'csv', 'feather' or 'json', or convert the file to Parquet"


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
    raw = _read_raw(file, fmt)
    frame = _to_canonical_columns(raw, file)
    frame["timestamp"] = _to_datetime(frame["timestamp"], file, assume_utc=assume_utc)
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


def _read_raw(file: Path, fmt: CandleFormat) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            return pd.read_parquet(file)
        if fmt == "feather":
            return pd.read_feather(file)
        if fmt == "csv":
            return _read_csv(file)
        return _read_json(file)
    except DataFormatError:
        raise
    except Exception as exc:  # every parser has its own error types; all mean "unreadable"
        raise DataFormatError(
            f"cannot read {file} as {fmt}: {type(exc).__name__}: {exc}",
            fix=f"check that the file really is {fmt} and not truncated; {_FORMAT_FIX}",
            path=str(file),
        ) from exc


def _read_csv(file: Path) -> pd.DataFrame:
    frame = pd.read_csv(file)
    if len(frame.columns) >= 6 and all(_is_number(c) for c in frame.columns[:6]):
        # No header: Binance kline dumps start open_time, open, high, low, close, volume.
        frame = pd.read_csv(file, header=None)
        frame = frame.rename(columns=dict(enumerate(OHLCV)))
    return frame


def _read_json(file: Path) -> pd.DataFrame:
    opener = gzip.open if file.suffix.lower() == ".gz" else open
    with opener(file, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    if isinstance(data, list) and all(isinstance(r, list) and len(r) >= 6 for r in data):
        # freqtrade: [[ms, open, high, low, close, volume], ...]
        return pd.DataFrame([r[:6] for r in data], columns=list(OHLCV))
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame(data)
    shape = (
        type(data).__name__
        if not isinstance(data, list) or not data
        else f"list of {type(data[0]).__name__}"
    )
    raise DataFormatError(
        f"{file} holds JSON of shape {shape}, not candles",
        fix="write a list of [ms, open, high, low, close, volume] rows (freqtrade) or a list "
        "of objects with timestamp, open, high, low, close, volume",
        path=str(file),
    )


def _is_number(value: object) -> bool:
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _to_canonical_columns(raw: pd.DataFrame, file: Path) -> pd.DataFrame:
    frame = raw.rename(columns=lambda c: str(c).strip().lstrip("\ufeff").lower())
    if not any(alias in frame.columns for alias in TIMESTAMP_ALIASES):
        index_name = str(frame.index.name or "").lower()
        if isinstance(frame.index, pd.DatetimeIndex) or index_name in TIMESTAMP_ALIASES:
            frame = frame.reset_index(names="timestamp")
    alias = next((a for a in TIMESTAMP_ALIASES if a in frame.columns), None)
    if alias is not None and alias != "timestamp":
        frame = frame.rename(columns={alias: "timestamp"})
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{file} lacks column(s) {missing}; found {[str(c) for c in raw.columns]}",
            fix="rename the columns to timestamp (or date/time/open_time/datetime), open, "
            "high, low, close, volume",
            path=str(file),
            missing=missing,
            found=[str(c) for c in raw.columns],
        )
    if frame.columns.duplicated().any():
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise DataFormatError(
            f"{file} has several columns named {duplicated} (names compared case-insensitively)",
            fix="keep one column per name",
            path=str(file),
        )
    return frame.loc[:, list(OHLCV)].copy()


def _to_datetime(ts: pd.Series[Any], file: Path, *, assume_utc: bool) -> pd.Series[Any]:
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        converted: pd.Series[Any] = ts.dt.tz_convert("UTC")
        return converted
    if pd.api.types.is_datetime64_dtype(ts.dtype):
        return ts.dt.tz_localize("UTC") if assume_utc else ts
    if pd.api.types.is_bool_dtype(ts.dtype):
        return ts  # validation reports the wrong type
    if pd.api.types.is_numeric_dtype(ts.dtype):
        return _from_epoch(ts)
    if pd.api.types.is_object_dtype(ts.dtype) or pd.api.types.is_string_dtype(ts.dtype):
        return _from_strings(ts, file, assume_utc=assume_utc)
    return ts


def _from_epoch(ts: pd.Series[Any]) -> pd.Series[Any]:
    values = ts.to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    biggest = float(np.abs(finite).max()) if finite.size else 0.0
    unit: Literal["s", "ms", "us", "ns"] = next(
        (u for limit, u in _EPOCH_UNITS if biggest < limit), "ns"
    )
    return pd.to_datetime(ts, unit=unit, utc=True)


def _from_strings(ts: pd.Series[Any], file: Path, *, assume_utc: bool) -> pd.Series[Any]:
    if len(ts) == 0:
        return pd.Series(pd.DatetimeIndex([], tz="UTC"), index=ts.index)
    text = ts.astype("string").str.strip()
    if text.str.fullmatch(r"-?\d+(\.\d+)?").fillna(False).all():
        return _from_epoch(pd.to_numeric(text))
    with_offset = text.str.contains(_HAS_OFFSET).fillna(False)
    aware = int(with_offset.sum())
    if 0 < aware < int(text.notna().sum()):
        first_naive = int(np.flatnonzero(~with_offset.to_numpy(dtype=bool))[0])
        raise DataFormatError(
            f"{file}: {aware} timestamp(s) carry a UTC offset and {len(text) - aware} do not "
            f"(first without one: row {first_naive}, {text.iloc[first_naive]!r})",
            fix="write every timestamp with an offset (e.g. '2025-01-01T00:00:00Z') or none",
            path=str(file),
        )
    if aware:
        text = text.str.replace(r"\s*(?:UTC|GMT)$", "+00:00", regex=True, case=False)
    try:
        parsed = pd.to_datetime(text, format="ISO8601", utc=aware > 0)
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0]
        raise DataFormatError(
            f"{file}: timestamps are not ISO 8601 dates ({reason}); first value {text.iloc[0]!r}",
            fix="write ISO 8601 times with an offset ('2025-01-01T00:00:00Z') or epoch "
            "milliseconds",
            path=str(file),
        ) from exc
    if aware == 0 and assume_utc:
        parsed = parsed.dt.tz_localize("UTC")
    return parsed
