"""The small real sample data set shipped inside the package (see ``sample_data/README.md``).

>>> [(f.symbol, str(f.timeframe)) for f in sample_files()]
[('BTCUSDT', '1h'), ('ETHUSDT', '1h'), ('SOLUSDT', '1h')]
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from alphaops.core.timeframes import Timeframe

__all__ = ["SampleFile", "sample_files"]


@dataclass(frozen=True)
class SampleFile:
    """One bundled Parquet file of real candles."""

    symbol: str
    timeframe: Timeframe
    path: Path


def sample_files() -> list[SampleFile]:
    """Return the bundled sample files, sorted by symbol."""
    folder = Path(str(resources.files("alphaops") / "sample_data"))
    found = []
    for path in sorted(folder.glob("*.parquet")):
        symbol, timeframe = path.stem.split("-", 1)
        found.append(SampleFile(symbol, Timeframe.parse(timeframe), path))
    return found
