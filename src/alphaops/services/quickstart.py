"""The main job: run the whole pipeline that exists so far on the bundled real sample data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alphaops.core.config import AlphaOpsConfig
from alphaops.data import StoreEntry, ValidationReport, sample_files
from alphaops.datasets import DatasetFiles, DatasetSpec, SequenceDataset
from alphaops.features import LabelRule
from alphaops.services.data import check_data, import_files, list_data
from alphaops.services.datasets import build_dataset

__all__ = ["QuickstartResult", "run_quickstart"]

LOOKBACK = 64
RULE = LabelRule(kind="ternary", horizon=4, threshold=0.01)


@dataclass(frozen=True)
class QuickstartResult:
    """Everything the quickstart did, for rendering."""

    imported: dict[str, int]
    entries: list[StoreEntry]
    checks: list[ValidationReport]
    dataset: SequenceDataset
    files: DatasetFiles


def run_quickstart(
    config: AlphaOpsConfig, *, step: Callable[[str], None] = lambda _: None
) -> QuickstartResult:
    """Import → check → features → labels → dataset on the bundled sample; ``step`` narrates.

    Safe to run again: the import adds nothing already stored.
    """
    samples = sample_files()
    step("import the bundled sample data")
    imported: dict[str, int] = {}
    for sample in samples:
        (outcome,) = import_files(
            config, [sample.path], symbol=sample.symbol, timeframe=str(sample.timeframe)
        )
        imported[sample.symbol] = outcome.result.added
    step("check the stored candles")
    checks = [check_data(config, s.symbol, str(s.timeframe)) for s in samples]
    for report in checks:
        report.raise_for_problems()
    step(f"compute features and labels, build the (N, {LOOKBACK}, F) dataset")
    spec = DatasetSpec(
        symbols=tuple(s.symbol for s in samples),
        timeframe=str(samples[0].timeframe),
        lookback=LOOKBACK,
        label=RULE,
        name="quickstart",
    )
    dataset, files = build_dataset(config, spec)
    return QuickstartResult(imported, list_data(config), checks, dataset, files)
