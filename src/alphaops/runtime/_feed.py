"""The predictor's market feed: validated closed bars, and one live input per input contract.

The bot's thread pushes bars (``on_bar``) or windows (``predict_candles``); each bar is
validated once and updates the features of every contract in use incrementally. A version
whose contract is new (another feature spec after a swap) gets its live input rebuilt from the
buffered bars the first time it is asked for one. Not thread-safe: one thread feeds it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaops.core.errors import StaleBarError
from alphaops.data.candles import Candles
from alphaops.runtime._model import LoadedModel
from alphaops.scoring import Bar, InputContract, LiveInput, bars_of

__all__ = ["Feed"]

_MAX_INPUTS = 8


class Feed:
    """Closed bars of one market, kept for replay, and the live inputs built from them."""

    def __init__(self, max_bars: int = 4096) -> None:
        self._bars: deque[Bar] = deque(maxlen=max_bars)
        self._inputs: OrderedDict[tuple[Any, ...], LiveInput] = OrderedDict()

    @property
    def last_ms(self) -> int | None:
        """Return the open time of the newest bar (``None`` before the first)."""
        return self._bars[-1].timestamp_ms if self._bars else None

    def push(self, bar: Bar, contract: InputContract) -> None:
        """Validate ``bar`` against ``contract`` and update every live input; refused bars
        change nothing."""
        primary = self.input(contract)
        primary.push(bar)  # validates: raises before anything changed
        for key, live in list(self._inputs.items()):
            if live is not primary:
                try:
                    live.push(bar)
                except Exception:  # another contract's grid: rebuilt on its next use
                    del self._inputs[key]
        self._bars.append(bar)

    def input(self, contract: InputContract) -> LiveInput:
        """Return the live input of ``contract``, replaying the buffered bars if it is new."""
        live = self._inputs.get(contract.key)
        if live is None:
            live = contract.live()
            for bar in self._bars:
                live.push(bar)
            self._inputs[contract.key] = live
            while len(self._inputs) > _MAX_INPUTS:
                self._inputs.popitem(last=False)
        return live

    def batch_of(self, model: LoadedModel) -> npt.NDArray[Any]:
        """Return the newest bar's input for a loaded model."""
        return self.input(model.contract).batch()

    def sync(self, candles: Candles, contract: InputContract) -> None:
        """Push the candles of ``candles`` newer than the last bar.

        A window that does not reach back to the last bar replaces the feed (the features
        restart from its first candle); one that ends before it is stale.
        """
        contract.check_market(candles)
        stamps = candles.timestamps_ms
        if len(stamps) == 0:
            return
        last = self.last_ms
        start = 0
        if last is not None:
            newest = int(stamps[-1])
            if newest < last:
                raise StaleBarError(
                    f"the candles end at {_iso(newest)}, before the last bar seen at {_iso(last)}",
                    fix="pass the most recent candles (oldest first)",
                )
            if newest == last:
                return
            found = int(np.searchsorted(stamps, last))
            if found < len(stamps) and int(stamps[found]) == last:
                start = found + 1
            else:
                self._bars.clear()
                self._inputs.clear()
        for bar in bars_of(candles, start=start):
            self.push(bar, contract)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
