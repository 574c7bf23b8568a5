"""Tree models on tabular features at time t: random forest, LightGBM and XGBoost.

All three weigh classes to balance them, report progress once per boosting round (or chunk of
trees), check the cancel token at the same points, train on one thread by default so that
results are bit for bit reproducible, and export to ONNX with a single ``probabilities``
output.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((300, 4)).astype(np.float32)
>>> y = (X[:, 0] > 0).astype(int)
>>> model = LightGBMModel(n_estimators=20).fit(X, y)
>>> model.classes_.tolist(), model.predict_proba(X[:2]).shape
([0, 1], (2, 2))
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from alphaops.core.errors import SpecError, TrainingError
from alphaops.training._base import Classifier, balanced_weights, encode_labels
from alphaops.training._control import CancelToken, ProgressCallback, notify
from alphaops.training.onnx_export import INPUT_NAME, probabilities_only

__all__ = ["LightGBMModel", "RandomForestModel", "XGBoostModel"]

FloatArray = npt.NDArray[np.float32]
# The libraries are imported where used: each costs up to seconds to import (skops pulls in
# torch through array-api-compat), and a worker training LightGBM needs none of the others.
# onnxmltools supports opset 15 for LightGBM/XGBoost; skl2onnx goes higher but one opset
# for all tree models keeps the runtime requirement simple.
_OPSET = 15
_ML_OPSET = 3
# Aim for a cancel check about every 50 ms while growing a forest chunk by chunk.
_CHUNK_SECONDS = 0.05


def _tabular(X: Any, name: str = "X") -> FloatArray:
    data = np.asarray(X, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] == 0:
        raise SpecError(
            f"{name} must be a non-empty 2-D (rows, features) array; got shape {data.shape}",
            fix="pass one row of features per sample; sequence windows go to lstm/patchtst",
        )
    return np.ascontiguousarray(data)


class _TabularModel(Classifier):
    def _prepare(
        self, X: Any, y: npt.ArrayLike, X_val: Any | None, y_val: npt.ArrayLike | None
    ) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray | None, npt.NDArray[np.int64] | None]:
        data = _tabular(X)
        classes, codes = encode_labels(y)
        if len(codes) != len(data):
            raise SpecError(
                f"X has {len(data)} rows but y has {len(codes)}", fix="pass one label per row"
            )
        self.classes_ = classes
        self.n_features_in_ = int(data.shape[1])
        if X_val is None or y_val is None:
            return data, codes, None, None
        val = _tabular(X_val, "X_val")
        self._check_features(val.shape[1])
        return data, codes, val, self._codes(y_val)

    def _codes(self, y: npt.ArrayLike) -> npt.NDArray[np.int64]:
        labels = np.asarray(y, dtype=np.int64)
        codes = np.searchsorted(self.classes_, labels)
        inside = (codes < len(self.classes_)) & (
            self.classes_[np.minimum(codes, len(self.classes_) - 1)] == labels
        )
        if not inside.all():
            raise TrainingError(
                f"validation labels {sorted(set(labels[~inside].tolist()))} never occur in the "
                f"training labels {self.classes_.tolist()}",
                fix="use a longer training window so that every class occurs in it",
            )
        return codes.astype(np.int64)

    def _ml_input(self) -> list[tuple[str, Any]]:
        from onnxmltools.convert.common.data_types import FloatTensorType

        return [(INPUT_NAME, FloatTensorType([None, self.n_features_in_]))]


class RandomForestModel(_TabularModel):
    """A scikit-learn random forest grown in chunks of trees, checking the token between."""

    family = "random_forest"

    def __init__(
        self,
        n_estimators: int = 200,
        max_depth: int | None = 8,
        min_samples_leaf: int = 20,
        max_features: float | str = "sqrt",
        class_weight: str | None = "balanced",
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self,
        X: Any,
        y: npt.ArrayLike,
        *,
        X_val: Any | None = None,
        y_val: npt.ArrayLike | None = None,
        callbacks: Sequence[ProgressCallback] = (),
        cancel: CancelToken | None = None,
    ) -> Self:
        """Grow ``n_estimators`` trees, a chunk at a time (about 50 ms each); return self."""
        from sklearn.ensemble import RandomForestClassifier

        data, codes, _, _ = self._prepare(X, y, X_val, y_val)
        weights = None
        if self.class_weight == "balanced":
            weights = balanced_weights(codes, len(self.classes_))[codes]
        # warm_start adds trees to the same forest; the seeds of the trees do not depend on
        # the chunking, so the forest equals one grown in a single call.
        forest = RandomForestClassifier(
            n_estimators=1,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            warm_start=True,
        )
        built, chunk = 0, 1
        while built < self.n_estimators:
            if cancel is not None:
                cancel.raise_if_cancelled(f"tree {built} of {self.n_estimators}")
            target = min(self.n_estimators, built + chunk)
            forest.set_params(n_estimators=target)
            started = time.perf_counter()
            forest.fit(data, codes, sample_weight=weights)
            per_tree = (time.perf_counter() - started) / (target - built)
            built = target
            chunk = max(1, int(_CHUNK_SECONDS / max(per_tree, 1e-6)))
            notify(callbacks, built, self.n_estimators, {"trees": float(built)})
        self.model_ = forest
        return self

    def predict_proba(self, X: Any) -> FloatArray:
        """Return class probabilities (float32) in ``classes_`` order."""
        self._check_fitted()
        data = _tabular(X)
        self._check_features(data.shape[1])
        return np.asarray(self.model_.predict_proba(data), dtype=np.float32)

    def to_onnx(self) -> bytes:
        """Convert with skl2onnx, without ZipMap, keeping only ``probabilities``."""
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        self._check_fitted()
        proto = convert_sklearn(
            self.model_,
            initial_types=[(INPUT_NAME, FloatTensorType([None, self.n_features_in_]))],
            options={id(self.model_): {"zipmap": False}},
            target_opset={"": _OPSET, "ai.onnx.ml": _ML_OPSET},
        )
        return probabilities_only(proto)

    def native_files(self) -> dict[str, bytes]:
        """Return the forest as skops (pickle-free) bytes: ``model.skops``."""
        import skops.io

        self._check_fitted()
        return {"model.skops": skops.io.dumps(self.model_)}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        """Return scikit-learn, skl2onnx and skops versions."""
        import skl2onnx
        import sklearn
        import skops

        return {
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "skops": skops.__version__,
        }


class LightGBMModel(_TabularModel):
    """Gradient-boosted trees with LightGBM; early stopping on validation log loss."""

    family = "lightgbm"

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        class_weight: str | None = "balanced",
        early_stopping_rounds: int = 30,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.class_weight = class_weight
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self,
        X: Any,
        y: npt.ArrayLike,
        *,
        X_val: Any | None = None,
        y_val: npt.ArrayLike | None = None,
        callbacks: Sequence[ProgressCallback] = (),
        cancel: CancelToken | None = None,
    ) -> Self:
        """Boost up to ``n_estimators`` rounds, stopping early on validation loss; return self."""
        import lightgbm as lgb

        data, codes, val, val_codes = self._prepare(X, y, X_val, y_val)
        k = len(self.classes_)
        weights = balanced_weights(codes, k) if self.class_weight == "balanced" else np.ones(k)
        params: dict[str, Any] = {
            "objective": "binary" if k == 2 else "multiclass",
            "num_class": 1 if k == 2 else k,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_child_samples": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": self.random_state,
            "num_threads": self.n_jobs,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        train_set = lgb.Dataset(data, codes, weight=weights[codes], free_raw_data=True)
        valid_sets, hooks = [], [self._hook(callbacks, cancel)]
        if val is not None and val_codes is not None:
            valid_sets.append(
                lgb.Dataset(val, val_codes, weight=weights[val_codes], reference=train_set)
            )
            if self.early_stopping_rounds > 0:
                hooks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            valid_names=["val"][: len(valid_sets)],
            callbacks=hooks,
        )
        best = booster.best_iteration if booster.best_iteration > 0 else None
        # Keep exactly the best rounds, so native text, ONNX and predict_proba agree.
        text = _float32_thresholds(booster.model_to_string(num_iteration=best))
        self.booster_ = lgb.Booster(model_str=text)
        self.best_iteration_ = int(self.booster_.current_iteration())
        return self

    def _hook(self, callbacks: Sequence[ProgressCallback], cancel: CancelToken | None) -> Any:
        total = self.n_estimators

        def hook(env: Any) -> None:
            if cancel is not None:
                cancel.raise_if_cancelled(f"boosting round {env.iteration + 1} of {total}")
            metrics = {
                f"val_{name}": float(value)
                for _, name, value, *_ in env.evaluation_result_list or ()
            }
            notify(callbacks, env.iteration + 1, total, metrics)

        hook.order = 5  # type: ignore[attr-defined]  # before early stopping (order 30)
        return hook

    def predict_proba(self, X: Any) -> FloatArray:
        """Return class probabilities (float32) in ``classes_`` order."""
        self._check_fitted()
        data = _tabular(X)
        self._check_features(data.shape[1])
        raw = np.asarray(self.booster_.predict(data), dtype=np.float64)
        probs = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return probs.astype(np.float32)

    def to_onnx(self) -> bytes:
        """Convert with onnxmltools, without ZipMap, keeping only ``probabilities``."""
        import onnxmltools

        self._check_fitted()
        proto = onnxmltools.convert_lightgbm(
            self.booster_, initial_types=self._ml_input(), zipmap=False, target_opset=_OPSET
        )
        return probabilities_only(proto)

    def native_files(self) -> dict[str, bytes]:
        """Return the LightGBM text model: ``model.txt``."""
        self._check_fitted()
        return {"model.txt": self.booster_.model_to_string().encode()}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        """Return LightGBM and onnxmltools versions."""
        import lightgbm as lgb
        import onnxmltools

        return {"lightgbm": lgb.__version__, "onnxmltools": onnxmltools.__version__}


def _float32_thresholds(model_text: str) -> str:
    """Round every split threshold down to a float32 value that splits float32 data the same.

    LightGBM stores thresholds as doubles (midpoints between feature values); ONNX tree
    ensembles hold float32. A double threshold rounded to the *nearest* float32 can equal a
    data value and flip ``x <= t``, which changed probabilities by 5e-3 on real data. For a
    float32 ``x``, ``x <= t`` holds exactly when ``x <= the largest float32 <= t``, so using
    that value keeps every native decision and makes the ONNX graph exact.

    >>> _float32_thresholds("threshold=0.10000000000000001 1.0000000180025095e-35")
    'threshold=0.09999999403953552 1.0000000180025095e-35'
    """
    # The header's tree_sizes holds byte offsets that the new text invalidates; LightGBM
    # parses the trees one after another without it.
    lines = [line for line in model_text.split("\n") if not line.startswith("tree_sizes=")]
    for i, line in enumerate(lines):
        if not line.startswith("threshold="):
            continue
        values = np.array(line[len("threshold=") :].split(), dtype=np.float64)
        nearest = values.astype(np.float32)
        down = np.where(
            nearest.astype(np.float64) > values,
            np.nextafter(nearest, np.float32(-np.inf)),
            nearest,
        )
        lines[i] = "threshold=" + " ".join(repr(float(v)) for v in down)
    return "\n".join(lines)


def _xgboost_hook(
    total: int, callbacks: Sequence[ProgressCallback], cancel: CancelToken | None
) -> Any:
    import xgboost as xgb

    class Hook(xgb.callback.TrainingCallback):
        def after_iteration(
            self, model: Any, epoch: int, evals_log: Mapping[str, Mapping[str, Any]]
        ) -> bool:
            if cancel is not None:
                cancel.raise_if_cancelled(f"boosting round {epoch + 1} of {total}")
            metrics = {
                f"{data}_{name}": float(values[-1])
                for data, by_metric in evals_log.items()
                for name, values in by_metric.items()
            }
            notify(callbacks, epoch + 1, total, metrics)
            return False

    return Hook()


class XGBoostModel(_TabularModel):
    """Gradient-boosted trees with XGBoost (``hist``); early stopping on validation loss."""

    family = "xgboost"

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        max_depth: int = 6,
        min_child_weight: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        class_weight: str | None = "balanced",
        early_stopping_rounds: int = 30,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.class_weight = class_weight
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self,
        X: Any,
        y: npt.ArrayLike,
        *,
        X_val: Any | None = None,
        y_val: npt.ArrayLike | None = None,
        callbacks: Sequence[ProgressCallback] = (),
        cancel: CancelToken | None = None,
    ) -> Self:
        """Boost up to ``n_estimators`` rounds, stopping early on validation loss; return self."""
        import xgboost as xgb

        data, codes, val, val_codes = self._prepare(X, y, X_val, y_val)
        k = len(self.classes_)
        weights = balanced_weights(codes, k) if self.class_weight == "balanced" else np.ones(k)
        has_val = val is not None and val_codes is not None
        model = xgb.XGBClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            tree_method="hist",
            eval_metric="logloss" if k == 2 else "mlogloss",
            early_stopping_rounds=self.early_stopping_rounds if has_val else None,
            callbacks=[_xgboost_hook(self.n_estimators, callbacks, cancel)],
        )
        eval_set = [(val, val_codes)] if has_val else None
        sample_weight_eval_set = [weights[val_codes]] if val_codes is not None else None
        model.fit(
            data,
            codes,
            sample_weight=weights[codes],
            eval_set=eval_set,
            sample_weight_eval_set=sample_weight_eval_set if has_val else None,
            verbose=False,
        )
        # The hook holds the caller's token and callbacks; drop them from the fitted model.
        model.set_params(callbacks=None)
        self.model_ = model
        return self

    def predict_proba(self, X: Any) -> FloatArray:
        """Return class probabilities (float32) in ``classes_`` order."""
        self._check_fitted()
        data = _tabular(X)
        self._check_features(data.shape[1])
        return np.asarray(self.model_.predict_proba(data), dtype=np.float32)

    def to_onnx(self) -> bytes:
        """Convert with onnxmltools, keeping only ``probabilities``."""
        import onnxmltools

        self._check_fitted()
        proto = onnxmltools.convert_xgboost(
            self.model_, initial_types=self._ml_input(), target_opset=_OPSET
        )
        return probabilities_only(proto)

    def native_files(self) -> dict[str, bytes]:
        """Return the XGBoost JSON model: ``model.json``."""
        self._check_fitted()
        return {"model.json": bytes(self.model_.get_booster().save_raw("json"))}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        """Return XGBoost and onnxmltools versions."""
        import onnxmltools
        import xgboost as xgb

        return {"xgboost": xgb.__version__, "onnxmltools": onnxmltools.__version__}
