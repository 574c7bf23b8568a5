"""Dataset use cases: build sequence datasets from the store into the home's datasets folder."""

from __future__ import annotations

from datetime import datetime

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.home import AlphaOpsHome
from alphaops.datasets import (
    DatasetFiles,
    DatasetSpec,
    SequenceDataset,
    build_sequence_dataset,
    save_dataset,
)
from alphaops.services.data import open_store

__all__ = ["build_dataset"]


def build_dataset(
    config: AlphaOpsConfig, spec: DatasetSpec, *, now: datetime | None = None, plots: bool = True
) -> tuple[SequenceDataset, DatasetFiles]:
    """Load each symbol from the store, build the windows and write ``.npz`` + report.

    With ``plots`` (and matplotlib installed) the report links PNG plots written beside it.
    """
    store = open_store(config)
    candles = [store.load(symbol, spec.timeframe) for symbol in spec.symbols]
    dataset = build_sequence_dataset(candles, spec)
    folder = AlphaOpsHome(config.home).ensure().datasets_dir
    files = save_dataset(dataset, folder, now=now, plots=plots)
    return dataset, files
