"""Import flat ``<name>.onnx`` + ``<name>_metadata.json`` models (no pickle involved).

The metadata names the features (``features``/``feature_names``/``columns``), the classes
(``classes``/``class_order``/``labels``), optionally a window length
(``lookback``/``sequence_length``) and a standard scaler as numbers
(``scaler: {"mean": [...], "scale": [...]}``, applied as ``(x - mean) / scale``), which is
folded into the graph. Parity compares the original graph (scaler applied in numpy) with the
rewritten one on the golden batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from alphaops.core.errors import IncompatibleModelError, IntegrityError
from alphaops.importing._discover import Found
from alphaops.importing._features import match_features
from alphaops.importing._legacy import GoldenData, ImportOptions, golden_batch
from alphaops.importing._onnx import fold_scaler, one_probability_output, parity_of
from alphaops.importing._publish import Converted, class_order, source_files, window_of
from alphaops.inference import OnnxSession

__all__ = ["FlatMetadata", "convert_onnx", "read_metadata", "windows"]


@dataclass(frozen=True)
class FlatMetadata:
    """What a ``_metadata.json`` says about its model."""

    features: tuple[str, ...]
    classes: tuple[str, ...] | None
    lookback: int | None
    mean: tuple[float, ...] | None
    scale: tuple[float, ...] | None
    timeframe: str | None


def _first(data: dict[str, Any], *keys: str) -> Any:
    return next((data[k] for k in keys if k in data), None)


def read_metadata(path: Path) -> FlatMetadata:
    """Read ``_metadata.json``; raise ``IntegrityError`` naming the file when it is unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"{path} is not valid JSON ({exc})", fix="restore the file", file=str(path)
        ) from exc
    if not isinstance(data, dict):
        raise IntegrityError(f"{path} is not a JSON object", fix="restore it", file=str(path))
    features = _first(data, "features", "feature_names", "feature_columns", "columns")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise IntegrityError(
            f"{path} does not list the feature columns (features: [...])",
            fix="add a 'features' list of column names in model input order",
            file=str(path),
        )
    classes = _first(data, "classes", "class_order", "labels")
    lookback = _first(data, "lookback", "sequence_length", "seq_len", "window")
    raw_scaler = data.get("scaler")
    scaler: dict[str, Any] = raw_scaler if isinstance(raw_scaler, dict) else {}
    mean, scale = _first(scaler, "mean", "center"), _first(scaler, "scale", "std")
    return FlatMetadata(
        features=tuple(features),
        classes=None if classes is None else tuple(str(c) for c in classes),
        lookback=None if lookback is None else int(lookback),
        mean=None if mean is None else tuple(float(v) for v in mean),
        scale=None if scale is None else tuple(float(v) for v in scale),
        timeframe=None if data.get("timeframe") is None else str(data["timeframe"]),
    )


def windows(rows: npt.NDArray[Any], lookback: int) -> npt.NDArray[np.float64]:
    """Return every window of ``lookback`` consecutive rows, ``(n - lookback + 1, T, F)``."""
    view = np.lib.stride_tricks.sliding_window_view(rows, lookback, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1), dtype=np.float64)


def _original_scores(
    model: bytes, output: str | None, batch: npt.NDArray[Any], where: str
) -> tuple[npt.NDArray[np.float64], str]:
    proto = onnx.load_from_string(model)
    names = [o.name for o in proto.graph.output]
    chosen = output or next((n for n in names if "prob" in n.lower()), names[-1])
    keep = [o for o in proto.graph.output if o.name == chosen]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    session = OnnxSession(proto.SerializeToString(), where=where)
    return session.run_batched(batch).astype(np.float64), chosen


def _affine(meta: FlatMetadata, n: int, where: str) -> tuple[list[float], list[float]] | None:
    if meta.mean is None and meta.scale is None:
        return None
    mean = np.asarray(meta.mean or [0.0] * n, dtype=np.float64)
    scale = np.asarray(meta.scale or [1.0] * n, dtype=np.float64)
    if mean.shape != (n,) or scale.shape != (n,) or not np.all(scale != 0):
        raise IncompatibleModelError(
            f"{where}: the scaler has {mean.size} means and {scale.size} scales for {n} features "
            "(or a zero scale)",
            fix="store one mean and one non-zero scale per feature",
        )
    return (1.0 / scale).tolist(), (-mean / scale).tolist()


def convert_onnx(found: Found, options: ImportOptions, data: GoldenData) -> Converted:
    """Rewrite a flat ONNX model for alphaops (one input, probabilities, scaler folded)."""
    where = str(found.model)
    if found.metadata is None:
        raise IncompatibleModelError(
            f"{where} has no {found.model.stem}_metadata.json naming its features",
            fix="write the metadata next to the model (features, classes)",
        )
    meta = read_metadata(found.metadata)
    match = match_features(meta.features, mode=options.features, where=where)
    lookback = meta.lookback or options.lookback
    need = options.golden_rows + (lookback or 1) - 1
    golden_options = options.model_copy(update={"golden_rows": need})
    if meta.timeframe is not None:
        golden_options = golden_options.model_copy(update={"timeframe": meta.timeframe})
    rows, frame, source = golden_batch(
        match, symbol=found.symbol, options=golden_options, data=data, where=where
    )
    batch = rows if lookback is None else windows(rows, lookback)
    affine = _affine(meta, len(match.columns), where)
    original = found.model.read_bytes()
    scaled = batch if affine is None else batch * np.asarray(affine[0]) + np.asarray(affine[1])
    legacy, output = _original_scores(original, None, scaled, where)
    model = one_probability_output(original, output, where=where)
    if affine is not None:
        model = fold_scaler(model, scale=affine[0], offset=affine[1])
    golden = np.ascontiguousarray(batch, dtype=np.float32)
    parity, _ = parity_of(model, golden, legacy, tolerance=options.parity_tolerance, where=where)
    classes = meta.classes or tuple(str(i) for i in range(legacy.shape[1]))
    return Converted(
        symbol=found.symbol,
        model_type=found.model_type,
        onnx=model,
        columns=match.columns,
        spec=match.spec,
        classes=class_order(classes, options.classes, where=where),
        golden=golden,
        golden_window=window_of(frame),
        parity=parity,
        golden_source=source,
        layout=found.layout,
        source=found.model,
        files=source_files([found.model, *found.sidecars]),
        trusted_code=[],
        timeframe=golden_options.timeframe,
        horizon=options.horizon,
        lookback=lookback,
        params=_version_params(found),
    )


def _version_params(found: Found) -> dict[str, str | bool]:
    params: dict[str, str | bool] = {}
    if found.version is not None:
        params["source_version"] = found.version
        params["source_latest"] = found.latest
    return params
