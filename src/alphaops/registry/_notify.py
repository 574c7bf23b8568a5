"""PostgreSQL LISTEN/NOTIFY: learn of alias moves without polling (the generation row is the
portable way; this is the push way on PostgreSQL)."""

from __future__ import annotations

import json
from collections import deque
from types import TracebackType
from typing import Any

from sqlalchemy.engine import make_url

from alphaops.core.errors import UsageError

__all__ = ["AliasListener"]


class AliasListener:
    """A dedicated PostgreSQL connection listening on the registry's notification channel.

    Each alias move commits a JSON payload ``{"key", "alias", "from", "to", "generation"}``.
    """

    def __init__(self, database_url: str, channel: str) -> None:
        url = make_url(database_url)
        if not url.drivername.startswith("postgresql"):
            raise UsageError(
                f"LISTEN/NOTIFY needs PostgreSQL, not {url.drivername}",
                fix="poll Registry.generation() instead; it changes with every alias move",
            )
        import psycopg

        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._backlog: deque[str] = deque()
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._conn.execute(f'LISTEN "{channel}"')

    def wait(self, timeout_s: float) -> dict[str, Any] | None:
        """Return the next alias move, or ``None`` if none arrives within ``timeout_s``."""
        if not self._backlog:
            # One network packet may carry several notifications: keep them all.
            for note in self._conn.notifies(timeout=timeout_s, stop_after=1):
                self._backlog.append(note.payload)
        if not self._backlog:
            return None
        payload: dict[str, Any] = json.loads(self._backlog.popleft())
        return payload

    def close(self) -> None:
        """Close the listening connection."""
        self._conn.close()

    def __enter__(self) -> AliasListener:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
