"""Fakes for alphaops' I/O seams, for tests and offline demos (shipped, not test-only code).

:class:`FakeExchange` stands in for a ccxt exchange: it serves real candles held in a
:class:`~alphaops.data.candles.Candles` object the way Binance does (``since``/``limit``
paging), raises injected ccxt errors on chosen calls, and records every call.

>>> import pandas as pd
>>> from alphaops.data.candles import Candles
>>> frame = pd.DataFrame({
...     "timestamp": pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC"),
...     "open": [1.0, 2.0, 3.0], "high": [2.0, 3.0, 4.0], "low": [0.5, 1.5, 2.5],
...     "close": [2.0, 3.0, 3.5], "volume": [10.0, 11.0, 12.0]})
>>> exchange = FakeExchange(Candles.from_frame(frame, symbol="BTCUSDT", timeframe="1h"))
>>> exchange.fetch_ohlcv("BTC/USDT", "1h", since=1735693200000, limit=5)
[[1735693200000, 2.0, 3.0, 1.5, 3.0, 11.0], [1735696800000, 3.0, 4.0, 2.5, 3.5, 12.0]]
>>> [(c.since, c.limit) for c in exchange.calls]
[(1735693200000, 5)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alphaops.core.errors import UsageError
from alphaops.data.candles import Candles

__all__ = ["FakeExchange", "FetchCall"]

# Quote currencies tried, longest first, to split a canonical symbol into base/quote.
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")


@dataclass(frozen=True)
class FetchCall:
    """One ``fetch_ohlcv`` call as the fake received it, and the error it raised if any."""

    symbol: str
    timeframe: str
    since: int | None
    limit: int | None
    error: str | None = None


class FakeExchange:
    """A ccxt-like exchange serving ``candles`` for one market, offline and deterministic.

    ``fetch_ohlcv`` returns the candles with open time ``>= since`` (the last ``limit`` ones
    when ``since`` is None), at most ``min(limit, max_limit)`` of them (``limit`` defaults to
    500, like Binance). ``fail(*errors)`` makes the next calls raise the given exceptions, one
    per call. ccxt is imported only when an error about the request itself must be raised.
    """

    def __init__(
        self,
        candles: Candles,
        *,
        market: str | None = None,
        exchange_id: str = "fakex",
        max_limit: int = 1000,
        rate_limit_ms: float = 50.0,
    ) -> None:
        self.id = exchange_id
        self.rateLimit = rate_limit_ms  # ccxt's attribute name
        self.candles = candles
        self.market = market or _split_symbol(candles.symbol)
        base, quote = self.market.split("/", 1)
        self.markets: dict[str, dict[str, Any]] = {
            self.market: {
                "id": candles.symbol,
                "symbol": self.market,
                "base": base,
                "quote": quote,
                "spot": True,
            }
        }
        self.timeframes = {candles.timeframe.value: candles.timeframe.value}
        self.max_limit = max_limit
        self.calls: list[FetchCall] = []
        self._failures: dict[int, BaseException] = {}
        self._stamps = candles.timestamps_ms
        self._values = candles.frame[["open", "high", "low", "close", "volume"]].to_numpy()

    def fail(self, *errors: BaseException, at_call: int | None = None) -> FakeExchange:
        """Raise ``errors`` on consecutive calls, from call number ``at_call`` (0-based; default next)."""
        start = len(self.calls) if at_call is None else at_call
        for offset, error in enumerate(errors):
            self._failures[start + offset] = error
        return self

    def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        """Return the one market this fake serves."""
        return self.markets

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[list[float]]:
        """Return candles ``[ms, open, high, low, close, volume]`` as Binance would."""
        number = len(self.calls)
        error = self._failures.pop(number, None)
        self.calls.append(
            FetchCall(symbol, timeframe, since, limit, None if error is None else repr(error))
        )
        if error is not None:
            raise error
        if symbol != self.market:
            import ccxt

            raise ccxt.BadSymbol(f"{self.id} does not have market symbol {symbol}")
        if timeframe != self.candles.timeframe.value:
            import ccxt

            raise ccxt.BadRequest(f"{self.id} serves only {self.candles.timeframe} candles")
        count = min(500 if limit is None else limit, self.max_limit)
        if since is None:
            begin = max(len(self._stamps) - count, 0)
        else:
            begin = int(np.searchsorted(self._stamps, since, side="left"))
        rows = []
        for i in range(begin, min(begin + count, len(self._stamps))):
            rows.append([int(self._stamps[i]), *(float(v) for v in self._values[i])])
        return rows


def _split_symbol(symbol: str) -> str:
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
    raise UsageError(
        f"cannot split {symbol!r} into base and quote currency", fix="pass market='BASE/QUOTE'"
    )
