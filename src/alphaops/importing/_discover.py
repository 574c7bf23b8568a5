"""Find legacy models and their sidecars in the layouts bots keep them in (read-only).

* Flat ``models/`` folders of self-learning bots: ``<symbol>_<type>.pkl`` (joblib/pickle)
  with ``<symbol>_features.pkl`` (and optionally ``<symbol>_scaler.pkl``), and
  ``lstm_<symbol>.pth`` state dicts with ``_scaler.pkl``, ``_target_scaler.pkl`` and
  ``_cols.pkl`` (prefixed ``lstm_<symbol>`` or ``<symbol>``).
* Flat ``<name>.onnx`` with ``<name>_metadata.json``, and ``<root>/{SYMBOL}/{TYPE}/{VERSION}``
  bundles of them, with ``latest`` symlinks (followed to report which version is latest; each
  version folder is imported once).
* FreqAI ``sub-train-<COIN>_<timestamp>/`` folders (see :mod:`alphaops.importing._freqai`).

Discovery only lists files and reads names; it never opens a pickle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from alphaops.core.errors import InvalidNameError, NotFoundError
from alphaops.core.names import normalize_symbol, validate_name

__all__ = ["Found", "SourceFormat", "discover_legacy"]

SourceFormat = Literal["pickle", "torch_state", "onnx", "keras"]
_PICKLE_SUFFIXES = (".pkl", ".joblib", ".pickle")
_SIDECARS = ("features", "cols", "scaler", "target_scaler", "metadata")
_GENERIC_TYPES = {"model", "clf", "classifier", "pkl"}


@dataclass(frozen=True)
class Found:
    """One legacy model and its sidecars, as discovered (nothing loaded)."""

    layout: str
    symbol: str
    model_type: str
    format: SourceFormat
    model: Path
    features: Path | None = None
    scaler: Path | None = None
    target_scaler: Path | None = None
    metadata: Path | None = None
    version: str | None = None
    latest: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sidecars(self) -> tuple[Path, ...]:
        """Return the sidecar files found, in a fixed order."""
        found = (self.features, self.scaler, self.target_scaler, self.metadata)
        return tuple(p for p in found if p is not None)


def _symbol(text: str) -> str | None:
    try:
        return normalize_symbol(text)
    except InvalidNameError:
        return None


def _model_type(text: str, default: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_.-]", "_", text.lower()).strip("._-")
    if not cleaned or cleaned in _GENERIC_TYPES:
        return default
    try:
        return validate_name(cleaned[:64], kind="model type")
    except InvalidNameError:
        return default


def _sidecar(folder: Path, stems: list[str], kind: str) -> Path | None:
    for stem in stems:
        for suffix in (*_PICKLE_SUFFIXES, ".json"):
            path = folder / f"{stem}_{kind}{suffix}"
            if path.is_file():
                return path
    return None


def _flat_pickles(folder: Path) -> list[Found]:
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in _PICKLE_SUFFIXES or not path.is_file():
            continue
        stem = path.stem
        if any(stem.endswith(f"_{kind}") for kind in _SIDECARS):
            continue
        head, _, tail = stem.partition("_")
        symbol = _symbol(head)
        if symbol is None:
            continue
        stems = [stem, head, head.lower(), head.upper()]
        found.append(
            Found(
                layout="legacy",
                symbol=symbol,
                model_type=_model_type(tail, "legacy"),
                format="pickle",
                model=path,
                features=_sidecar(folder, stems, "features") or _sidecar(folder, stems, "cols"),
                scaler=_sidecar(folder, stems, "scaler"),
                target_scaler=_sidecar(folder, stems, "target_scaler"),
            )
        )
    return found


def _flat_torch(folder: Path) -> list[Found]:
    found = []
    for path in sorted(folder.glob("*.pth")) + sorted(folder.glob("*.pt")):
        stem = path.stem
        family, _, rest = stem.partition("_")
        if not rest:
            continue
        symbol = _symbol(rest)
        if symbol is None:
            continue
        stems = [stem, rest, rest.lower(), rest.upper()]
        found.append(
            Found(
                layout="legacy",
                symbol=symbol,
                model_type=_model_type(family, "lstm"),
                format="torch_state",
                model=path,
                features=_sidecar(folder, stems, "cols") or _sidecar(folder, stems, "features"),
                scaler=_sidecar(folder, stems, "scaler"),
                target_scaler=_sidecar(folder, stems, "target_scaler"),
            )
        )
    return found


def _keras(folder: Path) -> list[Found]:
    found = []
    for path in sorted(folder.glob("*.h5")) + sorted(folder.glob("*.keras")):
        head, _, tail = path.stem.partition("_")
        symbol = _symbol(head)
        if symbol is not None:
            found.append(Found("legacy", symbol, _model_type(tail, "keras"), "keras", path))
    return found


def _onnx_in(folder: Path, layout: str, **where: str) -> list[Found]:
    found = []
    for path in sorted(folder.glob("*.onnx")):
        meta = folder / f"{path.stem}_metadata.json"
        if not meta.is_file():
            meta = folder / "metadata.json"
        info = _read_json(meta) if meta.is_file() else {}
        raw_symbol = where.get("symbol") or str(info.get("symbol") or path.stem.partition("_")[0])
        symbol = _symbol(raw_symbol)
        if symbol is None:
            continue
        raw_type = where.get("model_type") or str(
            info.get("model_type") or path.stem.partition("_")[2]
        )
        found.append(
            Found(
                layout=layout,
                symbol=symbol,
                model_type=_model_type(raw_type, "onnx"),
                format="onnx",
                model=path,
                metadata=meta if meta.is_file() else None,
                version=where.get("version"),
                latest=where.get("latest") == "yes",
            )
        )
    return found


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _bundle_tree(root: Path) -> list[Found]:
    found = []
    for symbol_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for type_dir in sorted(p for p in symbol_dir.iterdir() if p.is_dir()):
            if type_dir.is_symlink():
                continue
            latest = type_dir / "latest"
            target = latest.resolve().name if latest.is_symlink() else None
            for version_dir in sorted(p for p in type_dir.iterdir() if p.is_dir()):
                if version_dir.is_symlink():
                    continue
                found.extend(
                    _onnx_in(
                        version_dir,
                        "bundle_tree",
                        symbol=symbol_dir.name,
                        model_type=type_dir.name,
                        version=version_dir.name,
                        latest="yes" if version_dir.name == target else "no",
                    )
                )
    return found


def discover_legacy(path: Path) -> list[Found]:
    """Return every model found under ``path`` (a flat folder, a bundle tree, or one file)."""
    if not path.exists():
        raise NotFoundError(f"{path} does not exist", fix="pass the folder of the legacy models")
    if path.is_file():
        found = [f for f in discover_legacy(path.parent) if f.model == path]
        if not found:
            raise NotFoundError(
                f"{path} is not a model alphaops recognises (<symbol>_<type>.pkl, "
                "<family>_<symbol>.pth, <name>.onnx)",
                fix="rename it to one of those patterns, or pass its folder",
            )
        return found
    found = _flat_pickles(path) + _flat_torch(path) + _onnx_in(path, "legacy") + _keras(path)
    found += _bundle_tree(path)
    return found
