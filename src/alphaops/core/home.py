"""The alphaops home folder: where the embedded database, data, datasets and reports live.

>>> from pathlib import Path
>>> home = AlphaOpsHome(Path("/tmp/ao"))
>>> home.data_dir, home.datasets_dir
(PosixPath('/tmp/ao/data'), PosixPath('/tmp/ao/datasets'))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["AlphaOpsHome"]


@dataclass(frozen=True)
class AlphaOpsHome:
    """Paths inside one alphaops home; ``ensure()`` creates the folders."""

    root: Path

    @property
    def data_dir(self) -> Path:
        """Return the market data store (Parquet per symbol and timeframe)."""
        return self.root / "data"

    @property
    def datasets_dir(self) -> Path:
        """Return where built training datasets (``.npz`` + report) are written."""
        return self.root / "datasets"

    @property
    def artifacts_dir(self) -> Path:
        """Return the local artifact store of the model registry."""
        return self.root / "artifacts"

    @property
    def reports_dir(self) -> Path:
        """Return where human-readable reports are written."""
        return self.root / "reports"

    @property
    def database_path(self) -> Path:
        """Return the embedded SQLite database file."""
        return self.root / "alphaops.db"

    def ensure(self) -> AlphaOpsHome:
        """Create the home and its folders if missing; return self."""
        for folder in (self.data_dir, self.datasets_dir, self.artifacts_dir, self.reports_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self
