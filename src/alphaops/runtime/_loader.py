"""Fetch and verify new versions in a helper process, off the serving process's interpreter.

A hot-swap's expensive part (SQL, checksums of every file, the manifest, reading the model)
is Python and system calls that would otherwise run in the predictor's polling thread and
take the GIL from predictions hundreds of times per load. :class:`ProcessFetcher` keeps one
spawned helper process that runs :func:`~alphaops.runtime._model.fetch_verified` on the same
registry and sends back the verified bytes; the serving process then only builds the session
and smoke-tests it. The helper starts on the first fetch, ignores Ctrl-C (the bot handles
it), exits when the predictor closes or its pipe breaks, and is restarted if it died.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from typing import Any

from alphaops.core import errors
from alphaops.core.errors import AlphaOpsError, ExternalServiceError, IntegrityError
from alphaops.registry import ModelKey, Registry
from alphaops.runtime._model import Fetched, fetch_verified

__all__ = ["ProcessFetcher"]


class ProcessFetcher:
    """Fetch verified versions of ``registry`` through a helper process (one caller at a time)."""

    def __init__(self, registry: Registry, *, timeout_s: float = 120.0) -> None:
        self._args = (
            registry.database.url,
            registry.artifacts.url,
            dict(registry.artifacts.storage_options),
        )
        self.timeout_s = timeout_s
        self._process: Any = None
        self._conn: Any = None

    @property
    def pid(self) -> int | None:
        """Return the helper's process id (``None`` until the first fetch)."""
        return None if self._process is None else int(self._process.pid)

    def fetch(self, key: ModelKey, version: int) -> Fetched:
        """Return ``key/version`` verified by the helper; raise what the helper raised.

        :class:`ExternalServiceError` when the helper died or did not answer in time (it is
        stopped; the next fetch starts a new one).
        """
        if self._process is None or not self._process.is_alive():
            self._start()
        try:
            self._conn.send((key.symbol, key.model_type, version))
            if not self._conn.poll(self.timeout_s):
                raise TimeoutError(f"no answer in {self.timeout_s:g} s")
            kind, payload = self._conn.recv()
        except (OSError, EOFError, TimeoutError) as exc:
            self.close()
            raise ExternalServiceError(
                f"the version-loading helper process failed ({type(exc).__name__}: {exc})",
                fix="nothing to do: the next load starts a new helper",
            ) from exc
        if kind == "ok":
            assert isinstance(payload, Fetched)
            return payload
        if kind == "fatal":
            self.close()
            raise ExternalServiceError(
                f"the version-loading helper process stopped: {payload}",
                fix="check the registry settings; versions load in this process meanwhile",
            )
        name, message, fix, details = payload
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, AlphaOpsError)):
            cls = IntegrityError
        raise cls(message, fix=fix, **details)

    def _start(self) -> None:
        self.close()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, *self._args), name="alphaops-loader", daemon=True
        )
        self._process.start()
        child.close()
        self._conn = parent

    def close(self) -> None:
        """Stop the helper (it finishes nothing: fetches are stateless)."""
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
        if process is not None:
            process.join(timeout=5.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5.0)


def _serve(conn: Any, database_url: str, artifacts: str, options: dict[str, Any]) -> None:
    # The helper: answer (symbol, model_type, version) with ("ok", Fetched) or
    # ("error", (class name, message, fix, details)) until told to stop or the pipe breaks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from alphaops.registry import open_registry

    try:
        registry = open_registry(database_url, artifacts=artifacts, storage_options=options)
    except Exception as exc:  # said to the serving process, which loads by itself instead
        with contextlib.suppress(OSError):
            conn.recv()
            conn.send(("fatal", f"cannot open the registry: {type(exc).__name__}: {exc}"))
        return
    with registry:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            if request is None:
                return
            symbol, model_type, version = request
            try:
                reply: tuple[str, Any] = (
                    "ok",
                    fetch_verified(registry, ModelKey(symbol, model_type), version),
                )
            except AlphaOpsError as exc:
                reply = ("error", (type(exc).__name__, exc.message, exc.fix, _plain(exc.details)))
            except Exception as exc:  # anything else is a broken version, never a crash here
                reply = (
                    "error",
                    ("IntegrityError", f"{symbol}/{model_type}/{version} cannot be loaded "
                     f"({type(exc).__name__}: {exc})", "restore or re-publish the version", {}),
                )  # fmt: skip
            try:
                conn.send(reply)
            except (OSError, EOFError):
                return


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | None) else str(v)
        for k, v in details.items()
    }
