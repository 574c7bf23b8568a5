"""Downloading through a ccxt-like exchange: paging, resume, retries, errors, the open candle."""

from __future__ import annotations

import sys
from collections.abc import Callable

import ccxt
import pandas as pd
import pytest

from alphaops.core.config import DownloadConfig
from alphaops.core.errors import (
    ExchangeError,
    NotFoundError,
    UsageError,
)
from alphaops.core.home import AlphaOpsHome
from alphaops.data.candles import Candles
from alphaops.data.download import DownloadProgress, download_candles, make_exchange
from alphaops.data.store import CandleStore
from alphaops.testing import FakeExchange

LoadReal = Callable[[str, str], Candles]
SINCE = pd.Timestamp("2018-01-01", tz="UTC")
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def source(load_real: LoadReal) -> Candles:
    """Real BTCUSDT 1h candles for Q1 2018, including the 34 h outage of 2018-02-08."""
    return load_real("BTCUSDT", "1h").between(SINCE, pd.Timestamp("2018-04-01", tz="UTC"))


@pytest.fixture
def store(home: AlphaOpsHome) -> CandleStore:
    return CandleStore(home.data_dir)


def _after_close(candles: Candles) -> Callable[[], pd.Timestamp]:
    """Return a clock at the close of the last candle: every candle is closed."""
    moment = candles.frame["timestamp"].iloc[-1] + candles.timeframe.delta
    return lambda: moment


def test_full_download_stores_exactly_the_source_slice(source: Candles, store: CandleStore) -> None:
    exchange = FakeExchange(source)

    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(page_limit=500),
        now=_after_close(source),
    )

    pd.testing.assert_frame_equal(store.load("BTCUSDT", "1h").frame, source.frame)
    assert (result.added, result.already_present, result.dropped_open) == (len(source), 0, 0)
    assert result.pages == -(-len(source) // 500) == 5
    assert result.requests == result.pages  # no request for a candle that cannot have closed
    assert (result.first, result.last) == (
        source.frame["timestamp"].iloc[0],
        source.frame["timestamp"].iloc[-1],
    )


def test_pages_start_after_the_previous_page_and_respect_the_page_limit(
    source: Candles, store: CandleStore
) -> None:
    exchange = FakeExchange(source)

    download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(page_limit=300),
        now=_after_close(source),
    )

    stamps = source.timestamps_ms
    assert [c.limit for c in exchange.calls] == [300] * len(exchange.calls)
    assert [c.since for c in exchange.calls] == [
        int(SINCE.value // 1_000_000),
        *(int(stamps[i]) + HOUR_MS for i in range(299, len(stamps), 300)),
    ]
    assert len(exchange.calls) == -(-len(source) // 300) == 8
    assert {(c.symbol, c.timeframe) for c in exchange.calls} == {("BTC/USDT", "1h")}


def test_exchange_capping_pages_below_the_page_limit_still_yields_everything(
    source: Candles, store: CandleStore
) -> None:
    exchange = FakeExchange(source, max_limit=200)

    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(page_limit=1000),
        now=_after_close(source),
    )

    assert result.pages == -(-len(source) // 200)
    pd.testing.assert_frame_equal(store.load("BTCUSDT", "1h").frame, source.frame)


def test_still_open_last_candle_is_dropped_and_ends_the_download(
    source: Candles, store: CandleStore
) -> None:
    exchange = FakeExchange(source)
    last = source.frame["timestamp"].iloc[-1]

    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(page_limit=500),
        now=lambda: last + pd.Timedelta(minutes=59, seconds=59),
    )

    assert result.dropped_open == 1
    assert store.last_timestamp("BTCUSDT", "1h") == last - pd.Timedelta(hours=1)
    assert result.requests == result.pages  # no extra request once the present is reached


def test_until_bounds_the_download_exclusively(source: Candles, store: CandleStore) -> None:
    exchange = FakeExchange(source)
    until = pd.Timestamp("2018-01-10", tz="UTC")

    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        until=until,
        store=store,
        config=DownloadConfig(page_limit=100),
        now=_after_close(source),
    )

    assert result.added == len(source.between(SINCE, until)) == 9 * 24 - 1  # one real gap
    assert store.last_timestamp("BTCUSDT", "1h") == until - pd.Timedelta(hours=1)
    assert len(exchange.calls) == 3


