"""Turn what a bot passes (feature rows, a mapping, a frame, or candles) into a model batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaops.core.errors import DataValidationError, InsufficientDataError, UsageError
from alphaops.data.candles import Candles
from alphaops.runtime._model import LoadedModel

__all__ = ["Rows", "batch_from_candles", "batch_from_rows"]

Rows = npt.NDArray[Any] | Mapping[str, float] | pd.DataFrame
"""Ready feature rows: an array ``(F,)``/``(n, F)`` (tabular) or ``(T, F)``/``(n, T, F)``
(sequence), a ``{name: value}`` mapping for one tabular row, or a frame whose columns are the
feature names in model order."""


def batch_from_rows(model: LoadedModel, rows: Rows) -> npt.NDArray[Any]:
    """Validate ``rows`` against ``model``'s features and return a contiguous batch."""
    if isinstance(rows, np.ndarray):
        array = rows
    elif isinstance(rows, pd.DataFrame):
        columns = tuple(str(c) for c in rows.columns)
        if columns != model.feature_names:
            raise DataValidationError(
                f"feature columns {list(columns)} differ from {model.ref}'s inputs "
                f"{list(model.feature_names)} (names and order must match)",
                fix="select the columns in the model's order: frame[list(names)]",
            )
        array = rows.to_numpy()
    elif isinstance(rows, Mapping):
        missing = [n for n in model.feature_names if n not in rows]
        extra = [n for n in rows if n not in model.feature_names]
        if missing or extra:
            raise DataValidationError(
                f"feature names differ from {model.ref}'s inputs: missing {missing}, "
                f"unexpected {extra}",
                fix=f"pass exactly {list(model.feature_names)}",
            )
        array = np.array([[rows[n] for n in model.feature_names]])
    else:
        raise UsageError(
            f"cannot predict from {type(rows).__name__}",
            fix="pass a NumPy array, a {name: value} mapping, a DataFrame or Candles",
        )
    if array.dtype.kind not in "fiu":
        raise DataValidationError(
            f"feature rows have dtype {array.dtype}, expected numbers",
            fix="convert the features to float32 or float64",
        )
    shape = model.input_shape
    if array.shape == shape:
        array = array[np.newaxis]
    if array.shape[1:] != shape:
        raise DataValidationError(
            f"feature rows have shape {list(array.shape)}, {model.ref} expects "
            f"{list(shape)} per row ({model.kind}, features {list(model.feature_names)})",
            fix=f"pass rows of shape {list(shape)} or a batch [n, *{list(shape)}]",
        )
    batch = np.ascontiguousarray(array, dtype=model.dtype)
    if not np.isfinite(batch).all():
        bad = sorted({model.feature_names[int(i)] for i in np.argwhere(~np.isfinite(batch))[:, -1]})
        raise DataValidationError(
            f"feature rows hold NaN or infinite values in {bad}",
            fix="wait for the features to warm up, or repair the input candles",
        )
    return batch


def batch_from_candles(model: LoadedModel, candles: Candles) -> npt.NDArray[Any]:
    """Compute ``model``'s features on the latest ``candles`` and return a one-row batch."""
    if model.pipeline is None:
        raise UsageError(
            f"{model.ref} carries no feature spec (no reports/training.json), so it cannot "
            "compute its features from candles",
            fix="pass ready feature rows, or pass features=FeaturePipeline(spec) to the predictor",
        )
    need = int(model.pipeline.warmup_bars) + model.lookback - 1
    if len(candles) < need:
        raise InsufficientDataError(
            f"{model.ref} needs the last {need} candles ({model.pipeline.warmup_bars} bars of "
            f"feature warm-up + lookback {model.lookback} - 1), got {len(candles)}",
            fix=f"keep at least {need} recent candles in the buffer before predicting",
        )
    frame = model.pipeline.transform(candles.tail(need))
    rows = frame[list(model.feature_names)].to_numpy(np.float64)[-model.lookback :]
    if model.kind == "tabular":
        rows = rows[0]
    return batch_from_rows(model, rows)
