"""Turn a converted, parity-checked model into a bundle and publish it as a candidate.

Every importer ends here: the manifest records ``provenance`` (layout, source path, sha256 of
every source file, the parity on the golden batch, what ran as trusted code), the bundle is
written and verified like any trained one, and :meth:`Registry.publish` makes it the next
version. No alias moves: the gates must pass before one can (the registry enforces it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaops.core.errors import IncompatibleModelError, UsageError
from alphaops.features import FeatureSpec
from alphaops.inference import ACTION_OF_CLASS
from alphaops.registry import ModelVersion, Registry, write_bundle
from alphaops.registry.manifest import Parity, Provenance, SourceFile
from alphaops.training import code_version
from alphaops.training.onnx_export import ParityReport

__all__ = ["Converted", "class_order", "file_sha256", "publish_converted", "source_files"]

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Return the sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def source_files(paths: Sequence[Path]) -> list[SourceFile]:
    """Return the checksummed entries of the source files (in the given order)."""
    return [SourceFile(path=str(p), sha256=file_sha256(p), size=p.stat().st_size) for p in paths]


def class_order(classes: Sequence[str], override: Sequence[str] | None, *, where: str) -> list[str]:
    """Name the model's classes by trading action (``LOSS``/``WIN``, ``SELL``/``HOLD``/``BUY``).

    ``0, 1`` become ``LOSS, WIN``; ``-1, 0, 1`` become ``SELL, HOLD, BUY``; names that already
    are actions are upper-cased. Anything else needs ``override`` (``--classes``), one name per
    class in the model's order.

    >>> class_order(["0", "1"], None, where="m"), class_order(["-1", "0", "1"], None, where="m")
    (['LOSS', 'WIN'], ['SELL', 'HOLD', 'BUY'])
    """
    if override is not None:
        names = [c.strip().upper() for c in override]
        if len(names) != len(classes):
            raise IncompatibleModelError(
                f"{where} has {len(classes)} classes {list(classes)}, but --classes names "
                f"{len(names)}: {names}",
                fix="name one action per class, in the model's class order",
            )
        unknown = [n for n in names if n not in ACTION_OF_CLASS]
        if unknown:
            raise UsageError(
                f"--classes {unknown} are not actions alphaops can trade",
                fix=f"use names from {sorted(ACTION_OF_CLASS)}",
            )
        return names
    known = {("0", "1"): ["LOSS", "WIN"], ("-1", "0", "1"): ["SELL", "HOLD", "BUY"]}
    key = tuple(classes)
    if key in known:
        return known[key]
    upper = [c.strip().upper() for c in classes]
    if all(c in ACTION_OF_CLASS for c in upper):
        return upper
    raise IncompatibleModelError(
        f"{where} has classes {list(classes)}, which alphaops cannot map to trading actions",
        fix="pass --classes with one action per class, e.g. --classes SELL,HOLD,BUY",
        classes=list(classes),
    )


@dataclass(frozen=True)
class Converted:
    """A model ready to publish: ONNX bytes, its input and classes, and where it came from."""

    symbol: str
    model_type: str
    onnx: bytes
    columns: tuple[str, ...]
    spec: FeatureSpec | None
    classes: list[str]
    golden: npt.NDArray[np.float32]
    golden_window: tuple[datetime, datetime]
    parity: ParityReport
    golden_source: str
    layout: str
    source: Path | str
    files: list[SourceFile]
    trusted_code: list[str]
    timeframe: str
    horizon: int
    lookback: int | None = None
    params: Mapping[str, str | int | float | bool | None] | None = None
    library_versions: Mapping[str, str] | None = None


def window_of(frame: pd.DataFrame | None) -> tuple[datetime, datetime]:
    """Return the first and last ``timestamp`` of ``frame`` (now, now without one)."""
    if frame is not None and "timestamp" in frame.columns and len(frame):
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
        return stamps.iloc[0].to_pydatetime(), stamps.iloc[-1].to_pydatetime()
    now = datetime.now(UTC)
    return now, now


def _library_versions(extra: Mapping[str, str] | None) -> dict[str, str]:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("onnx", "onnxruntime"):
        versions[name] = importlib.metadata.version(name)
    return versions | dict(extra or {})


def manifest_of(converted: Converted, expected: npt.NDArray[np.float32]) -> dict[str, Any]:
    """Return the manifest fields (all but ``files`` and ``created_at``) of ``converted``."""
    c = converted
    n_features = len(c.columns)
    model_input: dict[str, Any] = (
        {"kind": "tabular", "n_features": n_features}
        if c.lookback is None
        else {"kind": "sequence", "lookback": c.lookback, "n_features": n_features}
    )
    start, end = c.golden_window
    params: dict[str, Any] = {
        "imported_from": c.layout,
        "data_window": "golden batch (the training window is not known)",
    } | dict(c.params or {})
    if c.spec is not None:
        params["feature_spec_hash"] = c.spec.spec_hash
    if c.lookback is not None:
        params["lookback"] = c.lookback
    provenance = Provenance(
        layout=c.layout,
        source=str(c.source),
        sha256=c.files[0].sha256,
        files=c.files,
        parity=Parity(
            max_abs_diff=c.parity.max_abs_diff,
            rows=c.parity.rows,
            tolerance=c.parity.tolerance,
            batch=c.golden_source,
        ),
        trusted_code=c.trusted_code,
    )
    return {
        "symbol": c.symbol,
        "model_type": c.model_type,
        "features": [{"name": name, "dtype": "float32"} for name in c.columns],
        "input": model_input,
        "label": {"rule": "imported", "horizon": c.horizon, "class_order": c.classes},
        "data": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "timeframe": c.timeframe,
            "fingerprint": hashlib.sha256(np.ascontiguousarray(c.golden).tobytes()).hexdigest(),
            "rows": len(c.golden),
        },
        "seed": 0,
        "library_versions": _library_versions(c.library_versions),
        "code_version": code_version(),
        "params": params,
        "metrics": {"onnx_parity_max_abs_diff": c.parity.max_abs_diff},
        "feature_spec": None if c.spec is None else c.spec.to_dict(),
        "provenance": provenance.model_dump(mode="json"),
    }


def publish_converted(
    converted: Converted, expected: npt.NDArray[np.float32], registry: Registry
) -> ModelVersion:
    """Write ``converted`` as a verified bundle and publish it as the next candidate version."""
    with tempfile.TemporaryDirectory(prefix="alphaops-import-") as tmp:
        bundle = write_bundle(
            Path(tmp) / "bundle",
            model_onnx=converted.onnx,
            reference_inputs=converted.golden[: min(64, len(converted.golden))],
            reference_expected=expected[: min(64, len(expected))],
            manifest=manifest_of(converted, expected),
        )
        return registry.publish(bundle)
