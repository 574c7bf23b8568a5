"""Training datasets: sequence windows built from features and labels, and their files."""

from alphaops.datasets.build import (
    DatasetFiles,
    DatasetSpec,
    LoadedDataset,
    SequenceDataset,
    SymbolStats,
    build_sequence_dataset,
    load_dataset,
    save_dataset,
)
from alphaops.datasets.windows import SequenceWindows, segment_ids

__all__ = [
    "DatasetFiles",
    "DatasetSpec",
    "LoadedDataset",
    "SequenceDataset",
    "SequenceWindows",
    "SymbolStats",
    "build_sequence_dataset",
    "load_dataset",
    "save_dataset",
    "segment_ids",
]
