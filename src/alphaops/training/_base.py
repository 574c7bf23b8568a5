"""The contract every model family follows (scikit-learn style) and helpers they share.

* ``__init__`` only stores its keyword parameters; :meth:`Classifier.get_params` reads them
  back, so a model can be rebuilt from its manifest.
* ``fit(X, y, ...)`` returns ``self``; learned state ends in ``_`` (``classes_``,
  ``n_features_in_`` …).
* ``predict_proba`` / ``predict`` / ``to_onnx`` / ``native_files`` before ``fit`` raise
  :class:`~alphaops.core.errors.NotFittedError`.
* ``to_onnx()`` returns a graph with one input ``input`` (float32) and one output
  ``probabilities`` of shape ``[batch, n_classes]`` in ``classes_`` order, so one predictor
  scores every family. ``native_files()`` returns pickle-free artifacts.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

from alphaops.core.errors import NotFittedError, SpecError, TrainingError
from alphaops.training._control import CancelToken, ProgressCallback

__all__ = [
    "Classifier",
    "InputKind",
    "ParamValue",
    "balanced_weights",
    "encode_labels",
]

InputKind = Literal["tabular", "sequence"]
ParamValue = str | int | float | bool | None
FloatArray = npt.NDArray[np.float32]


class Classifier(ABC):
    """Base of the five model families; see the module docstring for the contract."""

    #: Registry model type, e.g. ``"lightgbm"``.
    family: ClassVar[str] = "classifier"
    #: ``"tabular"``: ``X`` is ``(N, F)``; ``"sequence"``: ``X`` is ``(N, T, F)`` windows.
    input_kind: ClassVar[InputKind] = "tabular"

    classes_: npt.NDArray[np.int64]
    n_features_in_: int

    @abstractmethod
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
        """Learn from ``X``/``y`` (validation data is used for early stopping); return self."""

    @abstractmethod
    def predict_proba(self, X: Any) -> FloatArray:
        """Return float32 class probabilities ``(N, n_classes)`` in ``classes_`` order."""

    def predict(self, X: Any) -> npt.NDArray[np.int64]:
        """Return the most probable class of each row."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)], dtype=np.int64)

    @abstractmethod
    def to_onnx(self) -> bytes:
        """Return the serialised ONNX model (``input`` → ``probabilities``)."""

    @abstractmethod
    def native_files(self) -> dict[str, bytes]:
        """Return pickle-free native artifacts by file name (for ``native/`` in a bundle)."""

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        """Return the versions of the libraries this family trains and exports with."""
        return {}

    # -- the scikit-learn parameter protocol ---------------------------------------------

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """Return the names of the keyword parameters of ``__init__``."""
        signature = inspect.signature(cls.__init__)
        return tuple(p.name for p in signature.parameters.values() if p.name != "self")

    def get_params(self) -> dict[str, ParamValue]:
        """Return the constructor parameters as stored by ``__init__``."""
        return {name: getattr(self, name) for name in self.param_names()}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        """Build a model from parameters, refusing unknown names with a :class:`SpecError`."""
        unknown = sorted(set(params) - set(cls.param_names()))
        if unknown:
            raise SpecError(
                f"unknown parameter(s) {unknown} for model {cls.family!r}",
                fix=f"use some of {list(cls.param_names())}",
                unknown=unknown,
            )
        return cls(**dict(params))

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({changed})"

    # -- helpers for subclasses ----------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet",
                fix="call fit(X, y) before predict_proba, to_onnx or native_files",
            )

    def _check_features(self, n_features: int) -> None:
        if n_features != self.n_features_in_:
            raise SpecError(
                f"X has {n_features} features, but {type(self).__name__} was fitted with "
                f"{self.n_features_in_}",
                fix="pass the same feature columns, in the same order, as at fit",
            )


def encode_labels(y: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return ``(classes, codes)``: the sorted distinct labels and each label's index.

    >>> classes, codes = encode_labels([2, 0, 2, 1])
    >>> classes.tolist(), codes.tolist()
    ([0, 1, 2], [2, 0, 2, 1])
    """
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iub":
        raise SpecError(
            f"y must be a non-empty 1-D array of integer class labels; got shape "
            f"{labels.shape}, dtype {labels.dtype}",
            fix="pass class indices, e.g. LabelResult.frame['label']",
        )
    classes, codes = np.unique(labels.astype(np.int64), return_inverse=True)
    if classes.size < 2:
        raise TrainingError(
            f"y holds a single class ({int(classes[0])}); a classifier needs at least two",
            fix="use more history or a label threshold that produces both outcomes",
        )
    return classes.astype(np.int64), codes.astype(np.int64)


def balanced_weights(codes: npt.NDArray[np.int64], n_classes: int) -> npt.NDArray[np.float64]:
    """Return per-class weights ``n / (k * count)`` (scikit-learn's ``"balanced"``).

    >>> balanced_weights(np.array([0, 0, 0, 1]), 2).tolist()
    [0.6666666666666666, 2.0]
    """
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    return codes.size / (n_classes * np.maximum(counts, 1.0))
