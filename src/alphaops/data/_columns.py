"""Candle columns: map a raw frame onto the canonical OHLCV columns, convert its times to UTC,
and gather a file's chunks into one frame without a second copy (see :class:`ChunkedColumns`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphaops.core.errors import DataFormatError, DataValidationError
from alphaops.data.candles import OHLCV

__all__ = [
    "TIMESTAMP_ALIASES",
    "ChunkedColumns",
    "is_number",
    "source_names",
    "to_canonical_columns",
    "to_datetime",
]

# Column names accepted for the candle open time, in order of preference (after lower-casing).
TIMESTAMP_ALIASES = ("timestamp", "date", "time", "open_time", "datetime")
# An explicit UTC offset or zone at the end of a timestamp string.
_HAS_OFFSET = re.compile(r"(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
# Largest absolute epoch value per unit for dates before ~5138 AD; picks the unit by magnitude.
_EPOCH_UNITS: tuple[tuple[float, Literal["s", "ms", "us"]], ...] = (
    (1e11, "s"),
    (1e14, "ms"),
    (1e17, "us"),
)


class ChunkedColumns:
    """Canonical candle columns gathered from chunks of a file, checked chunk by chunk.

    Each chunk is mapped onto the canonical columns (refusing missing ones), its prices must
    be numbers (a text cell stops the read there, naming the row) and its times are converted;
    then only six plain arrays per chunk are kept, and joined once at the end.
    """

    def __init__(
        self,
        file: Path,
        *,
        assume_utc: bool,
        rename: dict[int, str] | None = None,
        expected_rows: int = 0,
    ) -> None:
        self.file = file
        self.assume_utc = assume_utc
        self.rename = rename
        self.expected_rows = expected_rows
        self.restart()

    def restart(self) -> None:
        """Forget every chunk added (the sniffed head, once checked, is read again)."""
        self.rows = 0
        self.aware: bool | None = None
        # Prices go straight into arrays sized for the expected rows: pages never written
        # cost no memory, and no second copy is made to join the chunks. UTC open times in
        # ms go into ``stamps`` the same way; other times (naive, finer than ms) are kept as
        # Series in ``times``, and validation reports or converts them.
        self.values = np.empty((len(OHLCV) - 1, self.expected_rows), dtype=np.float64)
        self.stamps: np.ndarray[Any, np.dtype[np.int64]] | None = np.empty(
            self.expected_rows, dtype=np.int64
        )
        self.times: list[pd.Series[Any]] = []

    def _room(self, rows: int) -> None:
        if self.rows + rows > self.values.shape[1]:
            size = max(self.rows + rows, self.values.shape[1] * 3 // 2)
            grown = np.empty((self.values.shape[0], size), dtype=np.float64)
            grown[:, : self.rows] = self.values[:, : self.rows]
            self.values = grown
            if self.stamps is not None:
                stamps = np.empty(size, dtype=np.int64)
                stamps[: self.rows] = self.stamps[: self.rows]
                self.stamps = stamps

    def _keep_times(self, stamps: pd.Series[Any]) -> None:
        if self.stamps is not None and _tz_aware(stamps) and stamps.dt.unit == "ms":
            chunk = stamps.to_numpy(dtype="datetime64[ms]").view(np.int64)
            self.stamps[self.rows : self.rows + len(chunk)] = chunk
            return
        if self.stamps is not None:  # from here on, times are kept as they come
            if self.rows:
                self.times.append(_utc_ms(self.stamps[: self.rows]))
            self.stamps = None
        self.times.append(stamps.reset_index(drop=True))

    def add(self, raw: pd.DataFrame) -> None:
        if self.rename is not None:
            raw = raw.rename(columns=self.rename)
        frame = to_canonical_columns(raw, self.file)
        self._room(len(frame))
        for i, column in enumerate(OHLCV[1:]):
            self.values[i, self.rows : self.rows + len(frame)] = self._numbers(frame[column])
        stamps = to_datetime(frame["timestamp"], self.file, assume_utc=self.assume_utc)
        if self.aware is not None and _tz_aware(stamps) != self.aware:
            raise DataFormatError(
                f"{self.file}: timestamps before row {self.rows} and from it on differ in "
                "carrying a UTC offset",
                fix="write every timestamp with an offset (e.g. '2025-01-01T00:00:00Z') or none",
                path=str(self.file),
            )
        self.aware = _tz_aware(stamps)
        self._keep_times(_in_ms(stamps))
        self.rows += len(frame)

    def _numbers(self, column: pd.Series[Any]) -> np.ndarray[Any, Any]:
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
            column.dtype
        ):
            return column.to_numpy(dtype=np.float64)
        numbers = pd.to_numeric(column, errors="coerce")
        text = (numbers.isna() & column.notna()).to_numpy()
        if not text.any():
            return numbers.to_numpy(dtype=np.float64)
        at = np.flatnonzero(text)
        rows = tuple(int(self.rows + i) for i in at[:5])
        problem = {
            "check": "not_numeric",
            "message": f"column {column.name!r} holds text, e.g. {column.iloc[at[0]]!r}",
            "count": int(at.size),
            "rows": rows,
            "fix": "convert the column to numbers",
        }
        more = "" if at.size <= 5 else f" (+{at.size - 5} more in this chunk)"
        raise DataValidationError(
            f"{self.file}: not_numeric: {problem['message']} at rows "
            f"{', '.join(map(str, rows))}{more}; read stopped there",
            fix="repair the listed rows at the source (alphaops never edits candles silently)",
            path=str(self.file),
            problems=[problem],
        )

    def frame_of(self, chunks: Iterable[pd.DataFrame]) -> pd.DataFrame:
        for chunk in chunks:
            self.add(chunk)
        if self.aware is None:
            self.add(pd.DataFrame({c: [] for c in OHLCV}))
        if self.stamps is not None:
            times = _utc_ms(self.stamps[: self.rows])
            self.stamps = None  # the buffer is freed before the validation's temporaries
        else:
            times = pd.concat(self.times, ignore_index=True)
            self.times.clear()
        joined: dict[str, Any] = {"timestamp": times}
        for i, column in enumerate(OHLCV[1:]):
            joined[column] = self.values[i, : self.rows]  # views, not copies
        return pd.DataFrame(joined, copy=False)


def _utc_ms(epoch_ms: np.ndarray[Any, np.dtype[np.int64]]) -> pd.Series[Any]:
    # One copy (pd.array with a UTC dtype would make two).
    stamps = pd.DatetimeIndex(epoch_ms.view("datetime64[ms]"), copy=False).tz_localize("UTC")
    return pd.Series(stamps, copy=False)


def _in_ms(stamps: pd.Series[Any]) -> pd.Series[Any]:
    # Candles keep open times in ms: converting each chunk that has no finer part now spares
    # Candles.from_frame a copy of the whole column later.
    if not _tz_aware(stamps) or stamps.dt.unit == "ms":
        return stamps
    in_ms = stamps.dt.as_unit("ms")
    return in_ms if bool(((in_ms == stamps) | stamps.isna()).all()) else stamps


def _tz_aware(stamps: pd.Series[Any]) -> bool:
    return isinstance(stamps.dtype, pd.DatetimeTZDtype)


def source_names(raw: pd.DataFrame) -> list[Any]:
    lowered = {str(c).strip().lstrip("\ufeff").lower(): c for c in raw.columns}
    alias = next((a for a in TIMESTAMP_ALIASES if a in lowered), None)
    names = [lowered[c] for c in OHLCV[1:] if c in lowered]
    return ([] if alias is None else [lowered[alias]]) + names


def is_number(value: object) -> bool:
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def to_canonical_columns(raw: pd.DataFrame, file: Path) -> pd.DataFrame:
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


def to_datetime(ts: pd.Series[Any], file: Path, *, assume_utc: bool) -> pd.Series[Any]:
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
