"""Export a version for legacy bots: ``<name>.onnx`` + ``<name>_metadata.json``, and a tree.

Bots that read files keep working during a migration: the flat files are replaced atomically
(written beside, then renamed), and ``<dest>/<SYMBOL>/<TYPE>/<VERSION>/`` folders (immutable,
``model.onnx`` + ``metadata.json``) get a ``latest`` symlink switched atomically to the
exported version. The metadata names the features, classes, input shape, a scaler (none:
scalers are folded into the graph) and the registry version it came from; the flat ONNX
importer reads it back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from alphaops.core.errors import IntegrityError
from alphaops.core.names import validate_name
from alphaops.registry import Registry
from alphaops.registry.bundle import MODEL_FILE, sha256_bytes

__all__ = ["ExportLayout", "ExportResult", "export_version"]

ExportLayout = Literal["flat", "tree", "both"]


@dataclass(frozen=True)
class ExportResult:
    """The files an export wrote."""

    ref: str
    files: tuple[Path, ...]
    latest: Path | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "ref": self.ref,
            "files": [str(f) for f in self.files],
            "latest": None if self.latest is None else str(self.latest),
        }


def _metadata(registry_ref: str, manifest_sha: str, onnx_sha: str, manifest: Any) -> str:
    model_input = manifest.input
    data = {
        "symbol": manifest.symbol,
        "model_type": manifest.model_type,
        "source": registry_ref,
        "manifest_sha256": manifest_sha,
        "onnx_sha256": onnx_sha,
        "exported_at": datetime.now(UTC).isoformat(),
        "features": [f.name for f in manifest.features],
        "classes": list(manifest.label.class_order),
        "input": {"name": model_input.name, "shape": model_input.shape, "kind": model_input.kind},
        "lookback": getattr(model_input, "lookback", None),
        "timeframe": manifest.data.timeframe,
        "feature_spec": manifest.feature_spec,
        "scaler": None,
        "output": "probabilities",
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _replace(path: Path, data: bytes) -> None:
    scratch = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def _write_version_folder(folder: Path, model: bytes, metadata: str) -> list[Path]:
    files = {folder / "model.onnx": model, folder / "metadata.json": metadata.encode()}
    if folder.exists():
        existing = folder / "model.onnx"
        if not existing.is_file() or sha256_bytes(existing.read_bytes()) != sha256_bytes(model):
            raise IntegrityError(
                f"{folder} already holds another model; exported version folders are immutable",
                fix="export into an empty folder, or remove the stale version folder",
                file=str(existing),
            )
        return list(files)
    folder.mkdir(parents=True)
    for path, data in files.items():
        path.write_bytes(data)
    return list(files)


def _point_latest(type_dir: Path, version: str) -> Path:
    link = type_dir / "latest"
    scratch = type_dir / f".latest.tmp-{os.getpid()}"
    if scratch.is_symlink():
        scratch.unlink()
    os.symlink(version, scratch)
    os.replace(scratch, link)
    return link


def export_version(
    registry: Registry,
    ref: str,
    dest: Path,
    *,
    name: str | None = None,
    layout: ExportLayout = "both",
    latest: bool = True,
) -> ExportResult:
    """Export the verified version ``ref`` to ``dest`` (see the module docstring)."""
    found = registry.resolve(ref)
    bundle = registry.load(found.ref)
    model = (bundle.path / MODEL_FILE).read_bytes()
    manifest = bundle.manifest
    metadata = _metadata(found.ref, found.manifest_sha256, sha256_bytes(model), manifest)
    stem = validate_name(name or f"{manifest.symbol}_{manifest.model_type}", kind="file name")
    dest.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    link: Path | None = None
    if layout in ("flat", "both"):
        _replace(dest / f"{stem}.onnx", model)
        _replace(dest / f"{stem}_metadata.json", metadata.encode())
        files += [dest / f"{stem}.onnx", dest / f"{stem}_metadata.json"]
    if layout in ("tree", "both"):
        type_dir = dest / manifest.symbol / manifest.model_type
        files += _write_version_folder(type_dir / str(found.version), model, metadata)
        if latest:
            link = _point_latest(type_dir, str(found.version))
    return ExportResult(found.ref, tuple(files), link)
