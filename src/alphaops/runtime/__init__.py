"""The live runtime a trading bot imports: hot-swapped, verified ONNX models.

It needs only NumPy, onnxruntime and the registry client (never training, gates or an ML
framework; an import-linter contract enforces it). Start with :class:`LivePredictor`.
"""

from alphaops.runtime._model import (
    IncompatibleModelError,
    LoadedModel,
    ModelFailedError,
    load_model,
)
from alphaops.runtime.live import LivePredictor, Prediction, Role, Routing, RuntimeEvent
from alphaops.scoring import Bar, Rows, bars_of

__all__ = [
    "Bar",
    "IncompatibleModelError",
    "LivePredictor",
    "LoadedModel",
    "ModelFailedError",
    "Prediction",
    "Role",
    "Routing",
    "Rows",
    "RuntimeEvent",
    "bars_of",
    "load_model",
]
