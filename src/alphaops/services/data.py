"""Market-data use cases: import, list, check, show and download candles in the home's store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import AlphaOpsError, UsageError
from alphaops.core.home import AlphaOpsHome
from alphaops.core.names import normalize_symbol
from alphaops.core.timeframes import Timeframe
from alphaops.data import (
    AppendResult,
    Calendar,
    Candles,
    CandleStore,
    DownloadProgress,
    DownloadResult,
    OHLCVExchange,
    OnConflict,
    StoreEntry,
    ValidationReport,
    download_candles,
    infer_symbol_timeframe,
    make_exchange,
    read_candles,
)

__all__ = [
    "ImportOutcome",
    "check_data",
    "download_data",
    "import_files",
    "list_data",
    "open_store",
    "parse_utc",
    "show_data",
]


def open_store(config: AlphaOpsConfig, *, create: bool = True) -> CandleStore:
    """Return the candle store inside the configured alphaops home (created if missing,
    unless ``create=False``: then a missing home is a not-found error naming it)."""
    home = AlphaOpsHome(config.home)
    return CandleStore((home.ensure() if create else home.require()).data_dir)


@dataclass(frozen=True)
class ImportOutcome:
    """One file: what it held and what the store did with it, or why it was refused."""

    path: Path
    candles: Candles | None
    result: AppendResult | None
    error: AlphaOpsError | None = None

    @property
    def ok(self) -> bool:
        """Return whether the file was imported."""
        return self.error is None

    def raise_for_error(self) -> tuple[Candles, AppendResult]:
        """Return the candles and the store's result, or raise why the file was refused."""
        if self.error is not None:
            raise self.error
        assert self.candles is not None
        assert self.result is not None
        return self.candles, self.result


def import_files(
    config: AlphaOpsConfig,
    paths: Sequence[Path],
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    on_conflict: OnConflict = "raise",
    assume_utc: bool = False,
    calendar: str | None = None,
) -> list[ImportOutcome]:
    """Read, validate and append each file to the store (nothing is stored from a bad file).

    Without ``symbol``/``timeframe`` they are taken from names like ``BTCUSDT-1h.parquet``.
    ``calendar`` declares the market's sessions (``24/7``, ``fx``, ``XNYS`` …) and is recorded
    with the series (re-declaring a stored series' calendar); without it a stored series keeps
    its own and a new one is ``24/7``.
    Every file is tried: a bad file is reported in its outcome (``error``) and the others are
    still imported, so the outcomes say exactly what is stored.
    """
    if not paths:
        raise UsageError("no files to import", fix="name one or more candle files")
    if symbol is not None and len(paths) > 1:
        raise UsageError(
            f"--symbol {symbol} given for {len(paths)} files",
            fix="import files of different symbols one by one, or name them SYMBOL-TF.ext",
        )
    declared = None if calendar is None else Calendar.parse(calendar)
    store = open_store(config)
    outcomes = []
    for path in paths:
        try:
            inferred_symbol, inferred_tf = (
                infer_symbol_timeframe(path)
                if symbol is None or timeframe is None
                else (None, None)
            )
            candles = read_candles(
                path,
                symbol=symbol or str(inferred_symbol),
                timeframe=timeframe or Timeframe.parse(str(inferred_tf)),
                assume_utc=assume_utc,
            )
            stored = store.path(candles.symbol, candles.timeframe).exists()
            cal = declared or (
                store.calendar(candles.symbol, candles.timeframe) if stored else None
            )
            candles = candles.with_calendar(cal)
            if stored and store.calendar(candles.symbol, candles.timeframe) != candles.calendar:
                store.declare_calendar(candles.symbol, candles.timeframe, candles.calendar)
            result = store.append(candles, on_conflict=on_conflict)
        except AlphaOpsError as exc:
            outcomes.append(ImportOutcome(path, None, None, exc))
            continue
        outcomes.append(ImportOutcome(path, candles, result))
    return outcomes


def list_data(config: AlphaOpsConfig) -> list[StoreEntry]:
    """Return every stored series with its extent, gaps and size."""
    return open_store(config, create=False).list()


def check_data(
    config: AlphaOpsConfig, symbol: str, timeframe: str, *, calendar: str | None = None
) -> ValidationReport:
    """Validate one stored series and report its gaps in trading bars of ``calendar`` (by
    default the series' declared calendar; a given one is used for this check only)."""
    return open_store(config, create=False).check(symbol, timeframe, calendar=calendar)


def show_data(
    config: AlphaOpsConfig,
    symbol: str,
    timeframe: str,
    *,
    start: str | None = None,
    end: str | None = None,
    tail: int | None = None,
    head: int | None = None,
) -> pd.DataFrame:
    """Return stored candles (optionally a UTC date range, then the first/last N rows)."""
    candles = open_store(config, create=False).load(
        symbol,
        timeframe,
        None if start is None else parse_utc(start, "--start"),
        None if end is None else parse_utc(end, "--end"),
    )
    frame = candles.frame
    if head is not None:
        frame = frame.head(head)
    if tail is not None:
        frame = frame.tail(tail)
    return frame


def download_data(
    config: AlphaOpsConfig,
    symbols: Sequence[str],
    timeframe: str,
    *,
    since: str,
    until: str | None = None,
    exchange_id: str | None = None,
    exchange: OHLCVExchange | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
) -> list[DownloadResult]:
    """Download closed candles of each symbol into the store, resuming where it stopped.

    ``exchange`` is injectable (tests, or a pre-configured ccxt client); by default the
    ccxt exchange ``exchange_id`` (or the configured one) is created with rate limiting.
    """
    client = exchange or make_exchange(exchange_id or config.download.exchange)
    store = open_store(config)
    return [
        download_candles(
            client,
            symbol,
            timeframe,
            since=parse_utc(since, "--since"),
            until=None if until is None else parse_utc(until, "--until"),
            store=store,
            config=config.download,
            progress=progress,
        )
        for symbol in (normalize_symbol(s) for s in symbols)
    ]


def parse_utc(text: str, option: str) -> pd.Timestamp:
    """Parse a command-line time (ISO, naive means UTC); ``option`` names it in errors."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, OverflowError) as exc:
        stamp = None
        cause: Exception | None = exc
    else:
        cause = None
    if stamp is None or pd.isna(stamp):  # "nan", "NaT", "" parse to NaT
        raise UsageError(
            f"{option} {text!r} is not a date or time", fix="use ISO form, e.g. 2024-01-31T12:00Z"
        ) from cause
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
