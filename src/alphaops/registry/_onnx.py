"""A typed wrapper over onnxruntime (which ships no type information)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

__all__ = ["run_onnx"]


def run_onnx(model: bytes, input_name: str, inputs: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Run ``model`` on CPU with ``inputs`` fed to ``input_name``; return its first output."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {input_name: inputs})
    return np.asarray(outputs[0])
