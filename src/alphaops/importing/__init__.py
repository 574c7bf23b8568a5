"""Bring existing models in, safely, and export versions for legacy bots.

* :func:`plan_legacy` / :func:`import_legacy` — flat ``models/`` folders (joblib/pickle with
  ``_features.pkl``, torch ``.pth`` state dicts with ``_scaler.pkl``/``_cols.pkl``), flat
  ``.onnx`` + ``_metadata.json`` files and ``SYMBOL/TYPE/VERSION`` trees of them.
* :func:`plan_freqai` / :func:`import_freqai` — FreqAI ``sub-train-<COIN>_<timestamp>/``.
* :func:`plan_mlflow` / :func:`import_mlflow` — an MLflow model registry (versions, artifacts,
  aliases).
* :func:`export_version` — a version to ``<name>.onnx`` + ``_metadata.json`` and a
  ``SYMBOL/TYPE/VERSION`` tree with ``latest`` symlinks.

Pickles load only with ``trust_pickle`` and only in a sandboxed child process
(:mod:`alphaops.importing._sandbox`); this process never unpickles. Every import is converted
to ONNX, checked for parity against the original model on a golden batch, and published as a
candidate with ``provenance`` in its manifest: no alias moves until the gates pass.
"""

from alphaops.importing._discover import Found, discover_legacy
from alphaops.importing._export import ExportLayout, ExportResult, export_version
from alphaops.importing._features import FeatureMatch, match_features
from alphaops.importing._legacy import GoldenData, ImportOptions, PlannedImport
from alphaops.importing._mlflow import MlflowImport, MlflowVersion, import_mlflow, plan_mlflow
from alphaops.importing._pickle_scan import PickleScan, scan_pickle
from alphaops.importing._run import (
    ImportedModel,
    import_freqai,
    import_legacy,
    plan_freqai,
    plan_legacy,
)
from alphaops.importing._sandbox import SandboxLimits

__all__ = [
    "ExportLayout",
    "ExportResult",
    "FeatureMatch",
    "Found",
    "GoldenData",
    "ImportOptions",
    "ImportedModel",
    "MlflowImport",
    "MlflowVersion",
    "PickleScan",
    "PlannedImport",
    "SandboxLimits",
    "discover_legacy",
    "export_version",
    "import_freqai",
    "import_legacy",
    "import_mlflow",
    "match_features",
    "plan_freqai",
    "plan_legacy",
    "plan_mlflow",
    "scan_pickle",
]
