"""Bundles: immutable, self-verifying model folders, and the checks run before any use.

A bundle folder holds ``manifest.json``, ``model.onnx``, ``reference.npz`` (``inputs`` and
``expected`` arrays, read with ``allow_pickle=False``), and optionally ``native/`` and
``reports/``. :func:`verify_bundle` checks every listed file's size and sha256, refuses
unlisted files, and runs the ONNX model on the reference inputs with onnxruntime; any
mismatch raises :class:`~alphaops.core.errors.IntegrityError` naming the file.

>>> from alphaops.registry.testing import build_tiny_bundle
>>> import tempfile, pathlib
>>> folder = build_tiny_bundle(pathlib.Path(tempfile.mkdtemp()) / "b")
>>> bundle = Bundle.load(folder)
>>> bundle.manifest.symbol, bundle.predict(bundle.reference_inputs()).shape
('BTCUSDT', (8, 2))
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from alphaops.core.errors import AlphaOpsError, IntegrityError, UsageError
from alphaops.inference import OnnxSession
from alphaops.registry._fs import FileSystem, local_fs
from alphaops.registry.manifest import MANIFEST_FILE, FileEntry, Manifest

__all__ = [
    "MODEL_FILE",
    "REFERENCE_FILE",
    "Bundle",
    "sha256_bytes",
    "verify_bundle",
    "write_bundle",
]

MODEL_FILE = "model.onnx"
REFERENCE_FILE = "reference.npz"
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Return the lower-case hex sha256 of ``data``.

    >>> sha256_bytes(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def _broken(folder: str, file: str, what: str, fix: str) -> IntegrityError:
    return IntegrityError(f"bundle {folder}: {file} {what}", fix=fix, file=file, bundle=folder)


def parse_manifest(text: bytes, *, folder: str) -> Manifest:
    """Parse ``manifest.json`` bytes or raise an integrity error naming it."""
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise _broken(
            folder, MANIFEST_FILE, f"is not a valid manifest: {problems}", "re-publish the bundle"
        ) from exc


def verify_bundle(
    fs: FileSystem, root: str, *, smoke_test: bool = True, manifest_sha256: str | None = None
) -> Manifest:
    """Verify the bundle under ``root`` on ``fs`` and return its manifest.

    Checks, in order: the manifest parses (and matches ``manifest_sha256`` when given), no file
    is missing, truncated, altered or unlisted, and the ONNX model reproduces the reference
    outputs. Raises :class:`IntegrityError` naming the first offending file.
    """
    try:
        return _verify(fs, root, smoke_test=smoke_test, manifest_sha256=manifest_sha256)
    except FileNotFoundError as exc:
        # Listed, then gone: another writer (or 'registry doctor --grace-s 0') removed it.
        gone = Path(str(exc.filename)).name if exc.filename else "a listed file"
        raise _broken(
            root, gone, f"vanished while being verified ({exc})", "restore it or re-publish"
        ) from exc


def _verify(
    fs: FileSystem, root: str, *, smoke_test: bool, manifest_sha256: str | None
) -> Manifest:
    present = fs.sizes(root)
    if MANIFEST_FILE not in present:
        raise _broken(root, MANIFEST_FILE, "is missing", "re-publish the bundle")
    raw = fs.read_bytes(f"{root}/{MANIFEST_FILE}")
    if manifest_sha256 is not None and sha256_bytes(raw) != manifest_sha256:
        raise _broken(
            root, MANIFEST_FILE, "differs from the manifest recorded at publish", "restore it"
        )
    manifest = parse_manifest(raw, folder=root)
    for entry in manifest.files:
        _check_file(fs, root, entry, present.get(entry.path))
    listed = {e.path for e in manifest.files} | {MANIFEST_FILE}
    for extra in sorted(set(present) - listed):
        raise _broken(root, extra, "is not listed in the manifest", "remove it or re-publish")
    if smoke_test:
        run_smoke_test(
            manifest,
            fs.read_bytes(f"{root}/{MODEL_FILE}"),
            fs.read_bytes(f"{root}/{REFERENCE_FILE}"),
            folder=root,
        )
    return manifest


def _check_file(fs: FileSystem, root: str, entry: FileEntry, size: int | None) -> None:
    if size is None:
        raise _broken(root, entry.path, "is missing", "restore the file or re-publish the bundle")
    if size != entry.size:
        raise _broken(
            root, entry.path, f"has {size} bytes, the manifest says {entry.size}", "restore it"
        )
    digest = hashlib.sha256()
    with fs.open_read(f"{root}/{entry.path}") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != entry.sha256:
        raise _broken(root, entry.path, "does not match its sha256 in the manifest", "restore it")


def load_reference(data: bytes, *, folder: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Return ``(inputs, expected)`` from ``reference.npz`` bytes (never unpickling)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return np.asarray(npz["inputs"]), np.asarray(npz["expected"])
    except (KeyError, ValueError, OSError) as exc:
        raise _broken(
            folder,
            REFERENCE_FILE,
            f"is unreadable ({exc})",
            "re-publish with 'inputs' and 'expected'",
        ) from exc


def open_session(manifest: Manifest, model: bytes, *, where: str, threads: int = 1) -> OnnxSession:
    """Return the onnxruntime session of a bundle's ``model.onnx``, checked against its manifest.

    The input is the manifest's input name and the output must hold one probability per class
    of the manifest's class order; a file onnxruntime cannot load raises ``IntegrityError``.
    """
    return OnnxSession(
        model,
        classes=len(manifest.label.class_order),
        input_name=manifest.input.name,
        threads=threads,
        where=where,
    )


def smoke_test_session(
    manifest: Manifest, session: OnnxSession, reference: bytes, *, folder: str
) -> None:
    """Run ``session`` on the reference inputs; raise if outputs differ from the expected ones."""
    inputs, expected = load_reference(reference, folder=folder)
    want = manifest.input.shape[1:]
    if list(inputs.shape[1:]) != want:
        raise _broken(
            folder,
            REFERENCE_FILE,
            f"inputs have shape {list(inputs.shape)}, the manifest input is {manifest.input.shape}",
            "rebuild the reference batch",
        )
    try:
        got = session.run(np.ascontiguousarray(inputs, dtype=manifest.input.dtype))
    except AlphaOpsError as exc:
        raise _broken(folder, MODEL_FILE, f"cannot run: {exc}", "re-export the model") from exc
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise _broken(
            folder,
            MODEL_FILE,
            "outputs differ from the expected outputs in reference.npz",
            "re-export the model or rebuild the reference batch",
        )


def run_smoke_test(manifest: Manifest, model: bytes, reference: bytes, *, folder: str) -> None:
    """Load the model in a scratch session and smoke-test it (see :func:`smoke_test_session`)."""
    try:
        session = open_session(manifest, model, where=folder)
    except AlphaOpsError as exc:
        raise _broken(folder, MODEL_FILE, f"cannot load: {exc}", "re-export the model") from exc
    smoke_test_session(manifest, session, reference, folder=folder)


@dataclass(frozen=True)
class Bundle:
    """A verified bundle in a local folder; build it with :meth:`load`."""

    path: Path
    manifest: Manifest

    @classmethod
    def load(cls, folder: Path | str, *, smoke_test: bool = True) -> Bundle:
        """Verify the bundle in ``folder`` and return it."""
        path = Path(folder)
        if not path.is_dir():
            raise UsageError(f"bundle folder {path} does not exist", fix="pass a bundle folder")
        return cls(path, verify_bundle(local_fs(), str(path), smoke_test=smoke_test))

    def reference_inputs(self) -> npt.NDArray[Any]:
        """Return the reference input batch stored with the bundle."""
        return load_reference((self.path / REFERENCE_FILE).read_bytes(), folder=str(self.path))[0]

    def predict(self, inputs: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run the ONNX model on ``inputs`` and return its scores."""
        data = (self.path / MODEL_FILE).read_bytes()
        session = open_session(self.manifest, data, where=str(self.path))
        return session.run_batched(inputs, dtype=self.manifest.input.dtype)


