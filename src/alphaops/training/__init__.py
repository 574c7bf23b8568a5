"""Training: five model families behind one contract, exported to ONNX with a parity check,
run as cancellable jobs with progress, on one machine or on Ray, published as candidates.

>>> from alphaops.training import MODEL_FAMILIES
>>> MODEL_FAMILIES
('random_forest', 'lightgbm', 'xgboost', 'lstm', 'patchtst')
"""

from alphaops.training._base import Classifier, InputKind, balanced_weights, encode_labels
from alphaops.training._control import (
    CancelToken,
    ProgressBridge,
    ProgressCallback,
    ProgressUpdate,
)
from alphaops.training.data import PreparedData, prepare_data, purged_holdout
from alphaops.training.executor import (
    TrainedBundle,
    code_version,
    publish_trained,
    train_job,
    train_job_async,
    validation_metrics,
    write_trained_bundle,
)
from alphaops.training.job import (
    MODEL_FAMILIES,
    ModelFamily,
    SplitPolicy,
    TrainingJob,
    model_class,
)
from alphaops.training.onnx_export import OnnxScorer, ParityReport, check_parity

__all__ = [
    "MODEL_FAMILIES",
    "CancelToken",
    "Classifier",
    "InputKind",
    "ModelFamily",
    "OnnxScorer",
    "ParityReport",
    "PreparedData",
    "ProgressBridge",
    "ProgressCallback",
    "ProgressUpdate",
    "SplitPolicy",
    "TrainedBundle",
    "TrainingJob",
    "balanced_weights",
    "check_parity",
    "code_version",
    "encode_labels",
    "model_class",
    "prepare_data",
    "publish_trained",
    "purged_holdout",
    "train_job",
    "train_job_async",
    "validation_metrics",
    "write_trained_bundle",
]
