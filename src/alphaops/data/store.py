"""The local candle store: one Parquet file per symbol and timeframe, merged incrementally.

Files live at ``<root>/<SYMBOL>/<timeframe>.parquet`` (``root`` is the home's ``data_dir``).
Appending merges by open time: candles already stored with identical values are skipped, new
ones are added, and candles that *differ* from the stored ones are refused with
:class:`DataConflictError` unless ``on_conflict="replace"``. Every write goes to a temporary
file in the same folder, is fsynced and then renamed over the old file, so a crash leaves
either the old file or the new one, never half of one.

A series' session calendar (``24/7`` unless declared, ``fx``, ``XNYS`` …) is recorded beside
it in ``<timeframe>.meta.json``; loading, checking and listing count gaps with it. Appending
candles declared with another calendar than the stored one is refused (undeclared ``24/7``
candles, e.g. from a download, take the stored calendar); :meth:`CandleStore.declare_calendar`
changes it.

>>> import tempfile
>>> import pandas as pd
>>> from alphaops.data.candles import Candles
>>> frame = pd.DataFrame({
...     "timestamp": pd.date_range("2025-01-01", periods=4, freq="1h", tz="UTC"),
...     "open": [1.0, 2.0, 3.0, 4.0], "high": [2.0, 3.0, 4.0, 5.0],
...     "low": [0.5, 1.5, 2.5, 3.5], "close": [2.0, 3.0, 4.0, 4.5], "volume": [1.0] * 4})
>>> tmp = tempfile.TemporaryDirectory()
>>> store = CandleStore(Path(tmp.name))
>>> first = Candles.from_frame(frame[:3], symbol="BTCUSDT", timeframe="1h")
>>> store.append(first).added
3
>>> result = store.append(Candles.from_frame(frame[1:], symbol="BTCUSDT", timeframe="1h"))
>>> result.added, result.already_present, result.rows
(1, 2, 4)
>>> [(e.symbol, str(e.timeframe), e.rows) for e in store.list()]
[('BTCUSDT', '1h', 4)]
>>> tmp.cleanup()
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from alphaops.core.errors import (
    DataConflictError,
    DataFormatError,
    InsufficientDataError,
    NotFoundError,
    SpecError,
    UsageError,
)
from alphaops.core.names import normalize_symbol
from alphaops.core.timeframes import Timeframe
from alphaops.data.calendars import CONTINUOUS, Calendar
from alphaops.data.candles import PRICE_COLUMNS, Candles, ValidationReport, validate_frame

__all__ = [
    "AppendResult",
    "CandleStore",
    "FrameWriter",
    "OnConflict",
    "StoreEntry",
    "TimeLike",
    "write_parquet",
]

OnConflict = Literal["raise", "replace"]
TimeLike = pd.Timestamp | datetime | str
_VALUES = [*PRICE_COLUMNS, "volume"]
_CONFLICTS_SHOWN = 3
_IMPORT_FIX = (
    "import a file (alphaops data import FILE, or CandleStore.append(read_candles(...))) or "
    "download it (alphaops data download SYMBOL --timeframe TF)"
)


class FrameWriter(Protocol):
    """Write a canonical candle frame to ``path`` (the store makes the write atomic)."""

    def __call__(self, frame: pd.DataFrame, path: Path) -> None: ...


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` as zstd-compressed Parquet without an index."""
    # No dictionary encoding: candle values barely repeat, so it only costs memory (~40 MB of
    # hash tables per row group) and makes the file larger (about 1.7x on real candles).
    frame.to_parquet(path, index=False, compression="zstd", use_dictionary=False)


@dataclass(frozen=True)
class AppendResult:
    """What one append or write changed, and the stored series' extent afterwards."""

    symbol: str
    timeframe: Timeframe
    added: int
    already_present: int
    replaced: int
    removed: int
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    path: Path

    @property
    def changed(self) -> bool:
        """Return whether the stored file was rewritten."""
        return bool(self.added or self.replaced or self.removed)


@dataclass(frozen=True)
class StoreEntry:
    """One stored series: its extent, gaps (missing candles) and size on disk."""

    symbol: str
    timeframe: Timeframe
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    gaps: int
    missing_bars: int
    bytes: int
    path: Path
    calendar: Calendar = CONTINUOUS

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "symbol": self.symbol,
            "timeframe": str(self.timeframe),
            "calendar": str(self.calendar),
            "rows": self.rows,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "gaps": self.gaps,
            "missing_bars": self.missing_bars,
            "bytes": self.bytes,
            "path": str(self.path),
        }


