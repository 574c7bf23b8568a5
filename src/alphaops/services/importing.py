"""Import use cases: what ``alphaops import …`` and ``alphaops export`` call.

Each function builds the golden-data source (a candle file, the home's candle store, or ready
feature rows), opens the configured registry, does one job and returns plain results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import DataFormatError, NotFoundError
from alphaops.core.home import AlphaOpsHome
from alphaops.data.candles import Candles
from alphaops.data.readers import read_candles
from alphaops.data.store import CandleStore
from alphaops.importing import (
    ExportLayout,
    ExportResult,
    GoldenData,
    ImportedModel,
    ImportOptions,
    MlflowImport,
    MlflowVersion,
    PlannedImport,
    export_version,
    import_freqai,
    import_legacy,
    import_mlflow,
    plan_freqai,
    plan_legacy,
    plan_mlflow,
)
from alphaops.services._common import open_configured_registry

__all__ = [
    "export_for_legacy_bots",
    "golden_data",
    "import_freqai_models",
    "import_legacy_models",
    "import_mlflow_models",
    "plan_freqai_import",
    "plan_legacy_import",
    "plan_mlflow_import",
]


def _read_rows(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise NotFoundError(f"golden rows file {path} does not exist", fix="check the path")
    try:
        if path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataFormatError(
            f"cannot read golden rows from {path} ({exc})",
            fix="pass a Parquet or CSV file with one column per feature",
        ) from exc


def golden_data(
    config: AlphaOpsConfig, *, candles_file: Path | None = None, rows_file: Path | None = None
) -> GoldenData:
    """Return where golden batches come from: ready rows, a candle file, or the candle store."""
    rows = None if rows_file is None else _read_rows(rows_file)
    if candles_file is not None:
        path = candles_file

        def from_file(symbol: str, timeframe: str) -> Candles:
            return read_candles(path, symbol=symbol, timeframe=timeframe)

        return GoldenData(candles=from_file, rows=rows)
    store = CandleStore(AlphaOpsHome(config.home).data_dir)
    return GoldenData(candles=store.load, rows=rows)


def plan_legacy_import(path: Path, options: ImportOptions) -> list[PlannedImport]:
    """Return the dry-run plan of importing ``path`` (nothing is loaded or written)."""
    return plan_legacy(path, options)


def import_legacy_models(
    config: AlphaOpsConfig,
    path: Path,
    options: ImportOptions,
    *,
    candles_file: Path | None = None,
    rows_file: Path | None = None,
    only: Sequence[str] = (),
    database_url: str | None = None,
    artifacts: str | None = None,
) -> list[ImportedModel]:
    """Import every model under ``path`` as a candidate version of the configured registry."""
    data = golden_data(config, candles_file=candles_file, rows_file=rows_file)
    with open_configured_registry(config, database_url=database_url, artifacts=artifacts) as reg:
        return import_legacy(path, options, reg, data, only=only)


def export_for_legacy_bots(
    config: AlphaOpsConfig,
    ref: str,
    dest: Path,
    *,
    name: str | None = None,
    layout: ExportLayout = "both",
    latest: bool = True,
    database_url: str | None = None,
    artifacts: str | None = None,
) -> ExportResult:
    """Export ``ref`` as ``<name>.onnx`` + ``_metadata.json`` and/or a ``latest`` tree."""
    with open_configured_registry(
        config, database_url=database_url, artifacts=artifacts, create=False
    ) as reg:
        return export_version(reg, ref, dest, name=name, layout=layout, latest=latest)


def plan_freqai_import(path: Path, options: ImportOptions) -> list[PlannedImport]:
    """Return the dry-run plan of importing FreqAI folders under ``path``."""
    return plan_freqai(path, options)


def import_freqai_models(
    config: AlphaOpsConfig,
    path: Path,
    options: ImportOptions,
    *,
    database_url: str | None = None,
    artifacts: str | None = None,
) -> list[ImportedModel]:
    """Import every FreqAI training folder under ``path`` as candidate versions."""
    with open_configured_registry(config, database_url=database_url, artifacts=artifacts) as reg:
        return import_freqai(path, options, reg)


def plan_mlflow_import(
    tracking_uri: str, name: str, *, symbol: str | None = None, model_type: str | None = None
) -> list[MlflowVersion]:
    """Return how each version of MLflow model ``name`` would map (the dry-run plan)."""
    return plan_mlflow(tracking_uri, name, symbol=symbol, model_type=model_type)


def import_mlflow_models(
    config: AlphaOpsConfig,
    tracking_uri: str,
    name: str,
    options: ImportOptions,
    *,
    symbol: str | None = None,
    model_type: str | None = None,
    candles_file: Path | None = None,
    rows_file: Path | None = None,
    database_url: str | None = None,
    artifacts: str | None = None,
) -> MlflowImport:
    """Copy MLflow model ``name`` (versions, artifacts, aliases) into the configured registry."""
    data = golden_data(config, candles_file=candles_file, rows_file=rows_file)
    with open_configured_registry(config, database_url=database_url, artifacts=artifacts) as reg:
        return import_mlflow(
            tracking_uri, name, options, reg, data, symbol=symbol, model_type=model_type
        )