def test_interrupted_download_resumes_fetching_only_the_missing_part(
    source: Candles, store: CandleStore
) -> None:
    config = DownloadConfig(page_limit=500, max_retries=0)
    broken = FakeExchange(source).fail(ccxt.ExchangeError("internal error"), at_call=2)
    with pytest.raises(ExchangeError):
        download_candles(
            broken,
            "BTCUSDT",
            "1h",
            since=SINCE,
            store=store,
            config=config,
            now=_after_close(source),
        )
    stored_last = store.last_timestamp("BTCUSDT", "1h")
    assert stored_last == source.frame["timestamp"].iloc[999]

    exchange = FakeExchange(source)
    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=config,
        now=_after_close(source),
    )

    assert exchange.calls[0].since == int(stored_last.value // 1_000_000) + HOUR_MS
    assert (result.added, result.already_present) == (len(source) - 1000, 0)
    pd.testing.assert_frame_equal(store.load("BTCUSDT", "1h").frame, source.frame)


def test_rerunning_an_up_to_date_download_makes_no_request(
    source: Candles, store: CandleStore
) -> None:
    config = DownloadConfig(page_limit=500)
    download_candles(
        FakeExchange(source),
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=config,
        now=_after_close(source),
    )
    exchange = FakeExchange(source)

    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=config,
        now=_after_close(source),
    )

    assert (result.added, result.requests) == (0, 0)
    assert exchange.calls == []  # up to date: the next candle cannot have closed yet


