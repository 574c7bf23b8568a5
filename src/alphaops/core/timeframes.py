"""Candle timeframes such as ``5m``, ``1h`` and ``1d`` (exchange notation).

>>> tf = Timeframe.parse("4h")
>>> tf.value, tf.seconds, tf.delta
('4h', 14400, Timedelta('0 days 04:00:00'))
>>> Timeframe.parse("1h").divides(Timeframe.parse("1d"))
True
>>> Timeframe.parse("60m") == Timeframe.parse("1h")
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from alphaops.core.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Timeframe"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"([1-9][0-9]*)([smhdw])")


@dataclass(frozen=True)
class Timeframe:
    """A fixed-length candle timeframe; ``value`` is its canonical text (``"1h"``)."""

    value: str

    @classmethod
    def parse(cls, text: str | Timeframe) -> Timeframe:
        """Parse ``"5m"``, ``"1h"``, ``"1d"`` … into a :class:`Timeframe`; raise on anything else."""
        if isinstance(text, Timeframe):
            return text
        match = _PATTERN.fullmatch(str(text).strip())
        if match is None:
            raise SpecError(
                f"timeframe {text!r} is not understood",
                fix="use a number and one unit of s, m, h, d or w, e.g. '5m', '1h', '1d'",
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        # Canonical text uses the largest unit that divides evenly: "60m" is "1h".
        for unit in ("w", "d", "h", "m", "s"):
            if seconds % _UNITS[unit] == 0:
                return cls(f"{seconds // _UNITS[unit]}{unit}")
        raise AssertionError("unreachable: every length is a whole number of seconds")

    @cached_property
    def seconds(self) -> int:
        """Return the length of one candle in seconds."""
        match = _PATTERN.fullmatch(self.value)
        assert match is not None  # guaranteed by parse()
        return int(match.group(1)) * _UNITS[match.group(2)]

    @property
    def delta(self) -> pd.Timedelta:
        """Return the length of one candle as a :class:`pandas.Timedelta`."""
        import pandas as pd  # lazily: `alphaops.core` is imported by every command

        return pd.Timedelta(seconds=self.seconds)

    @property
    def milliseconds(self) -> int:
        """Return the length of one candle in milliseconds (exchange APIs count in ms)."""
        return self.seconds * 1000

    def divides(self, coarser: Timeframe) -> bool:
        """Return whether whole candles of this timeframe tile one candle of ``coarser``."""
        return coarser.seconds > self.seconds and coarser.seconds % self.seconds == 0

    def __str__(self) -> str:
        return self.value
