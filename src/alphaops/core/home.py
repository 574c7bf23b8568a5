"""The alphaops home folder: where the embedded database, data, datasets and reports live.

>>> from pathlib import Path
>>> home = AlphaOpsHome(Path("/tmp/ao"))
>>> home.data_dir, home.datasets_dir
(PosixPath('/tmp/ao/data'), PosixPath('/tmp/ao/datasets'))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alphaops.core.errors import ConfigError, NotFoundError

__all__ = ["CREATE_HOME_HINT", "AlphaOpsHome"]

CREATE_HOME_HINT = (
    "create one with 'alphaops quickstart' (sample data and models) or "
    "'alphaops data import FILE', or point --home / ALPHAOPS_HOME at an existing home"
)
"""How to get a home, as shown when a read-only command finds none."""


@dataclass(frozen=True)
class AlphaOpsHome:
    """Paths inside one alphaops home; ``ensure()`` creates the folders, ``require()`` only checks.

    Commands that create things (import, train, publish) call ``ensure()``; commands that only
    read call ``require()``, so that a mistyped home is an error instead of a new empty home.
    """

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
        """Create the home and its folders if missing; return self.

        Raise :class:`~alphaops.core.errors.ConfigError` naming the path when the home is a
        file, or a folder of it cannot be created.
        """
        self._not_a_file()
        for folder in (self.data_dir, self.datasets_dir, self.artifacts_dir, self.reports_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._unusable(folder, exc) from exc
        return self

    def require(self) -> AlphaOpsHome:
        """Return self if the home exists as a folder; create nothing.

        Raise :class:`~alphaops.core.errors.NotFoundError` naming the path and how to create a
        home when it does not exist, and :class:`~alphaops.core.errors.ConfigError` when it is
        a file.

        >>> AlphaOpsHome(Path("/nonexistent/ao")).require()
        Traceback (most recent call last):
        ...
        alphaops.core.errors.NotFoundError: alphaops home /nonexistent/ao does not exist...
        """
        self._not_a_file()
        if not self.root.is_dir():
            raise NotFoundError(
                f"alphaops home {self._shown} does not exist",
                fix=CREATE_HOME_HINT,
                home=str(self.root),
            )
        return self

    @property
    def _shown(self) -> str:
        absolute = self.root.absolute()
        return str(self.root) if absolute == self.root else f"{self.root} ({absolute})"

    def _not_a_file(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"alphaops home {self._shown} is a file, not a folder",
                fix="point --home / ALPHAOPS_HOME at a folder (or move the file away)",
                home=str(self.root),
            )

    def _unusable(self, folder: Path, exc: OSError) -> ConfigError:
        reason = exc.strerror or str(exc)
        return ConfigError(
            f"cannot create the alphaops home {self._shown}: {folder}: {reason}",
            fix="point --home / ALPHAOPS_HOME at a folder you can write, or fix its permissions",
            home=str(self.root),
        )