def test_since_before_the_stored_series_backfills_only_the_missing_head(
    source: Candles, store: CandleStore
) -> None:
    store.append(source.between(pd.Timestamp("2018-02-01", tz="UTC"), None))
    exchange = FakeExchange(source)

    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(page_limit=1000),
        now=_after_close(source),
    )

    assert result.added == len(source.between(SINCE, pd.Timestamp("2018-02-01", tz="UTC")))
    assert [c.since for c in exchange.calls] == [int(SINCE.value // 1_000_000)]
    pd.testing.assert_frame_equal(store.load("BTCUSDT", "1h").frame, source.frame)


@pytest.mark.parametrize(
    "error",
    [
        ccxt.NetworkError("connection reset"),
        ccxt.RateLimitExceeded("429 Too Many Requests"),
        ccxt.ExchangeNotAvailable("503 Service Unavailable"),
        ccxt.RequestTimeout("timed out"),
    ],
)
def test_transient_errors_are_retried_with_exponential_backoff(
    source: Candles, store: CandleStore, error: Exception
) -> None:
    exchange = FakeExchange(source).fail(error, error, error, at_call=1)
    sleeps: list[float] = []

    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(page_limit=500, max_retries=3, retry_backoff_s=0.5),
        sleep=sleeps.append,
        now=_after_close(source),
    )

    assert sleeps == [0.5, 1.0, 2.0]
    assert result.retries == 3
    assert [c.since for c in exchange.calls[1:5]] == [exchange.calls[1].since] * 4
    pd.testing.assert_frame_equal(store.load("BTCUSDT", "1h").frame, source.frame)


def test_transient_errors_beyond_the_retry_budget_raise_exchange_error(
    source: Candles, store: CandleStore
) -> None:
    exchange = FakeExchange(source).fail(*[ccxt.NetworkError("connection reset")] * 3)
    sleeps: list[float] = []

    with pytest.raises(ExchangeError) as caught:
        download_candles(
            exchange,
            "BTCUSDT",
            "1h",
            since=SINCE,
            store=store,
            config=DownloadConfig(max_retries=2, retry_backoff_s=1.0),
            sleep=sleeps.append,
            now=_after_close(source),
        )

    assert sleeps == [1.0, 2.0]
    assert "fakex" in caught.value.message
    assert "after 3 attempt(s)" in caught.value.message
    assert "connection reset" in caught.value.message
    assert "resumes" in (caught.value.fix or "")
    assert isinstance(caught.value.__cause__, ccxt.NetworkError)
    assert store.last_timestamp("BTCUSDT", "1h") is None


@pytest.mark.parametrize(
    "error",
    [
        ccxt.BadRequest("binance {'code': -1120, 'msg': 'Invalid interval.'}"),
        ccxt.AuthenticationError("invalid api key"),
        ccxt.ExchangeError("unknown failure"),
    ],
)
def test_other_exchange_errors_are_raised_at_once_with_their_message(
    source: Candles, store: CandleStore, error: Exception
) -> None:
    exchange = FakeExchange(source).fail(error)
    sleeps: list[float] = []

    with pytest.raises(ExchangeError) as caught:
        download_candles(
            exchange,
            "BTCUSDT",
            "1h",
            since=SINCE,
            store=store,
            config=DownloadConfig(),
            sleep=sleeps.append,
            now=_after_close(source),
        )

    assert str(error) in caught.value.message
    assert type(error).__name__ in caught.value.message
    assert sleeps == []
    assert len(exchange.calls) == 1


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC/USDT", "btc/usdt", "btcusdt"])
def test_canonical_and_ccxt_symbols_fetch_the_market_and_store_canonically(
    source: Candles, store: CandleStore, symbol: str
) -> None:
    exchange = FakeExchange(source)
    exchange.markets["BTC/USDT:USDT"] = {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "spot": False}

    result = download_candles(
        exchange,
        symbol,
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(),
        now=_after_close(source),
    )

    assert (result.symbol, result.market) == ("BTCUSDT", "BTC/USDT")
    assert {c.symbol for c in exchange.calls} == {"BTC/USDT"}
    assert store.path("BTCUSDT", "1h").exists()


def test_markets_are_loaded_when_the_exchange_has_not_loaded_them(
    source: Candles, store: CandleStore
) -> None:
    class Unloaded(FakeExchange):
        """Like a fresh ccxt client: no markets until load_markets() is called."""

        def __init__(self, candles: Candles) -> None:
            super().__init__(candles)
            self.listed, self.markets, self.loads = self.markets, {}, 0

        def load_markets(self, reload: bool = False) -> dict[str, dict[str, object]]:
            self.loads += 1
            self.markets = self.listed
            return self.markets

    exchange = Unloaded(source)

    result = download_candles(
        exchange,
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(),
        now=_after_close(source),
    )

    assert exchange.loads == 1
    assert result.market == "BTC/USDT"


def test_symbol_the_exchange_does_not_list_is_not_found(
    source: Candles, store: CandleStore
) -> None:
    exchange = FakeExchange(source)

    with pytest.raises(NotFoundError, match="fakex has no market for 'DOGEUSDT'"):
        download_candles(
            exchange,
            "DOGEUSDT",
            "1h",
            since=SINCE,
            store=store,
            config=DownloadConfig(),
            now=_after_close(source),
        )
    assert exchange.calls == []


def test_timeframe_the_exchange_does_not_serve_is_refused_before_any_request(
    source: Candles, store: CandleStore
) -> None:
    exchange = FakeExchange(source)

    with pytest.raises(UsageError, match="does not serve 4h candles; it serves 1h"):
        download_candles(
            exchange,
            "BTCUSDT",
            "4h",
            since=SINCE,
            store=store,
            config=DownloadConfig(),
            now=_after_close(source),
        )
    assert exchange.calls == []


def test_naive_since_is_refused(source: Candles, store: CandleStore) -> None:
    with pytest.raises(UsageError, match="since '2018-01-01' has no timezone"):
        download_candles(
            FakeExchange(source),
            "BTCUSDT",
            "1h",
            since="2018-01-01",
            store=store,
            config=DownloadConfig(),
            now=_after_close(source),
        )


def test_progress_is_reported_after_every_stored_page(source: Candles, store: CandleStore) -> None:
    seen: list[DownloadProgress] = []

    download_candles(
        FakeExchange(source),
        "BTCUSDT",
        "1h",
        since=SINCE,
        store=store,
        config=DownloadConfig(page_limit=1000),
        progress=seen.append,
        now=_after_close(source),
    )

    assert [(p.page, p.rows, p.total_rows) for p in seen] == [
        (1, 1000, 1000),
        (2, 1000, 2000),
        (3, len(source) - 2000, len(source)),
    ]
    assert seen[-1].last == source.frame["timestamp"].iloc[-1]


def test_make_exchange_builds_a_rate_limited_ccxt_client() -> None:
    exchange = make_exchange("binance")

    assert isinstance(exchange, ccxt.binance)
    assert exchange.enableRateLimit is True


def test_make_exchange_refuses_an_unknown_id_with_similar_ones() -> None:
    with pytest.raises(UsageError, match="unknown exchange id 'binanse'; similar ids: binance"):
        make_exchange("binanse")


def test_make_exchange_without_ccxt_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", None)  # makes `import ccxt` fail

    with pytest.raises(UsageError) as caught:
        make_exchange("binance")

    assert caught.value.fix == "pip install 'alphaops[download]'"


def test_fake_exchange_without_since_serves_the_latest_candles(source: Candles) -> None:
    rows = FakeExchange(source).fetch_ohlcv("BTC/USDT", "1h", limit=3)

    assert [r[0] for r in rows] == [int(t) for t in source.timestamps_ms[-3:]]


def test_fake_exchange_refuses_a_market_it_does_not_serve(source: Candles) -> None:
    with pytest.raises(ccxt.BadSymbol):
        FakeExchange(source).fetch_ohlcv("ETH/USDT", "1h", since=0, limit=5)
