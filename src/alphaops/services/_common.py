"""What every use case shares: opening the registry the configuration names."""

from __future__ import annotations

from alphaops.core.config import AlphaOpsConfig, check_database_url
from alphaops.core.home import AlphaOpsHome
from alphaops.registry import Registry, open_registry

__all__ = ["open_configured_registry"]


def open_configured_registry(
    config: AlphaOpsConfig,
    *,
    database_url: str | None = None,
    artifacts: str | None = None,
    create: bool = True,
) -> Registry:
    """Open the registry of ``config`` (explicit ``database_url``/``artifacts`` win).

    Without a configured database URL this is the embedded SQLite registry in the home.
    Read-only use cases pass ``create=False``: then a home or database that does not exist
    raises :class:`~alphaops.core.errors.NotFoundError` naming it and how to create one,
    instead of a new, empty registry being created where a mistyped path points.
    """
    url = database_url or config.registry.database_url
    if url is not None:
        # A configured URL is always a URL: never a folder to create (see open_registry).
        url = check_database_url(url)
    target: str | AlphaOpsHome = url or AlphaOpsHome(config.home)
    return open_registry(target, artifacts=artifacts or config.registry.artifacts, create=create)
