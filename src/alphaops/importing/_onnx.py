"""Finish an imported ONNX graph: one ``probabilities`` output, the scaler folded in, parity.

>>> import numpy as np
>>> from alphaops.registry.testing import logistic_regression_onnx
>>> model = logistic_regression_onnx(np.eye(2, dtype=np.float32), np.zeros(2, np.float32))
>>> folded = fold_scaler(model, scale=[2.0, 2.0], offset=[0.0, 0.0])
>>> x = np.array([[0.5, 0.0]], np.float32)
>>> bool(np.allclose(score(folded, x, classes=2), score(model, 2 * x, classes=2)))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from alphaops.core.errors import AlphaOpsError, IntegrityError
from alphaops.inference import OnnxSession
from alphaops.training.onnx_export import (
    INPUT_NAME,
    ParityReport,
    check_parity,
    probabilities_only,
)

__all__ = ["fold_scaler", "one_probability_output", "parity_of", "score"]


def _load(model: bytes, where: str) -> onnx.ModelProto:
    try:
        proto = onnx.load_from_string(model)
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise IntegrityError(
            f"{where} is not a valid ONNX model ({exc})",
            fix="restore the file or re-export the model",
            file=where,
        ) from exc
    return proto


def one_probability_output(model: bytes, output: str | None, *, where: str) -> bytes:
    """Keep only the probability output, renamed ``probabilities``, and the input ``input``."""
    proto = _load(model, where)
    graph = proto.graph
    inputs = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(inputs) != 1:
        raise IntegrityError(
            f"{where} has inputs {inputs}; alphaops serves models with one input",
            fix="export the model with one float input of shape [batch, features]",
            file=where,
        )
    if inputs[0] != INPUT_NAME:
        _rename_value(graph, inputs[0], INPUT_NAME)
    names = [o.name for o in graph.output]
    if output is None:
        output = next((n for n in names if "prob" in n.lower()), names[-1] if names else None)
    if output is None:
        raise IntegrityError(f"{where} has no outputs", fix="re-export the model", file=where)
    try:
        return probabilities_only(proto, probabilities=output)
    except AlphaOpsError as exc:
        raise IntegrityError(str(exc.message), fix=exc.fix, file=where) from exc


def _rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    for value in graph.input:
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
    for value in graph.output:
        if value.name == old:
            value.name = new


def fold_scaler(model: bytes, *, scale: Sequence[float], offset: Sequence[float]) -> bytes:
    """Prepend ``x * scale + offset`` to the graph, so it takes raw (unscaled) features."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    scaled = "alphaops_scaled_input"
    for node in graph.node:
        node.input[:] = [scaled if name == INPUT_NAME else name for name in node.input]
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(scale, dtype=np.float32), "alphaops_scale"),
            numpy_helper.from_array(np.asarray(offset, dtype=np.float32), "alphaops_offset"),
        ]
    )
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, "alphaops_scale"], ["alphaops_times_scale"]),
        helper.make_node("Add", ["alphaops_times_scale", "alphaops_offset"], [scaled]),
    ]
    for position, node in enumerate(nodes):
        graph.node.insert(position, node)
    return bytes(proto.SerializeToString())


def score(model: bytes, batch: npt.NDArray[Any], *, classes: int) -> npt.NDArray[np.float32]:
    """Return the model's probabilities for ``batch`` through alphaops's ONNX session."""
    session = OnnxSession(model, classes=classes, input_name=INPUT_NAME, where="imported model")
    return session.run_batched(batch, dtype=np.float32)


def parity_of(
    model: bytes,
    golden: npt.NDArray[Any],
    legacy: npt.NDArray[Any],
    *,
    tolerance: float,
    where: str,
) -> tuple[ParityReport, npt.NDArray[np.float32]]:
    """Score ``golden`` with the ONNX model; raise ``ParityError`` beyond ``tolerance``."""
    got = score(model, golden, classes=int(legacy.shape[1]))
    return check_parity(legacy, got, tolerance=tolerance, family=where), got
