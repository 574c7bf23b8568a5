"""A small typed wrapper over fsspec: the only file-system calls the registry makes.

fsspec is untyped; everything it returns is converted to plain types here. Local folders use
fsspec's ``file`` protocol plus ``os.replace``/``os.symlink`` for the steps that must be atomic.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import fsspec

from alphaops.core.errors import ExternalServiceError, IntegrityError, UsageError

__all__ = ["FileSystem", "local_fs", "open_fs"]


class FileSystem:
    """Files under one fsspec file system; paths are protocol-less (``bucket/key`` on S3)."""

    def __init__(self, fs: Any, *, local: bool) -> None:
        self._fs = fs
        self.local = local

    def strip(self, url: str) -> str:
        """Return ``url`` without its protocol, as this file system names paths."""
        path = self._fs._strip_protocol(url)
        return str(path).rstrip("/") if str(path) != "/" else "/"

    def sizes(self, root: str) -> dict[str, int]:
        """Return ``{relative path: size}`` of every file under ``root`` (empty if missing)."""
        root = root.rstrip("/")
        try:
            found: Mapping[str, Mapping[str, Any]] = self._fs.find(root, detail=True)
        except FileNotFoundError:
            return {}
        out: dict[str, int] = {}
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            rel = str(path)[len(root) + 1 :]
            out[rel] = int(info.get("size") or 0)
        return out

    def read_bytes(self, path: str) -> bytes:
        """Return the content of ``path``."""
        with self._fs.open(path, "rb") as handle:
            data = handle.read()
        return bytes(data)

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[IO[bytes]]:
        """Open ``path`` for streaming reads."""
        with self._fs.open(path, "rb") as handle:
            yield handle

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` (creating parent folders), durably.

        Locally the file and its folder are fsynced before this returns, so a row that names
        the file may be committed next; on S3 an acknowledged PUT is already durable.
        """
        if self.local:
            _write_synced(Path(path), data)
            _fsync_dir(Path(path).parent)
            return
        with self._fs.open(path, "wb") as handle:
            handle.write(data)

    def exists(self, path: str) -> bool:
        """Return whether ``path`` exists."""
        return bool(self._fs.exists(path))

    def listdir(self, path: str) -> list[tuple[str, bool]]:
        """Return ``(name, is_dir)`` for each entry of folder ``path`` (empty if missing)."""
        try:
            entries: list[Mapping[str, Any]] = self._fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            if entry.get("type") == "link" or (
                self.local and Path(str(entry["name"])).is_symlink()
            ):
                continue
            out.append((name, entry.get("type") == "directory"))
        return out

    def modified(self, path: str) -> float | None:
        """Return the modification time of ``path`` in epoch seconds, when known."""
        try:
            info: Mapping[str, Any] = self._fs.info(path)
        except FileNotFoundError:
            return None
        return _mtime(info)

    def newest_mtime(self, path: str) -> float | None:
        """Return the newest modification time of ``path`` or any file under it, when known.

        S3 has no folders (and so no folder times): there the newest object decides, which is
        what tells whether a writer may still be filling the folder.
        """
        stamps = [self.modified(path)] if self.local else []
        try:
            found: Mapping[str, Mapping[str, Any]] = self._fs.find(path, detail=True)
        except FileNotFoundError:
            found = {}
        stamps += [_mtime(info) for info in found.values()]
        known = [s for s in stamps if s is not None]
        return max(known) if known else None

    def remove_tree(self, path: str) -> None:
        """Remove ``path`` and everything under it (no error if missing)."""
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm(path, recursive=True)
        if self.local:
            with contextlib.suppress(FileNotFoundError):
                Path(path).rmdir()

    def put_folder(self, source: Path, dest: str) -> None:
        """Copy the local folder ``source`` to ``dest`` file by file (durably, see above)."""
        files = sorted(p for p in source.rglob("*") if p.is_file())
        if not self.local:
            for file in files:
                self.write_bytes(f"{dest}/{file.relative_to(source).as_posix()}", file.read_bytes())
            return
        root = Path(dest)
        _make_dirs(root)
        for file in files:
            _write_synced(root / file.relative_to(source), file.read_bytes())
        # Then every folder's entries, deepest first: the files are reachable after a crash.
        for folder in sorted({f.parent for f in files}, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(root / folder.relative_to(source))

    def move_tree(self, source: str, dest: str) -> None:
        """Move folder ``source`` to ``dest``: one atomic rename locally, copy+delete remotely.

        Locally both parent folders are fsynced after the rename, so the move survives a power
        loss before the caller commits the row that makes ``dest`` visible.
        """
        if self.local:
            _make_dirs(Path(dest).parent)
            os.rename(source, dest)
            _fsync_dir(Path(dest).parent)
            _fsync_dir(Path(source).parent)
            return
        try:
            for rel in self.sizes(source):
                self._fs.copy(f"{source}/{rel}", f"{dest}/{rel}")
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"staging folder {source} lost a file while it was moved to {dest}: {exc}",
                fix="publish again ('registry doctor --grace-s 0' removes folders in use)",
                file=source,
            ) from exc
        self.remove_tree(source)

    def point_link(self, link: str, target: str | None) -> None:
        """Point the local symlink ``link`` at ``target`` atomically (remove it for ``None``)."""
        if not self.local:
            return
        path = Path(link)
        if target is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            os.symlink(target, temp)
            try:
                os.replace(temp, path)
                _fsync_dir(path.parent)
                return
            except FileNotFoundError:
                # A 'registry doctor --grace-s 0' swept the temporary link: make another.
                if attempt == 2:
                    raise

    def read_link(self, link: str) -> str | None:
        """Return the target of the local symlink ``link``, or ``None``."""
        path = Path(link)
        return os.readlink(path) if self.local and path.is_symlink() else None


def _fsync_dir(folder: Path) -> None:
    """Make the entries of ``folder`` (created, renamed or removed files) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each recorded durably in its parent."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            created.mkdir()
        _fsync_dir(created.parent)


def _write_synced(path: Path, data: bytes) -> None:
    _make_dirs(path.parent)
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _mtime(info: Mapping[str, Any]) -> float | None:
    value = info.get("mtime") or info.get("LastModified") or info.get("created")
    if value is None:
        return None
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def local_fs() -> FileSystem:
    """Return the local file system."""
    return FileSystem(fsspec.filesystem("file"), local=True)


def open_fs(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[FileSystem, str]:
    """Return the file system for ``url`` (a folder or ``s3://bucket/prefix``) and its root."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    options = dict(storage_options or {})
    if protocol not in ("file", "local"):
        # Other writers change the bucket too: never trust a cached listing.
        options.setdefault("use_listings_cache", False)
    try:
        fs = fsspec.filesystem(protocol, **options)
    except (ImportError, ValueError) as exc:
        raise UsageError(
            f"artifact store {url!r} needs the {protocol!r} file system: {exc}",
            fix="install alphaops[s3] for s3:// URLs",
        ) from exc
    except Exception as exc:
        raise ExternalServiceError(f"cannot open artifact store {url!r}: {exc}") from exc
    wrapped = FileSystem(fs, local=protocol in ("file", "local"))
    root = str(Path(url.removeprefix("file://")).resolve()) if wrapped.local else wrapped.strip(url)
    return wrapped, root