class CandleStore:
    """Parquet candles under ``root``, one file per symbol and timeframe."""

    def __init__(self, root: Path, *, writer: FrameWriter = write_parquet) -> None:
        self.root = Path(root)
        self._writer = writer

    def path(self, symbol: str, timeframe: str | Timeframe) -> Path:
        """Return the file that holds ``symbol`` at ``timeframe`` (it may not exist)."""
        return self.root / normalize_symbol(symbol) / f"{Timeframe.parse(timeframe)}.parquet"

    def append(self, candles: Candles, *, on_conflict: OnConflict = "raise") -> AppendResult:
        """Merge ``candles`` into the stored series without duplicating any candle.

        Candles already stored with identical values are skipped. Candles whose values differ
        from the stored ones raise :class:`DataConflictError` (nothing is written) unless
        ``on_conflict="replace"``, where the new values win. Nothing is rewritten when nothing
        changes.
        """
        if on_conflict not in ("raise", "replace"):
            raise UsageError(
                f"on_conflict={on_conflict!r} is not understood", fix="use 'raise' or 'replace'"
            )
        return self._merge(candles, on_conflict=on_conflict, keep_old=True)

    def write(self, candles: Candles) -> AppendResult:
        """Replace the stored series with exactly ``candles`` (old rows not in it are removed)."""
        return self._merge(candles, on_conflict="replace", keep_old=False)

    def load(
        self,
        symbol: str,
        timeframe: str | Timeframe,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> Candles:
        """Return the stored candles with ``start <= timestamp < end`` (bounds optional, UTC)."""
        path = self._existing(symbol, timeframe)
        candles = self._read(path, symbol, timeframe)
        if start is None and end is None:
            return candles
        lo = None if start is None else _utc(start, "start")
        hi = None if end is None else _utc(end, "end")
        stamps = candles.frame["timestamp"]
        mask = np.ones(len(candles), dtype=bool)
        if lo is not None:
            mask &= (stamps >= lo).to_numpy()
        if hi is not None:
            mask &= (stamps < hi).to_numpy()
        if not mask.any():
            first, last = stamps.iloc[0], stamps.iloc[-1]
            raise InsufficientDataError(
                f"no {candles.symbol} {candles.timeframe} candles in [{lo}, {hi}); the store "
                f"holds {first} .. {last}",
                fix="widen the range or download the missing period",
            )
        return Candles.from_frame(
            candles.frame[mask],
            symbol=candles.symbol,
            timeframe=candles.timeframe,
            calendar=candles.calendar,
        )

    def calendar(self, symbol: str, timeframe: str | Timeframe) -> Calendar:
        """Return the calendar declared for a series (``24/7`` when none is recorded)."""
        meta = self._meta_path(self.path(symbol, timeframe))
        if not meta.exists():
            return CONTINUOUS
        try:
            return Calendar.parse(json.loads(meta.read_text())["calendar"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataFormatError(
                f"series metadata {meta} cannot be read: {type(exc).__name__}: {exc}",
                fix='rewrite it as {"calendar": "24/7"} (or fx, XNYS …), or delete it',
                path=str(meta),
            ) from exc

    def declare_calendar(
        self, symbol: str, timeframe: str | Timeframe, calendar: str | Calendar
    ) -> ValidationReport:
        """Declare the session calendar of a stored series and return its new report.

        The stored candles are validated against it first: nothing is recorded when some
        fall outside its sessions (:class:`DataValidationError`).
        """
        cal = Calendar.parse(calendar)
        path = self._existing(symbol, timeframe)
        with _exclusive(path.with_name(f".{path.stem}.lock")):
            report = validate_frame(
                self._read_frame(path), symbol=symbol, timeframe=timeframe, calendar=cal
            )
            report.raise_for_problems()
            self._write_meta(path, cal)
        return report

    def list(self) -> builtins.list[StoreEntry]:
        """Return every stored series, sorted by symbol and timeframe."""
        entries = []
        for symbol, timeframe, path in self._files():
            stamps = self._read_frame(path, columns=["timestamp"])["timestamp"]
            if len(stamps) == 0:
                continue
            ms = stamps.to_numpy(dtype="datetime64[ms]").astype(np.int64)
            calendar = self.calendar(symbol, timeframe)
            holes, _ = calendar.missing_between(ms, timeframe)
            holes = holes[holes > 0]
            entries.append(
                StoreEntry(
                    symbol=symbol,
                    timeframe=timeframe,
                    rows=len(stamps),
                    first=stamps.iloc[0],
                    last=stamps.iloc[-1],
                    gaps=int(holes.size),
                    missing_bars=int(holes.sum()),
                    bytes=path.stat().st_size,
                    path=path,
                    calendar=calendar,
                )
            )
        return sorted(entries, key=lambda e: (e.symbol, e.timeframe.seconds))

    def check(
        self,
        symbol: str,
        timeframe: str | Timeframe,
        *,
        calendar: str | Calendar | None = None,
    ) -> ValidationReport:
        """Validate the stored file and return the report (problems and gaps); never raise on them.

        Gaps are counted with ``calendar``, by default the series' declared one.
        """
        path = self._existing(symbol, timeframe)
        cal = self.calendar(symbol, timeframe) if calendar is None else Calendar.parse(calendar)
        return validate_frame(
            self._read_frame(path), symbol=symbol, timeframe=timeframe, calendar=cal
        )

    def first_timestamp(self, symbol: str, timeframe: str | Timeframe) -> pd.Timestamp | None:
        """Return the open time of the first stored candle, or None if nothing is stored."""
        span = self._span(symbol, timeframe)
        return None if span is None else span[0]

    def last_timestamp(self, symbol: str, timeframe: str | Timeframe) -> pd.Timestamp | None:
        """Return the open time of the last stored candle, or None if nothing is stored."""
        span = self._span(symbol, timeframe)
        return None if span is None else span[1]

    # -- internals ---------------------------------------------------------------------------

    def _span(
        self, symbol: str, timeframe: str | Timeframe
    ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        path = self.path(symbol, timeframe)
        if not path.exists():
            return None
        stamps = self._read_frame(path, columns=["timestamp"])["timestamp"]
        if len(stamps) == 0:
            return None
        return stamps.min(), stamps.max()

    def _merge(self, candles: Candles, *, on_conflict: OnConflict, keep_old: bool) -> AppendResult:
        path = self.path(candles.symbol, candles.timeframe)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path.with_name(f".{path.stem}.lock")):
            old = self._read(path, candles.symbol, candles.timeframe) if path.exists() else None
            if old is not None and keep_old and candles.calendar != old.calendar:
                if not candles.calendar.continuous:
                    raise _calendar_conflict(old, candles)
                candles = candles.with_calendar(old.calendar)  # undeclared: the stored one
            if old is None:
                merged, present, differs = candles.frame, np.zeros(len(candles), bool), None
                removed = 0
            else:
                position, present = _positions(old.timestamps_ms, candles.timestamps_ms)
                old_values = old.frame[_VALUES].to_numpy()
                new_values = candles.frame[_VALUES].to_numpy()
                differs = np.zeros(len(candles), dtype=bool)
                differs[present] = (old_values[position[present]] != new_values[present]).any(
                    axis=1
                )
                if differs.any() and on_conflict == "raise":
                    raise _conflict_error(old, candles, position, differs, path)
                if keep_old:
                    kept = old.frame.copy()
                    kept.iloc[position[differs], 1:] = new_values[differs]
                    merged = pd.concat([kept, candles.frame[~present]], ignore_index=True)
                    merged = merged.sort_values("timestamp", kind="stable")
                    removed = 0
                else:
                    merged = candles.frame
                    removed = len(old) - int(present.sum())
            replaced = 0 if differs is None else int(differs.sum())
            # Candles written as they are were validated already: no second pass over them.
            result = (
                candles
                if merged is candles.frame
                else Candles.from_frame(
                    merged,
                    symbol=candles.symbol,
                    timeframe=candles.timeframe,
                    calendar=candles.calendar,
                )
            )
            added = int((~present).sum())
            if added or replaced or removed:
                self._commit(result.frame, path)
            if old is None or old.calendar != result.calendar:
                self._write_meta(path, result.calendar)
        stamps = result.frame["timestamp"]
        return AppendResult(
            symbol=result.symbol,
            timeframe=result.timeframe,
            added=added,
            already_present=int(present.sum()) - replaced,
            replaced=replaced,
            removed=removed,
            rows=len(result),
            first=stamps.iloc[0],
            last=stamps.iloc[-1],
            path=path,
        )

    def _commit(self, frame: pd.DataFrame, path: Path) -> None:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            self._writer(frame, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(f"{path.stem}.meta.json")

    def _write_meta(self, path: Path, calendar: Calendar) -> None:
        meta = self._meta_path(path)
        if calendar.continuous:  # the default is recorded by having no metadata
            meta.unlink(missing_ok=True)
            return
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{meta.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"calendar": str(calendar)}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(name, meta)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def _files(self) -> Iterator[tuple[str, Timeframe, Path]]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/*.parquet")):
            if path.name.startswith("."):
                continue
            try:
                yield normalize_symbol(path.parent.name), Timeframe.parse(path.stem), path
            except (SpecError, UsageError):
                continue  # not a store file (e.g. a user's own notes); list only ours

    def _existing(self, symbol: str, timeframe: str | Timeframe) -> Path:
        path = self.path(symbol, timeframe)
        if path.exists():
            return path
        held = [f"{s} {tf}" for s, tf, _ in self._files()]
        holds = f"it holds {', '.join(held)}" if held else "it is empty"
        raise NotFoundError(
            f"no {normalize_symbol(symbol)} {Timeframe.parse(timeframe)} candles in the store "
            f"at {self.root}; {holds}",
            fix=_IMPORT_FIX,
            available=held,
        )

    def _read(self, path: Path, symbol: str, timeframe: str | Timeframe) -> Candles:
        return Candles.from_frame(
            self._read_frame(path),
            symbol=symbol,
            timeframe=timeframe,
            calendar=self.calendar(symbol, timeframe),
        )

    def _read_frame(self, path: Path, columns: builtins.list[str] | None = None) -> pd.DataFrame:
        try:
            return pd.read_parquet(path, columns=columns)
        except Exception as exc:  # pyarrow raises several types; all mean a damaged file
            raise DataFormatError(
                f"stored candle file {path} cannot be read: {type(exc).__name__}: {exc}",
                fix=f"delete {path} and import or download the series again",
                path=str(path),
            ) from exc


def _positions(
    old_ms: np.ndarray[Any, np.dtype[np.int64]], new_ms: np.ndarray[Any, np.dtype[np.int64]]
) -> tuple[np.ndarray[Any, np.dtype[np.intp]], np.ndarray[Any, np.dtype[np.bool_]]]:
    # Both sides are sorted and unique (validated), so a binary search finds every match.
    position = np.minimum(np.searchsorted(old_ms, new_ms), len(old_ms) - 1)
    return position, old_ms[position] == new_ms


def _conflict_error(
    old: Candles,
    new: Candles,
    position: np.ndarray[Any, np.dtype[np.intp]],
    differs: np.ndarray[Any, np.dtype[np.bool_]],
    path: Path,
) -> DataConflictError:
    rows = np.flatnonzero(differs)
    conflicts = []
    for row in rows[:_CONFLICTS_SHOWN]:
        stored = old.frame.iloc[int(position[row])]
        given = new.frame.iloc[int(row)]
        conflicts.append(
            {
                "timestamp": stored["timestamp"].isoformat(),
                "stored": {c: float(stored[c]) for c in _VALUES},
                "new": {c: float(given[c]) for c in _VALUES},
            }
        )
    shown = "; ".join(
        f"{c['timestamp']} stored {_ohlcv(c['stored'])} new {_ohlcv(c['new'])}" for c in conflicts
    )
    more = f" (+{rows.size - len(conflicts)} more)" if rows.size > len(conflicts) else ""
    return DataConflictError(
        f"{new.symbol} {new.timeframe}: {rows.size} candle(s) differ from the ones stored in "
        f"{path}: {shown}{more}",
        fix="check which source is right; append with on_conflict='replace' to keep the new "
        "candles",
        count=int(rows.size),
        conflicts=conflicts,
    )


def _calendar_conflict(old: Candles, new: Candles) -> DataConflictError:
    return DataConflictError(
        f"{old.symbol} {old.timeframe} is stored with the {old.calendar} calendar; the new "
        f"candles are declared {new.calendar}",
        fix=f"declare them {old.calendar}, or change the series' calendar first "
        f"(alphaops data import --calendar {new.calendar}, or CandleStore.declare_calendar)",
        stored=str(old.calendar),
        given=str(new.calendar),
    )


def _ohlcv(values: dict[str, float]) -> str:
    return "o/h/l/c/v=" + "/".join(repr(values[c]) for c in _VALUES)


def _utc(value: TimeLike, what: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"{what} {value!r} is not a date or time", fix="give e.g. '2025-01-01T00:00Z'"
        ) from exc
    if stamp.tzinfo is None:
        raise UsageError(
            f"{what} {value!r} has no timezone, so it is ambiguous",
            fix="give it in UTC, e.g. '2025-01-01T00:00Z' or pd.Timestamp('2025-01-01', tz='UTC')",
        )
    return stamp.tz_convert("UTC")


def _fsync_folder(folder: Path) -> None:
    # Make the rename itself durable; POSIX only (Windows cannot open a folder).
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":

    @contextmanager
    def _exclusive(lock_path: Path) -> Iterator[None]:
        yield

else:
    import fcntl

    @contextmanager
    def _exclusive(lock_path: Path) -> Iterator[None]:
        # Serialise read-merge-write of one series across processes (download + import).
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
