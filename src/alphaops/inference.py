"""The one place alphaops runs ONNX models: a typed onnxruntime session with one output check.

Every model alphaops serves or judges (the registry's smoke test, the trainer's parity check,
the gates and backtests, replay and the live runtime) runs through :class:`OnnxSession`: one
options block (CPU, fixed thread counts, quiet logs), one check of what comes out (a 2-D
float array of ``[batch, classes]`` probabilities, finite), and one error class for a model
that fails at inference (:class:`~alphaops.core.errors.ModelFailedError`). A file that does
not load at all is an :class:`~alphaops.core.errors.IntegrityError` naming it.

Classes map to trading actions with :data:`ACTION_OF_CLASS`: ``SELL`` → -1, ``HOLD`` → 0,
``BUY`` → +1; for binary models ``LOSS`` → 0 (stay flat) and ``WIN`` → +1.

>>> from alphaops.registry.testing import logistic_regression_onnx
>>> import numpy as np
>>> model = logistic_regression_onnx(np.eye(2, dtype=np.float32), np.zeros(2, np.float32))
>>> session = OnnxSession(model, classes=2, where="demo")
>>> [round(float(p), 3) for p in session.run(np.array([[1.0, 0.0]], np.float32))[0]]
[0.731, 0.269]
>>> session.run(np.zeros((1, 3), dtype=np.float32))
Traceback (most recent call last):
...
alphaops.core.errors.ModelFailedError: demo failed at inference (...)...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from alphaops.core.errors import IntegrityError, ModelFailedError, UsageError

__all__ = [
    "ACTIONS",
    "ACTION_OF_CLASS",
    "BATCH_ROWS",
    "OnnxSession",
    "class_actions",
]

ACTIONS = ("SELL", "HOLD", "BUY")
"""Action names; an action value ``a`` in -1, 0, +1 is named ``ACTIONS[a + 1]``."""
ACTION_OF_CLASS: Mapping[str, int] = {"SELL": -1, "HOLD": 0, "BUY": 1, "LOSS": 0, "WIN": 1}
"""The trading action of each class name a label rule can produce."""
BATCH_ROWS = 4096
"""Rows per onnxruntime call in :meth:`OnnxSession.run_batched` (bounds memory)."""


def class_actions(
    classes: tuple[str, ...], actions: Mapping[str, int] | None = None, *, where: str = "model"
) -> npt.NDArray[np.int8]:
    """Return the action (-1, 0, +1) of each class, refusing classes with no action.

    >>> class_actions(("SELL", "HOLD", "BUY")).tolist()
    [-1, 0, 1]
    """
    table = ACTION_OF_CLASS if actions is None else actions
    unknown = [c for c in classes if c not in table]
    if unknown:
        raise UsageError(
            f"{where}: classes {unknown} have no trading action (known: {sorted(table)})",
            fix="train with SELL/HOLD/BUY or LOSS/WIN classes, or pass actions={class: -1|0|1}",
        )
    return np.array([table[c] for c in classes], dtype=np.int8)


class OnnxSession:
    """One onnxruntime CPU session that returns ``[batch, classes]`` float32 probabilities.

    ``classes`` is the number of probability columns the output must have (``None``: any);
    ``input_name`` defaults to the graph's only input; ``where`` names the model in errors
    (e.g. ``BTCUSDT/lightgbm/3``).
    """

    def __init__(
        self,
        model: bytes,
        *,
        classes: int | None = None,
        input_name: str | None = None,
        threads: int = 1,
        where: str = "model.onnx",
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise IntegrityError(
                f"{where}: onnxruntime cannot load model.onnx ({exc})",
                fix="re-export and re-publish the model",
                file="model.onnx",
            ) from exc
        self.where = where
        self.classes = classes
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self.input_name = input_name if input_name is not None else self.input_names[0]
        if self.input_name not in self.input_names:
            raise IntegrityError(
                f"{where}: model.onnx has inputs {list(self.input_names)}, none named "
                f"{self.input_name!r}",
                fix="re-export the model with the input name its manifest declares",
                file="model.onnx",
            )
        self._first_output = [self.output_names[0]]

    def run(self, batch: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Return the probabilities of one prepared batch (contiguous, the model's dtype)."""
        try:
            out = self._session.run(self._first_output, {self.input_name: batch})[0]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFailedError(
                f"{self.where} failed at inference ({type(exc).__name__}: {exc})",
                fix="check the input shape and dtype; if the model is at fault, roll back",
            ) from exc
        if (
            not isinstance(out, np.ndarray)
            or out.ndim != 2
            or (self.classes is not None and out.shape[1] != self.classes)
        ):
            shape = list(np.shape(out))
            raise ModelFailedError(
                f"{self.where} returned shape {shape}, expected [batch, {self.classes}]",
                fix="re-export the model with one probability output per class, or roll back",
            )
        return out if out.dtype == np.float32 else out.astype(np.float32)

    def run_batched(
        self, inputs: npt.NDArray[Any], *, dtype: npt.DTypeLike = np.float32
    ) -> npt.NDArray[np.float32]:
        """Return the probabilities of any number of rows, :data:`BATCH_ROWS` per call."""
        data = np.asarray(inputs)
        if len(data) == 0:
            return np.zeros((0, self.classes or 0), np.float32)
        parts = [
            self.run(np.ascontiguousarray(data[i : i + BATCH_ROWS], dtype=dtype))
            for i in range(0, len(data), BATCH_ROWS)
        ]
        return np.concatenate(parts)

    def __repr__(self) -> str:
        return f"OnnxSession({self.where}, input {self.input_name!r}, classes {self.classes})"
