"""Import legacy models: plan (dry run) and import each one found as a candidate version.

Pickled models load only with ``trust_pickle`` and then only in the sandboxed child
(:mod:`alphaops.importing._sandbox`); the child converts them to ONNX and scores the golden
batch with the original model. This process checks the ONNX model against those scores
(:func:`~alphaops.importing._onnx.parity_of`) and refuses the import beyond tolerance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from alphaops.core.errors import (
    AlphaOpsError,
    IncompatibleModelError,
    IntegrityError,
    UntrustedCodeError,
    UsageError,
)
from alphaops.data.candles import Candles
from alphaops.features import FeaturePipeline
from alphaops.importing._discover import Found
from alphaops.importing._features import FeatureMatch, FeatureMode, check_model_columns
from alphaops.importing._features import match_features as _match
from alphaops.importing._onnx import fold_scaler, one_probability_output, parity_of
from alphaops.importing._pickle_scan import PickleScan, plain_strings, scan_pickle
from alphaops.importing._publish import Converted, class_order, source_files, window_of
from alphaops.importing._sandbox import SandboxLimits, read_names, run_loader

__all__ = [
    "GoldenData",
    "ImportOptions",
    "PlannedImport",
    "convert_pickle",
    "golden_batch",
    "plan_found",
    "read_feature_list",
    "require_trust",
    "scan_file",
]

CandleSource = Callable[[str, str], Candles]
"""Return the candles of ``(symbol, timeframe)`` for the golden batch."""


class ImportOptions(BaseModel):
    """How to import legacy models (frozen; unknown keys are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trust_pickle: bool = Field(
        False, description="Load pickles (in the sandboxed child). Only for files you trust."
    )
    features: FeatureMode = Field("auto", description="How to treat the feature columns.")
    classes: tuple[str, ...] | None = Field(
        None, description="Action name of each class in model order, e.g. SELL,HOLD,BUY."
    )
    timeframe: str = Field("1h", description="Bar size the model was trained on.")
    horizon: int = Field(1, ge=1, description="Bars ahead the model predicts.")
    parity_tolerance: float = Field(
        1e-4, gt=0, description="Largest ONNX vs original probability difference accepted."
    )
    golden_rows: int = Field(256, ge=8, description="Rows in the golden batch.")
    architecture: str | None = Field(
        None, description="module:Class of a torch network (trusted code) for state dicts."
    )
    lookback: int | None = Field(None, ge=1, description="Window length of sequence models.")
    limits: SandboxLimits = Field(default_factory=SandboxLimits)


@dataclass(frozen=True)
class GoldenData:
    """Where golden batches come from: candles (features computed) or ready feature rows."""

    candles: CandleSource | None = None
    rows: pd.DataFrame | None = None


@dataclass(frozen=True)
class PlannedImport:
    """What a dry run found for one model and how it would map it."""

    found: Found
    features: tuple[str, ...] | None
    input_kind: str
    classes: tuple[str, ...] | None
    imports: tuple[str, ...]
    needs_trust: bool
    problems: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description (``--dry-run --json``)."""
        f = self.found
        return {
            "layout": f.layout,
            "source": str(f.model),
            "symbol": f.symbol,
            "model_type": f.model_type,
            "format": f.format,
            "version": f.version,
            "latest": f.latest,
            "features": None if self.features is None else list(self.features),
            "input": self.input_kind,
            "scaler": None if f.scaler is None else str(f.scaler),
            "target_scaler": None if f.target_scaler is None else str(f.target_scaler),
            "classes": None if self.classes is None else list(self.classes),
            "imports": list(self.imports),
            "needs_trust_pickle": self.needs_trust,
            "problems": list(self.problems),
        }


def scan_file(path: Path) -> PickleScan:
    return scan_pickle(path.read_bytes(), where=str(path))


def read_feature_list(path: Path | None, options: ImportOptions, *, where: str) -> list[str]:
    """Return the feature columns of a sidecar (JSON, data-only pickle, or trusted pickle)."""
    if path is None:
        raise IncompatibleModelError(
            f"{where} has no feature-list sidecar (<symbol>_features.pkl or _cols.pkl)",
            fix="put the list of feature columns next to the model, e.g. as <symbol>_features.json",
        )
    if path.suffix == ".json":
        try:
            names = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"{path} is not valid JSON ({exc})", fix="restore the file", file=str(path)
            ) from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise IntegrityError(
                f"{path} is not a JSON list of column names",
                fix="write the columns as a JSON list of strings",
                file=str(path),
            )
        return names
    scan = scan_file(path)
    if scan.data_only:
        return plain_strings(scan, where=str(path))
    require_trust(path, scan, options)
    return read_names(path, where=str(path), limits=options.limits)


def require_trust(path: Path, scan: PickleScan, options: ImportOptions) -> None:
    if options.trust_pickle:
        return
    imports = ", ".join(scan.globals[:6]) or "objects"
    raise UntrustedCodeError(
        f"{path} is a pickle: loading it runs code it carries (it imports {imports}); nothing "
        "was loaded",
        fix="if you trust the file, pass --trust-pickle (it loads in a sandboxed child "
        "process), or export the model to ONNX yourself",
        file=str(path),
        imports=list(scan.globals),
    )


def plan_found(found: Found, options: ImportOptions) -> PlannedImport:
    """Describe what importing ``found`` would do, without loading any pickle."""
    problems: list[str] = []
    imports: tuple[str, ...] = ()
    needs_trust = False
    features: tuple[str, ...] | None = None
    input_kind = "unknown"
    classes: tuple[str, ...] | None = None
    if found.format == "keras":
        problems.append("Keras: convert it to ONNX first (tf2onnx), then import the .onnx")
    try:
        if found.format == "pickle":
            scan = scan_file(found.model)
            imports, needs_trust = scan.globals, not scan.data_only
        for sidecar in (found.scaler, found.target_scaler):
            if sidecar is not None and sidecar.suffix != ".json":
                needs_trust = needs_trust or not scan_file(sidecar).data_only
        if found.features is not None and found.features.suffix != ".json":
            side = scan_file(found.features)
            if side.data_only:
                features = tuple(plain_strings(side, where=str(found.features)))
            else:
                needs_trust = True
                problems.append(f"{found.features.name} needs --trust-pickle to be read")
        elif found.features is not None:
            features = tuple(read_feature_list(found.features, options, where=str(found.model)))
        if features is not None:
            input_kind = _match(features, mode=options.features, where=str(found.model)).input_kind
        if found.format == "onnx" and found.metadata is not None:
            from alphaops.importing._flat_onnx import read_metadata

            meta = read_metadata(found.metadata)
            features = meta.features
            classes = meta.classes
            input_kind = _match(features, mode=options.features, where=str(found.model)).input_kind
    except AlphaOpsError as exc:
        problems.append(f"{exc.code}: {exc.message}")
    if needs_trust and not options.trust_pickle:
        problems.append("loading it needs --trust-pickle")
    return PlannedImport(
        found, features, input_kind, classes, imports, needs_trust, tuple(problems)
    )


def golden_batch(
    match: FeatureMatch,
    *,
    symbol: str,
    options: ImportOptions,
    data: GoldenData,
    where: str,
) -> tuple[npt.NDArray[np.float64], pd.DataFrame, str]:
    """Return ``(rows, frame, source)``: the golden feature rows in column order."""
    columns = list(match.columns)
    if data.rows is not None:
        missing = [c for c in columns if c not in data.rows.columns]
        if missing:
            raise IncompatibleModelError(
                f"{where}: the golden rows lack the feature columns {missing}",
                fix="pass rows with every column the model takes",
                missing=missing,
            )
        frame = data.rows.dropna(subset=columns).tail(options.golden_rows)
        source = "rows given by the user"
    elif match.spec is not None and data.candles is not None:
        candles = data.candles(symbol, options.timeframe)
        features = FeaturePipeline(match.spec).transform(candles).dropna()
        frame = features.tail(options.golden_rows)
        source = f"{symbol} {options.timeframe} candles, features computed by alphaops"
    else:
        raise UsageError(
            f"{where} takes ready features {columns[:5]}{'…' if len(columns) > 5 else ''}: "
            "alphaops cannot compute them from candles for the parity check",
            fix="pass --golden FILE with rows of those columns (Parquet or CSV)",
        )
    if len(frame) < 8:
        raise IncompatibleModelError(
            f"{where}: only {len(frame)} complete golden rows", fix="pass more history"
        )
    return frame[columns].to_numpy(dtype=np.float64), frame, source


def convert_pickle(found: Found, options: ImportOptions, data: GoldenData) -> Converted:
    """Load a pickled model in the sandboxed child, convert and parity-check it."""
    where = str(found.model)
    scan = scan_file(found.model)
    require_trust(found.model, scan, options)
    for sidecar in (found.scaler,):
        if sidecar is not None:
            require_trust(sidecar, scan_file(sidecar), options)
    columns = read_feature_list(found.features, options, where=where)
    match = _match(columns, mode=options.features, where=where)
    rows, frame, golden_source = golden_batch(
        match, symbol=found.symbol, options=options, data=data, where=where
    )
    child = run_loader(
        model=found.model, where=where, limits=options.limits, golden=rows, scaler=found.scaler
    )
    check_model_columns(columns, child.feature_names_in, where=where)
    model = one_probability_output(child.onnx, child.probabilities_output, where=where)
    if child.scaler is not None:
        model = fold_scaler(model, scale=child.scaler["scale"], offset=child.scaler["offset"])
    parity, _ = parity_of(
        model, child.golden, child.legacy, tolerance=options.parity_tolerance, where=where
    )
    return Converted(
        symbol=found.symbol,
        model_type=found.model_type,
        onnx=model,
        columns=match.columns,
        spec=match.spec,
        classes=class_order(child.classes, options.classes, where=where),
        golden=child.golden,
        golden_window=window_of(frame),
        parity=parity,
        golden_source=golden_source,
        layout=found.layout,
        source=found.model,
        files=source_files([found.model, *found.sidecars]),
        trusted_code=[f"pickle ({child.model_type}) in the sandboxed loader, pid {child.pid}"],
        timeframe=options.timeframe,
        horizon=options.horizon,
        params={"original_class": child.model_type, "loader_pid": child.pid},
    )
