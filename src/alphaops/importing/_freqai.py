"""Import FreqAI model folders: ``<identifier>/sub-train-<COIN>_<timestamp>/``.

FreqAI's data drawer saves, per training, ``<name>_model.joblib`` (the fitted model, pickled),
``<name>_metadata.json`` (``training_features_list``, ``label_list``, and in older versions
the normalisation bounds ``<feature>_max``/``<feature>_min``), ``<name>_trained_df.pkl``
(the normalised training features, a pickled DataFrame) and, in newer versions,
``<name>_feature_pipeline.pkl`` (the fitted scaler pipeline). ``pair_dictionary.json`` in the
identifier folder maps each pair to its newest model.

The model, the training frame (the golden batch) and the pipeline are pickles: they load only
with ``trust_pickle``, in the sandboxed child. Bounds in the metadata are numbers and fold
into the graph without any pickle. FreqAI feature names (``%-rsi-period_10_…``) are not
alphaops features, so the model takes ready feature rows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alphaops.core.errors import IncompatibleModelError, IntegrityError, NotFoundError
from alphaops.core.names import normalize_symbol
from alphaops.importing._discover import Found
from alphaops.importing._features import match_features
from alphaops.importing._legacy import ImportOptions, PlannedImport, require_trust, scan_file
from alphaops.importing._onnx import fold_scaler, one_probability_output, parity_of
from alphaops.importing._publish import Converted, class_order, source_files, window_of
from alphaops.importing._sandbox import run_loader

__all__ = ["FreqaiModel", "convert_freqai", "discover_freqai", "plan_freqai_model"]

_FOLDER = re.compile(r"sub-train-(?P<coin>[A-Za-z0-9]+)_(?P<stamp>\d+)")
_FAMILIES = {"lightgbm": "lightgbm", "xgboost": "xgboost", "sklearn": "sklearn"}


@dataclass(frozen=True)
class FreqaiModel:
    """One FreqAI training folder and its files."""

    folder: Path
    coin: str
    trained_at: int
    pair: str | None
    model: Path
    metadata: Path
    trained_df: Path | None
    feature_pipeline: Path | None

    @property
    def symbol(self) -> str:
        """Return the alphaops symbol of the pair (``BTC/USDT:USDT`` -> ``BTCUSDT``)."""
        return normalize_symbol(self.pair or self.coin)

    def found(self, model_type: str) -> Found:
        """Return the generic description (for plans and provenance)."""
        return Found(
            layout="freqai",
            symbol=self.symbol,
            model_type=model_type,
            format="pickle",
            model=self.model,
            scaler=self.feature_pipeline,
            metadata=self.metadata,
            version=str(self.trained_at),
        )


def _pairs(identifier: Path) -> dict[str, str]:
    path = identifier / "pair_dictionary.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    by_file = {}
    for pair, info in data.items() if isinstance(data, dict) else ():
        if isinstance(info, dict) and info.get("model_filename"):
            by_file[str(info["model_filename"])] = str(pair)
    return by_file


def _one(folder: Path, suffix: str) -> Path | None:
    found = sorted(folder.glob(f"*{suffix}"))
    return found[0] if found else None


def discover_freqai(path: Path) -> list[FreqaiModel]:
    """Return every FreqAI training folder under ``path`` (an identifier folder or one)."""
    if not path.is_dir():
        raise NotFoundError(f"{path} is not a folder", fix="pass user_data/models/<identifier>")
    folders = [path] if _FOLDER.fullmatch(path.name) else sorted(path.glob("sub-train-*"))
    pairs = _pairs(path if folders and folders[0] != path else path.parent)
    models = []
    for folder in folders:
        named = _FOLDER.fullmatch(folder.name)
        model, metadata = _one(folder, "_model.joblib"), _one(folder, "_metadata.json")
        if named is None or model is None or metadata is None:
            continue
        stem = metadata.name.removesuffix("_metadata.json")
        models.append(
            FreqaiModel(
                folder=folder,
                coin=named["coin"].upper(),
                trained_at=int(named["stamp"]),
                pair=pairs.get(stem),
                model=model,
                metadata=metadata,
                trained_df=_one(folder, "_trained_df.pkl"),
                feature_pipeline=_one(folder, "_feature_pipeline.pkl"),
            )
        )
    if not models:
        raise NotFoundError(
            f"no FreqAI models under {path} (sub-train-<COIN>_<timestamp>/ with "
            "<name>_model.joblib and <name>_metadata.json)",
            fix="pass user_data/models/<identifier> or one sub-train folder",
        )
    return sorted(models, key=lambda m: (m.symbol, m.trained_at))


def _metadata(model: FreqaiModel) -> dict[str, Any]:
    try:
        data = json.loads(model.metadata.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"{model.metadata} is not valid JSON ({exc})",
            fix="restore the file from FreqAI's backup or retrain",
            file=str(model.metadata),
        ) from exc
    features = data.get("training_features_list") if isinstance(data, dict) else None
    if not isinstance(features, list) or not features:
        raise IntegrityError(
            f"{model.metadata} has no training_features_list",
            fix="restore the metadata FreqAI wrote with this model",
            file=str(model.metadata),
        )
    return dict(data)


def _model_type(model: FreqaiModel) -> str:
    scan = scan_file(model.model)
    top = scan.globals[0].split(".")[0] if scan.globals else "freqai"
    return _FAMILIES.get(top, "freqai")


def _bounds(meta: dict[str, Any], features: list[str]) -> tuple[list[float], list[float]] | None:
    # Older FreqAI: x_norm = 2 * (x - min) / (max - min) - 1, bounds stored per feature.
    if not all(f"{f}_max" in meta and f"{f}_min" in meta for f in features):
        return None
    high = np.asarray([float(meta[f"{f}_max"]) for f in features])
    low = np.asarray([float(meta[f"{f}_min"]) for f in features])
    span = np.where(high - low == 0, 1.0, high - low)
    return (2.0 / span).tolist(), (-2.0 * low / span - 1.0).tolist()


def plan_freqai_model(model: FreqaiModel, options: ImportOptions) -> PlannedImport:
    """Describe importing ``model`` (no pickle is loaded)."""
    problems: list[str] = []
    features: tuple[str, ...] | None = None
    model_type = "freqai"
    imports: tuple[str, ...] = ()
    try:
        model_type = _model_type(model)
        imports = scan_file(model.model).globals
        features = tuple(_metadata(model)["training_features_list"])
    except (IntegrityError, IncompatibleModelError) as exc:
        problems.append(f"{exc.code}: {exc.message}")
    if model.trained_df is None:
        problems.append("no _trained_df.pkl for the golden batch")
    if not options.trust_pickle:
        problems.append("loading it needs --trust-pickle")
    return PlannedImport(
        model.found(model_type),
        features,
        "ready features",
        options.classes,
        imports,
        True,
        tuple(problems),
    )


def convert_freqai(model: FreqaiModel, options: ImportOptions) -> Converted:
    """Convert one FreqAI model (sandboxed child), fold its normalisation, check parity."""
    where = str(model.model)
    require_trust(model.model, scan_file(model.model), options)
    meta = _metadata(model)
    columns = [str(c) for c in meta["training_features_list"]]
    match = match_features(columns, mode=options.features, where=where)
    if model.trained_df is None:
        raise IntegrityError(
            f"{model.folder} has no <name>_trained_df.pkl to build the golden batch from",
            fix="restore it, or import the model with alphaops import legacy and --golden",
            file=str(model.folder),
        )
    require_trust(model.trained_df, scan_file(model.trained_df), options)
    bounds = _bounds(meta, columns)
    pipeline = None if bounds is not None else model.feature_pipeline
    child = run_loader(
        model=model.model,
        where=where,
        limits=options.limits,
        golden_pickle=model.trained_df,
        golden_rows=options.golden_rows,
        features=columns,
        scaler=pipeline,
    )
    onnx_model = one_probability_output(child.onnx, child.probabilities_output, where=where)
    golden = child.golden
    if bounds is not None:
        # The training frame is normalised: the raw golden rows are its inverse.
        golden = ((golden - np.asarray(bounds[1])) / np.asarray(bounds[0])).astype(np.float32)
        onnx_model = fold_scaler(onnx_model, scale=bounds[0], offset=bounds[1])
    elif child.scaler is not None:
        scaler = child.scaler
        onnx_model = fold_scaler(onnx_model, scale=scaler["scale"], offset=scaler["offset"])
    parity, _ = parity_of(
        onnx_model, golden, child.legacy, tolerance=options.parity_tolerance, where=where
    )
    files = [model.model, model.metadata, model.trained_df]
    if pipeline is not None:
        files.append(pipeline)
    return Converted(
        symbol=model.symbol,
        model_type=_model_type(model),
        onnx=onnx_model,
        columns=match.columns,
        spec=match.spec,
        classes=class_order(child.classes, options.classes, where=where),
        golden=golden,
        golden_window=window_of(None),
        parity=parity,
        golden_source=f"FreqAI training frame {model.trained_df.name} (last rows)",
        layout="freqai",
        source=model.folder,
        files=source_files(files),
        trusted_code=[f"pickle ({child.model_type}) in the sandboxed loader, pid {child.pid}"],
        timeframe=options.timeframe,
        horizon=options.horizon,
        params={
            "freqai_trained_at": model.trained_at,
            "freqai_labels": ",".join(str(label) for label in meta.get("label_list", [])),
            "original_class": child.model_type,
        },
    )
