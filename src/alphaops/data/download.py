"""Download candles from an exchange through ccxt into the local store, resumably.

:func:`download_candles` pages forward from ``since`` (or from the candle after the last one
already stored), appends every page to the store as it arrives — so an interrupted download
resumes where it stopped — and never stores the still-open last candle. Network and
rate-limit errors are retried with exponential backoff; anything else becomes an
:class:`ExchangeError` carrying the exchange's message.

The exchange is any object with ccxt's ``fetch_ohlcv``; :func:`make_exchange` builds the real
one, :class:`alphaops.testing.FakeExchange` serves recorded candles offline:

>>> import tempfile
>>> from pathlib import Path
>>> import pandas as pd
>>> from alphaops.core.config import DownloadConfig
>>> from alphaops.data.candles import Candles
>>> from alphaops.data.store import CandleStore
>>> from alphaops.testing import FakeExchange
>>> frame = pd.DataFrame({
...     "timestamp": pd.date_range("2025-01-01", periods=5, freq="1h", tz="UTC"),
...     "open": [1.0] * 5, "high": [2.0] * 5, "low": [0.5] * 5, "close": [1.5] * 5,
...     "volume": [3.0] * 5})
>>> exchange = FakeExchange(Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h"))
>>> tmp = tempfile.TemporaryDirectory()
>>> result = download_candles(
...     exchange, "BTCUSDT", "1h", since="2025-01-01T00:00Z",
...     store=CandleStore(Path(tmp.name)), config=DownloadConfig(page_limit=3),
...     now=lambda: pd.Timestamp("2025-01-01T04:30Z"))
>>> result.market, result.added, result.requests, result.dropped_open
('BTC/USDT', 4, 2, 1)
>>> tmp.cleanup()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import pandas as pd

from alphaops.core.config import DownloadConfig
from alphaops.core.errors import ExchangeError, NotFoundError, UsageError
from alphaops.core.names import normalize_symbol
from alphaops.core.timeframes import Timeframe
from alphaops.data.candles import OHLCV, Candles
from alphaops.data.store import AppendResult, TimeLike, _utc

__all__ = [
    "CandleSink",
    "DownloadProgress",
    "DownloadResult",
    "OHLCVExchange",
    "download_candles",
    "make_exchange",
]

_T = TypeVar("_T")
_INSTALL_FIX = "pip install 'alphaops[download]'"


class OHLCVExchange(Protocol):
    """The part of a ccxt exchange that downloading uses.

    ``markets`` / ``load_markets()`` and ``timeframes`` are used too when the object has them.
    """

    id: str
    rateLimit: float

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int | None
    ) -> Sequence[Sequence[float]]:
        """Return up to ``limit`` candles ``[ms, open, high, low, close, volume]`` from ``since``."""
        ...


class CandleSink(Protocol):
    """Where downloaded pages go (a :class:`~alphaops.data.store.CandleStore`)."""

    def append(self, candles: Candles) -> AppendResult:
        """Merge one page of candles."""
        ...

    def first_timestamp(self, symbol: str, timeframe: str | Timeframe) -> pd.Timestamp | None:
        """Return the first stored open time, or None."""
        ...

    def last_timestamp(self, symbol: str, timeframe: str | Timeframe) -> pd.Timestamp | None:
        """Return the last stored open time, or None."""
        ...


@dataclass(frozen=True)
class DownloadProgress:
    """Reported after every stored page."""

    symbol: str
    timeframe: Timeframe
    page: int
    rows: int
    total_rows: int
    last: pd.Timestamp


@dataclass(frozen=True)
class DownloadResult:
    """What one download fetched and stored."""

    exchange: str
    symbol: str
    market: str
    timeframe: Timeframe
    requests: int
    retries: int
    pages: int
    added: int
    already_present: int
    dropped_open: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


def make_exchange(exchange_id: str) -> OHLCVExchange:
    """Create the ccxt exchange ``exchange_id`` with ccxt's own rate limiting enabled.

    >>> make_exchange("no-such-exchange")
    Traceback (most recent call last):
    ...
    alphaops.core.errors.UsageError: unknown exchange id 'no-such-exchange'...
    """
    ccxt = _import_ccxt()
    known: list[str] = list(ccxt.exchanges)
    if exchange_id not in known:
        close = [e for e in known if e.startswith(exchange_id[:3])][:5]
        raise UsageError(
            f"unknown exchange id {exchange_id!r}"
            + (f"; similar ids: {', '.join(close)}" if close else ""),
            fix="use a ccxt exchange id such as 'binance', 'kraken' or 'okx' "
            "(python -c 'import ccxt; print(ccxt.exchanges)')",
            exchange=exchange_id,
        )
    exchange: OHLCVExchange = getattr(ccxt, exchange_id)({"enableRateLimit": True})
    return exchange


def download_candles(
    exchange: OHLCVExchange,
    symbol: str,
    timeframe: str | Timeframe,
    *,
    since: TimeLike,
    until: TimeLike | None = None,
    store: CandleSink,
    config: DownloadConfig,
    progress: Callable[[DownloadProgress], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], pd.Timestamp] | None = None,
) -> DownloadResult:
    """Download closed candles with ``since <= open time < until`` into ``store``.

    ``symbol`` may be canonical (``BTCUSDT``) or a ccxt market (``BTC/USDT``); it is stored
    under the canonical name. Periods already stored are not fetched again: the download
    backfills before the first stored candle and resumes after the last one. ``until``
    defaults to now; a candle whose close time is after ``now()`` is still open and dropped.
    ``sleep`` and ``now`` are injectable for tests.
    """
    tf = Timeframe.parse(timeframe)
    canonical = normalize_symbol(symbol)
    start = _utc(since, "since")
    end = None if until is None else _utc(until, "until")
    clock = now or _utc_now
    fetcher = _Fetcher(exchange, config, sleep)
    market = _market_symbol(exchange, symbol, canonical, fetcher)
    _check_timeframe(exchange, tf)
    first = store.first_timestamp(canonical, tf)
    last = store.last_timestamp(canonical, tf)
    ranges: list[tuple[pd.Timestamp, pd.Timestamp | None]] = []
    if first is None or last is None:
        ranges.append((start, end))
    else:
        if start < first:
            ranges.append((start, first if end is None else min(first, end)))
        resume = max(start, last + tf.delta)
        if end is None or resume < end:
            ranges.append((resume, end))
    session = _Session(fetcher, store, canonical, market, tf, clock, progress)
    for lo, hi in ranges:
        session.fetch_range(lo, hi)
    return DownloadResult(
        exchange=str(getattr(exchange, "id", type(exchange).__name__)),
        symbol=canonical,
        market=market,
        timeframe=tf,
        requests=fetcher.requests,
        retries=fetcher.retries,
        pages=session.pages,
        added=session.added,
        already_present=session.already_present,
        dropped_open=session.dropped_open,
        first=session.first,
        last=session.last,
    )


class _Fetcher:
    """Calls the exchange with retries on transient errors; counts requests and retries."""

    def __init__(
        self, exchange: OHLCVExchange, config: DownloadConfig, sleep: Callable[[float], None]
    ) -> None:
        self.exchange = exchange
        self.config = config
        self.sleep = sleep
        self.requests = 0
        self.retries = 0
        self.transient, self.failure = _ccxt_error_types()

    def call(self, what: str, func: Callable[[], _T]) -> _T:
        name = getattr(self.exchange, "id", type(self.exchange).__name__)
        attempt = 0
        while True:
            self.requests += 1
            try:
                return func()
            except self.transient as exc:
                if attempt >= self.config.max_retries:
                    raise ExchangeError(
                        f"{name} {what} failed after {attempt + 1} attempt(s): "
                        f"{type(exc).__name__}: {exc}",
                        fix="check the network and the exchange's status page, then run the "
                        "download again: it resumes after the last stored candle",
                        exchange=name,
                        attempts=attempt + 1,
                    ) from exc
                self.sleep(self.config.retry_backoff_s * 2**attempt)
                attempt += 1
                self.retries += 1
            except self.failure as exc:
                raise ExchangeError(
                    f"{name} {what} was refused: {type(exc).__name__}: {exc}",
                    fix="check the symbol, timeframe and dates against the exchange; "
                    "retrying will not help",
                    exchange=name,
                ) from exc


class _Session:
    """Pages forward through one range and appends each page to the store."""

    def __init__(
        self,
        fetcher: _Fetcher,
        store: CandleSink,
        symbol: str,
        market: str,
        timeframe: Timeframe,
        clock: Callable[[], pd.Timestamp],
        progress: Callable[[DownloadProgress], None] | None,
    ) -> None:
        self.fetcher = fetcher
        self.store = store
        self.symbol = symbol
        self.market = market
        self.timeframe = timeframe
        self.clock = clock
        self.progress = progress
        self.pages = 0
        self.added = 0
        self.already_present = 0
        self.dropped_open = 0
        self.total_rows = 0
        self.first: pd.Timestamp | None = None
        self.last: pd.Timestamp | None = None

    def fetch_range(self, start: pd.Timestamp, end: pd.Timestamp | None) -> None:
        step = self.timeframe.milliseconds
        cursor = _ms(start)
        end_ms = None if end is None else _ms(end)
        limit = self.fetcher.config.page_limit
        while end_ms is None or cursor < end_ms:
            if cursor + step > self._now_ms():
                return  # the candle at the cursor has not closed yet: nothing more to fetch
            fetch = partial(
                self.fetcher.exchange.fetch_ohlcv,
                self.market,
                self.timeframe.value,
                since=cursor,
                limit=limit,
            )
            rows = self.fetcher.call(
                f"fetch_ohlcv({self.market!r}, {self.timeframe}, since={_iso(cursor)})", fetch
            )
            if not rows:
                return
            now_ms = self._now_ms()
            stamps = [int(r[0]) for r in rows]
            keep = [
                list(r[:6])
                for r, t in zip(rows, stamps, strict=True)
                if t >= cursor and (end_ms is None or t < end_ms) and t + step <= now_ms
            ]
            self.dropped_open += sum(1 for t in stamps if t + step > now_ms)
            if keep:
                self._store(keep)
            next_cursor = max(stamps) + step
            if next_cursor <= cursor:
                return  # the exchange returned nothing new; stop rather than loop
            cursor = next_cursor

    def _now_ms(self) -> int:
        return _ms(_utc(self.clock(), "now()"))

    def _store(self, rows: list[list[float]]) -> None:
        frame = pd.DataFrame(rows, columns=list(OHLCV))
        frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("int64"), unit="ms", utc=True)
        candles = Candles.from_frame(frame, symbol=self.symbol, timeframe=self.timeframe)
        result = self.store.append(candles)
        self.pages += 1
        self.added += result.added
        self.already_present += result.already_present
        self.total_rows += len(candles)
        page_first, page_last = frame["timestamp"].iloc[0], frame["timestamp"].iloc[-1]
        self.first = page_first if self.first is None else min(self.first, page_first)
        self.last = page_last if self.last is None else max(self.last, page_last)
        if self.progress is not None:
            self.progress(
                DownloadProgress(
                    self.symbol,
                    self.timeframe,
                    self.pages,
                    len(candles),
                    self.total_rows,
                    page_last,
                )
            )


def _market_symbol(exchange: OHLCVExchange, given: str, canonical: str, fetcher: _Fetcher) -> str:
    markets: Mapping[str, Any] | None = getattr(exchange, "markets", None)
    loader = getattr(exchange, "load_markets", None)
    if not markets and callable(loader):
        markets = fetcher.call("load_markets()", loader)
    wanted = given.strip().upper()
    if not markets:
        if "/" in wanted:
            return wanted
        raise UsageError(
            f"cannot map {given!r} to a market: {exchange.id} lists no markets",
            fix="give the exchange's market symbol, e.g. 'BTC/USDT'",
        )
    if wanted in markets:
        return wanted
    matches = [m for m in markets if normalize_symbol(m) == canonical]
    if not matches:
        similar = sorted(m for m in markets if str(m).startswith(wanted[:3]))[:5]
        raise NotFoundError(
            f"{exchange.id} has no market for {given!r}"
            + (f"; similar: {', '.join(similar)}" if similar else ""),
            fix="give a market the exchange lists, e.g. 'BTC/USDT'",
            symbol=given,
        )
    # Prefer the spot market (BTC/USDT) to derivatives that normalise alike (BTC/USDT:USDT).
    return sorted(matches, key=lambda m: (":" in m, not markets[m].get("spot", True), m))[0]


def _check_timeframe(exchange: OHLCVExchange, timeframe: Timeframe) -> None:
    supported = getattr(exchange, "timeframes", None)
    if isinstance(supported, Mapping) and supported and timeframe.value not in supported:
        raise UsageError(
            f"{exchange.id} does not serve {timeframe} candles; it serves {', '.join(supported)}",
            fix="download a timeframe it serves and resample it (alphaops.data.resample)",
        )


def _import_ccxt() -> Any:
    try:
        import ccxt
    except ImportError as exc:
        raise UsageError(
            "downloading needs ccxt, which is not installed",
            fix=_INSTALL_FIX,
        ) from exc
    return ccxt


def _ccxt_error_types() -> tuple[type[Exception], type[Exception]]:
    # Without ccxt no ccxt error can occur; an unmatched placeholder keeps the except clauses valid.
    try:
        import ccxt
    except ImportError:
        return _NeverRaised, _NeverRaised
    transient: type[Exception] = ccxt.NetworkError  # RateLimitExceeded, ExchangeNotAvailable …
    failure: type[Exception] = ccxt.BaseError
    return transient, failure


class _NeverRaised(Exception):
    pass


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
