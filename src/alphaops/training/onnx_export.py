"""ONNX helpers shared by the families: one output of probabilities, scoring, parity.

Every exported graph has one float32 input ``input`` and one float32 output
``probabilities`` ``[batch, n_classes]``. Converters that add a ``label`` output (skl2onnx,
onnxmltools) have it removed, so one predictor scores every family.

>>> import numpy as np
>>> probs = np.array([[0.25, 0.75]], dtype=np.float32)
>>> parity_report(probs, probs + np.float32(1e-6), tolerance=1e-4).passed
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from alphaops.core.errors import IntegrityError, ModelFailedError, ParityError, TrainingError
from alphaops.inference import OnnxSession

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "OnnxScorer",
    "ParityReport",
    "check_parity",
    "parity_report",
    "probabilities_only",
]

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


def probabilities_only(model: onnx.ModelProto, *, probabilities: str = OUTPUT_NAME) -> bytes:
    """Keep only the probability output of ``model`` (named ``probabilities``); serialise it."""
    graph = model.graph
    names = [o.name for o in graph.output]
    if probabilities not in names:
        raise TrainingError(
            f"the converted ONNX graph has outputs {names}, none named {probabilities!r}",
            fix="report this converter version; alphaops expects a probability output",
        )
    keep = [o for o in graph.output if o.name == probabilities]
    del graph.output[:]
    graph.output.extend(keep)
    if probabilities != OUTPUT_NAME:
        graph.node.append(onnx.helper.make_node("Identity", [probabilities], [OUTPUT_NAME]))
        graph.output[0].name = OUTPUT_NAME
    return bytes(model.SerializeToString())


class OnnxScorer:
    """An exported model's session (see :class:`~alphaops.inference.OnnxSession`), checked to
    have one input ``input`` and one output ``probabilities``; scores in batches."""

    def __init__(self, model: bytes, *, threads: int = 1) -> None:
        try:
            self.session = OnnxSession(model, threads=threads, where="the exported model")
        except IntegrityError as exc:
            raise TrainingError(str(exc), fix="check the exporter and opset versions") from exc
        inputs, outputs = list(self.session.input_names), list(self.session.output_names)
        if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
            raise TrainingError(
                f"the exported model has inputs {inputs} and outputs {outputs}",
                fix=f"export one input {INPUT_NAME!r} and one output {OUTPUT_NAME!r}",
            )

    def predict_proba(self, X: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Return the model's probabilities for ``X`` (cast to float32)."""
        try:
            return self.session.run_batched(np.asarray(X), dtype=np.float32)
        except ModelFailedError as exc:
            raise TrainingError(str(exc), fix="check the exporter and opset versions") from exc


@dataclass(frozen=True)
class ParityReport:
    """Native vs ONNX probabilities on the validation set."""

    max_abs_diff: float
    rows: int
    tolerance: float

    @property
    def passed(self) -> bool:
        """Return whether the largest difference is within the tolerance."""
        return self.max_abs_diff <= self.tolerance


def parity_report(
    native: npt.NDArray[Any], onnx_probs: npt.NDArray[Any], *, tolerance: float
) -> ParityReport:
    """Compare two probability arrays; NaN or a shape mismatch counts as infinite difference."""
    if native.shape != onnx_probs.shape:
        return ParityReport(float("inf"), int(native.shape[0]), tolerance)
    diff = np.abs(native.astype(np.float64) - onnx_probs.astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    return ParityReport(worst if np.isfinite(worst) else float("inf"), len(diff), tolerance)


def check_parity(
    native: npt.NDArray[Any], onnx_probs: npt.NDArray[Any], *, tolerance: float, family: str
) -> ParityReport:
    """Return the parity report, or raise :class:`ParityError` when it exceeds ``tolerance``."""
    report = parity_report(native, onnx_probs, tolerance=tolerance)
    if not report.passed:
        raise ParityError(
            f"{family}: ONNX probabilities differ from the native model by up to "
            f"{report.max_abs_diff:.3g} on {report.rows} validation rows (tolerance "
            f"{tolerance:g}); nothing was published",
            fix="raise parity_tolerance only if the difference is understood, or report the "
            "exporter bug",
            max_abs_diff=report.max_abs_diff,
            tolerance=tolerance,
        )
    return report