def write_bundle(
    folder: Path,
    *,
    model_onnx: bytes,
    reference_inputs: npt.NDArray[Any],
    reference_expected: npt.NDArray[Any],
    manifest: Mapping[str, Any],
    native: Mapping[str, bytes] | None = None,
    reports: Mapping[str, bytes] | None = None,
) -> Bundle:
    """Write a bundle folder: the files, then ``manifest.json`` listing them; return it verified.

    ``manifest`` holds every :class:`Manifest` field except ``files`` and ``created_at``.
    """
    if folder.exists() and any(folder.iterdir()):
        raise UsageError(f"bundle folder {folder} is not empty", fix="write into a new folder")
    contents: dict[str, bytes] = {MODEL_FILE: model_onnx}
    buffer = io.BytesIO()
    np.savez(buffer, inputs=reference_inputs, expected=reference_expected)
    contents[REFERENCE_FILE] = buffer.getvalue()
    contents.update({f"native/{k}": v for k, v in (native or {}).items()})
    contents.update({f"reports/{k}": v for k, v in (reports or {}).items()})
    entries = [FileEntry(path=k, sha256=sha256_bytes(v), size=len(v)) for k, v in contents.items()]
    fields = dict(manifest) | {"files": entries, "created_at": datetime.now(UTC)}
    try:
        checked = Manifest.model_validate(json.loads(json.dumps(fields, default=_json_default)))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(
            f"cannot write bundle {folder}: the manifest fields are invalid: {problems}",
            fix="correct the named fields (see docs/manifest.schema.json)",
        ) from exc
    for name, data in contents.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (folder / MANIFEST_FILE).write_text(checked.to_json())
    return Bundle.load(folder)


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} into a manifest")
