"""What every use case shares: opening the registry the configuration names."""

from __future__ import annotations

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.home import AlphaOpsHome
from alphaops.registry import Registry, open_registry

__all__ = ["open_configured_registry"]


def open_configured_registry(
    config: AlphaOpsConfig, *, database_url: str | None = None, artifacts: str | None = None
) -> Registry:
    """Open the registry of ``config`` (explicit ``database_url``/``artifacts`` win).

    Without a configured database URL this is the embedded SQLite registry in the home.
    """
    url = database_url or config.registry.database_url
    target: str | AlphaOpsHome = url or AlphaOpsHome(config.home).ensure()
    return open_registry(target, artifacts=artifacts or config.registry.artifacts)
