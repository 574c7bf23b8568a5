"""The import entry points: plan (dry run) or import every model found under a path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alphaops.core.errors import NotFoundError, UsageError
from alphaops.importing._discover import Found, discover_legacy
from alphaops.importing._legacy import (
    GoldenData,
    ImportOptions,
    PlannedImport,
    convert_pickle,
    plan_found,
)
from alphaops.importing._onnx import score
from alphaops.importing._publish import Converted, publish_converted
from alphaops.registry import ModelVersion, Registry

__all__ = [
    "ImportedModel",
    "convert_found",
    "import_converted",
    "import_freqai",
    "import_legacy",
    "plan_freqai",
    "plan_legacy",
]


@dataclass(frozen=True)
class ImportedModel:
    """One imported model: its source and the candidate version it became."""

    source: str
    layout: str
    version: ModelVersion
    parity_max_abs_diff: float
    parity_rows: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        v = self.version
        return {
            "source": self.source,
            "layout": self.layout,
            "ref": f"{v.key}/{v.version}",
            "manifest_sha256": v.manifest_sha256,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "parity_rows": self.parity_rows,
        }


def _found_or_raise(path: Path) -> list[Found]:
    found = discover_legacy(path)
    if not found:
        raise NotFoundError(
            f"no legacy models under {path} (looked for <symbol>_<type>.pkl, "
            "<family>_<symbol>.pth, <name>.onnx with <name>_metadata.json, and "
            "SYMBOL/TYPE/VERSION folders)",
            fix="pass the folder that holds the model files",
        )
    return found


def plan_legacy(path: Path, options: ImportOptions) -> list[PlannedImport]:
    """Return what importing ``path`` would do (the dry run); loads nothing."""
    return [plan_found(f, options) for f in _found_or_raise(path)]


def convert_found(found: Found, options: ImportOptions, data: GoldenData) -> Converted:
    """Convert one discovered model to a parity-checked ONNX model (not yet published)."""
    if found.format == "pickle":
        return convert_pickle(found, options, data)
    if found.format == "keras":
        raise UsageError(
            f"{found.model} is a Keras model: alphaops imports it only through an ONNX "
            "converter, and the optional one (tf2onnx, with TensorFlow) is not part of any "
            "alphaops extra",
            fix=f"convert it yourself (python -m tf2onnx.convert --keras {found.model} "
            f"--output {found.model.with_suffix('.onnx')}), write {found.model.stem}"
            "_metadata.json with its features and classes, and import the .onnx",
            file=str(found.model),
        )
    if found.format == "onnx":
        from alphaops.importing._flat_onnx import convert_onnx

        return convert_onnx(found, options, data)
    from alphaops.importing._torch import convert_torch

    return convert_torch(found, options, data)


def import_converted(converted: Converted, registry: Registry) -> ImportedModel:
    """Publish ``converted`` as the next candidate version (no alias moves)."""
    expected = score(converted.onnx, converted.golden, classes=len(converted.classes))
    version = publish_converted(converted, expected, registry)
    return ImportedModel(
        str(converted.source),
        converted.layout,
        version,
        converted.parity.max_abs_diff,
        converted.parity.rows,
    )


def import_legacy(
    path: Path,
    options: ImportOptions,
    registry: Registry,
    data: GoldenData,
    *,
    only: Sequence[str] = (),
) -> list[ImportedModel]:
    """Import every model under ``path`` (or those whose source file name is in ``only``).

    Each is converted and parity-checked before any is published, so a refused model leaves
    the registry unchanged.
    """
    found = _found_or_raise(path)
    if only:
        found = [f for f in found if f.model.name in only]
    converted = [convert_found(f, options, data) for f in found]
    return [import_converted(c, registry) for c in converted]


def plan_freqai(path: Path, options: ImportOptions) -> list[PlannedImport]:
    """Return what importing the FreqAI folders under ``path`` would do; loads nothing."""
    from alphaops.importing._freqai import discover_freqai, plan_freqai_model

    return [plan_freqai_model(m, options) for m in discover_freqai(path)]


def import_freqai(path: Path, options: ImportOptions, registry: Registry) -> list[ImportedModel]:
    """Import every FreqAI training folder under ``path``, oldest first per symbol.

    All are converted and parity-checked before any is published.
    """
    from alphaops.importing._freqai import convert_freqai, discover_freqai

    converted = [convert_freqai(m, options) for m in discover_freqai(path)]
    return [import_converted(c, registry) for c in converted]
