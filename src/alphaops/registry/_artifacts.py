"""Where a registry keeps files.

Bundles: ``<root>/<SYMBOL>/<model_type>/<version>/`` (immutable, checksummed by the manifest).
Reports attached to gate runs: ``<root>/<SYMBOL>/<model_type>/_gates/<version>/<run_id>/``,
outside the bundle folder (checksummed in the ``gate_attachments`` table).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from alphaops.registry._fs import FileSystem, open_fs
from alphaops.registry.refs import LATEST, ModelKey

__all__ = ["GATES", "STAGING", "ArtifactStore", "staging_started"]

# Bundles are written here first; the leading dot keeps it apart from validated symbol names.
STAGING = ".staging"
# Gate reports of every version of a model; the underscore keeps it apart from version numbers.
GATES = "_gates"


class ArtifactStore:
    """The artifact root of one registry, on a local folder or any fsspec URL (``s3://``)."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.fs: FileSystem
        self.fs, self.root = open_fs(url, storage_options)
        self.url = url
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self._protocol = "" if self.fs.local else url.split("://", 1)[0] + "://"

    @property
    def local(self) -> bool:
        """Return whether the artifacts are in a local folder (and keep ``latest`` links)."""
        return self.fs.local

    def model_dir(self, key: ModelKey) -> str:
        """Return the folder of all versions of ``key``."""
        return f"{self.root}/{key.symbol}/{key.model_type}"

    def version_dir(self, key: ModelKey, version: int) -> str:
        """Return the folder of one version."""
        return f"{self.model_dir(key)}/{version}"

    def gates_dir(self, key: ModelKey) -> str:
        """Return the folder of the reports attached to gate runs of ``key``."""
        return f"{self.model_dir(key)}/{GATES}"

    def gate_run_dir(self, key: ModelKey, version: int, run_id: str) -> str:
        """Return the folder of the reports attached to one gate run."""
        return f"{self.gates_dir(key)}/{version}/{run_id}"

    def latest_link(self, key: ModelKey) -> str:
        """Return the path of the ``latest`` symlink of ``key``."""
        return f"{self.model_dir(key)}/{LATEST}"

    def new_staging_dir(self) -> str:
        """Return a fresh, unique staging folder path, named after the time it was made.

        The time in the name (epoch milliseconds) is what ``registry doctor`` ages staging
        folders by: S3 has no folder times, and an upload in progress must never look old.
        """
        return f"{self.root}/{STAGING}/{time.time_ns() // 1_000_000}-{uuid.uuid4().hex}"

    def display(self, path: str) -> str:
        """Return ``path`` as a URL people can paste (``s3://bucket/...`` or a local path)."""
        return f"{self._protocol}{path}"


def staging_started(name: str) -> float | None:
    """Return when the staging folder ``name`` was made (epoch seconds), if its name says.

    >>> staging_started("1767225600000-0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    1767225600.0
    >>> staging_started("0f1e2d3c4b5a69788796a5b4c3d2e1f0") is None
    True
    """
    stamp, sep, rest = name.partition("-")
    if not sep or not stamp.isdigit() or len(rest) != 32:
        return None
    return int(stamp) / 1000
