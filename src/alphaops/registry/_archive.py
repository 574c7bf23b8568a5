"""Export a version as one ``.tar.gz`` archive, and import such an archive safely.

An archive holds ``alphaops-export.json`` (the exported ref and manifest sha256), then
``bundle/manifest.json``, then the files the manifest lists under ``bundle/``. Import reads it
as a stream and trusts nothing before it is checked: every member's declared size is compared
with the manifest *before* a byte of it is decompressed, a member the manifest does not list,
a link, a device, an absolute or ``..`` path, a duplicate or a member arriving before the
manifest is refused, and each file is copied in 1 MiB chunks, never past its declared size, with
its sha256 checked as it streams. A 256 KiB archive declaring 256 MiB of zeros is refused at
its header, costing neither memory nor disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from alphaops.core.errors import IntegrityError
from alphaops.core.names import validate_name
from alphaops.registry._types import ModelVersion
from alphaops.registry.bundle import Bundle, parse_manifest, sha256_bytes, verify_bundle
from alphaops.registry.manifest import MANIFEST_FILE, FileEntry, Manifest
from alphaops.registry.refs import ModelRef

if TYPE_CHECKING:
    from alphaops.registry.registry import Registry

__all__ = ["EXPORT_INFO", "export_version", "import_archive"]

EXPORT_INFO = "alphaops-export.json"
_BUNDLE = "bundle"
# Caps for the two members whose size no manifest declares.
_INFO_CAP = 64 * 1024
_MANIFEST_CAP = 16 * 1024 * 1024
_CHUNK = 1 << 20
_FIX = "export the version again with 'alphaops registry export' (never import a hand-made tar)"


def export_version(registry: Registry, ref: str | ModelRef, archive: Path) -> Path:
    """Write the bundle ``ref`` names, verified first, as one ``.tar.gz`` archive."""
    found = registry.resolve(ref)
    fs = registry.artifacts.fs
    folder = registry.artifacts.version_dir(found.key, found.version)
    verify_bundle(fs, folder, manifest_sha256=found.manifest_sha256)
    info = {"ref": found.ref, "manifest_sha256": found.manifest_sha256, "format": 1}
    archive.parent.mkdir(parents=True, exist_ok=True)
    # The manifest goes first so that an importer knows every file's size before reading any.
    rels = sorted(fs.sizes(folder), key=lambda rel: (rel != MANIFEST_FILE, rel))
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, EXPORT_INFO, json.dumps(info, indent=2).encode())
        for rel in rels:
            _add(tar, f"{_BUNDLE}/{rel}", fs.read_bytes(f"{folder}/{rel}"))
    return archive


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mtime = 0
    tar.addfile(member, io.BytesIO(data))


def import_archive(registry: Registry, archive: Path, *, actor: str | None) -> ModelVersion:
    """Check an export archive member by member as it streams, verify the bundle, publish it."""
    try:
        tar = tarfile.open(archive, "r|*")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise IntegrityError(
            f"{archive} is not a readable archive: {exc}", fix="export it again", file=str(archive)
        ) from exc
    with tempfile.TemporaryDirectory(prefix="alphaops-import-") as tmp, tar:
        root = Path(tmp) / _BUNDLE
        try:
            info = _ArchiveReader(archive, root).read(tar)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
            raise IntegrityError(
                f"{archive} is damaged or truncated: {exc}", fix=_FIX, file=str(archive)
            ) from exc
        expected = info.get("manifest_sha256")
        if expected is not None and sha256_bytes((root / MANIFEST_FILE).read_bytes()) != expected:
            raise IntegrityError(
                f"{archive}: manifest.json differs from the exported one",
                fix="export it again",
                file=MANIFEST_FILE,
            )
        return registry.publish(Bundle.load(root), actor=actor)


class _ArchiveReader:
    """One pass over a streamed archive, writing the checked bundle files under ``root``."""

    def __init__(self, archive: Path, root: Path) -> None:
        self.archive = archive
        self.root = root
        self.info: dict[str, object] = {}
        self.manifest: Manifest | None = None
        self.expected: dict[str, FileEntry] = {}
        self.seen: set[str] = set()

    def _refuse(self, member: str, what: str, fix: str = _FIX, **details: object) -> IntegrityError:
        return IntegrityError(
            f"{self.archive}: member {member!r} {what}", fix=fix, file=member, **details
        )

    def read(self, tar: tarfile.TarFile) -> dict[str, object]:
        for member in tar:
            self._check_kind(member)
            if member.isdir():
                continue
            rel = EXPORT_INFO if member.name == EXPORT_INFO else self._bundle_path(member.name)
            if rel in self.seen:
                raise self._refuse(member.name, "appears twice")
            self.seen.add(rel)
            if rel == EXPORT_INFO:
                self.info = _export_info(self.archive, self._small(tar, member, _INFO_CAP))
            elif rel == MANIFEST_FILE:
                self._take_manifest(tar, member)
            else:
                self._take_file(tar, member, rel)
        if self.manifest is None:
            raise IntegrityError(
                f"{self.archive} holds no bundle (no {_BUNDLE}/{MANIFEST_FILE})",
                fix=_FIX,
                file=str(self.archive),
            )
        missing = sorted(set(self.expected) - self.seen)
        if missing:
            raise IntegrityError(
                f"{self.archive}: {_BUNDLE}/{missing[0]} is listed in the manifest but not in "
                f"the archive ({len(missing)} file(s) missing)",
                fix=_FIX,
                file=f"{_BUNDLE}/{missing[0]}",
            )
        return self.info

    def _check_kind(self, member: tarfile.TarInfo) -> None:
        name = member.name
        if member.issym() or member.islnk():
            raise self._refuse(name, f"is a link (to {member.linkname!r}); archives hold files")
        if not (member.isfile() or member.isdir()) or member.issparse():
            raise self._refuse(name, "is not a regular file")
        if name.startswith("/") or "\\" in name or ".." in PurePosixPath(name).parts:
            raise self._refuse(name, "has an absolute or '..' path")

    def _bundle_path(self, name: str) -> str:
        parts = PurePosixPath(name).parts
        if len(parts) < 2 or parts[0] != _BUNDLE:
            raise self._refuse(name, f"is neither {EXPORT_INFO} nor under {_BUNDLE}/")
        for part in parts[1:]:
            validate_name(part, kind="file name")
        return "/".join(parts[1:])

    def _small(self, tar: tarfile.TarFile, member: tarfile.TarInfo, cap: int) -> bytes:
        if member.size > cap:
            raise self._refuse(
                member.name,
                f"declares {member.size} bytes, more than the {cap} this file ever needs",
                size=member.size,
            )
        source = tar.extractfile(member)
        assert source is not None  # a regular file (checked above)
        return source.read(cap)

    def _take_manifest(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        data = self._small(tar, member, _MANIFEST_CAP)
        self.manifest = parse_manifest(data, folder=f"{self.archive}:{_BUNDLE}")
        self.expected = {entry.path: entry for entry in self.manifest.files}
        self.root.mkdir(parents=True)
        needed = sum(entry.size for entry in self.manifest.files)
        free = shutil.disk_usage(self.root).free
        if needed > free:
            raise IntegrityError(
                f"{self.archive}: its manifest declares {needed} bytes of files, more than the "
                f"{free} free in {self.root.parent}",
                fix="free disk space (or set TMPDIR to a larger disk) and import again",
                size=needed,
            )
        (self.root / MANIFEST_FILE).write_bytes(data)

    def _take_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, rel: str) -> None:
        if self.manifest is None:
            raise self._refuse(
                member.name, f"comes before {_BUNDLE}/{MANIFEST_FILE}, so its size is unchecked"
            )
        entry = self.expected.get(rel)
        if entry is None:
            raise self._refuse(member.name, "is not listed in the manifest", size=member.size)
        if member.size != entry.size:
            raise self._refuse(
                member.name,
                f"declares {member.size} bytes, the manifest says {entry.size}",
                size=member.size,
            )
        source = tar.extractfile(member)
        assert source is not None  # a regular file (checked above)
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            digest = _copy_capped(source, out, entry.size)
        if digest != entry.sha256:
            raise self._refuse(member.name, "does not match its sha256 in the manifest")


def _copy_capped(source: IO[bytes], out: IO[bytes], cap: int) -> str:
    digest = hashlib.sha256()
    left = cap
    while left > 0 and (chunk := source.read(min(_CHUNK, left))):
        digest.update(chunk)
        out.write(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def _export_info(archive: Path, data: bytes) -> dict[str, object]:
    try:
        info = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(
            f"{archive}: {EXPORT_INFO} is not valid JSON ({exc})",
            fix="export the version again with 'alphaops registry export'",
            file=EXPORT_INFO,
        ) from exc
    if not isinstance(info, dict):
        raise IntegrityError(
            f"{archive}: {EXPORT_INFO} holds a JSON {type(info).__name__}, not an object",
            fix="export the version again with 'alphaops registry export'",
            file=EXPORT_INFO,
        )
    sha = info.get("manifest_sha256")
    if sha is not None and not isinstance(sha, str):
        raise IntegrityError(
            f"{archive}: manifest_sha256 in {EXPORT_INFO} is {sha!r}, not a sha256 string",
            fix="export the version again with 'alphaops registry export'",
            file=EXPORT_INFO,
        )
    return info
