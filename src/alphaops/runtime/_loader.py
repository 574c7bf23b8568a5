"""Fetch and verify new versions in a helper process, off the serving process's interpreter.

A hot-swap's expensive part (SQL, checksums of every file, the manifest, reading the model)
is Python and system calls that would otherwise run in the predictor's polling thread and
take the GIL from predictions hundreds of times per load. :class:`ProcessFetcher` keeps one
helper process (``python -m alphaops.runtime._loader``: it never re-runs the bot's own script,
unlike ``multiprocessing``'s spawn) that runs :func:`~alphaops.runtime._model.fetch_verified`
on the same registry and sends back the verified bytes; the serving process then only builds
the session and smoke-tests it.

The helper starts on the first fetch in its own session (a Ctrl-C at the bot's terminal is
the bot's to handle), exits when its input closes (the predictor closed, or the bot died),
and is restarted if it died. Messages are length-prefixed frames: JSON headers and raw bytes,
no pickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import struct
import subprocess
import sys
import time
from typing import IO, Any

from alphaops.core import errors
from alphaops.core.errors import AlphaOpsError, ExternalServiceError, IntegrityError
from alphaops.registry import ModelKey, Registry
from alphaops.runtime._model import Fetched, fetch_verified

__all__ = ["ProcessFetcher"]

_LENGTH = struct.Struct(">Q")


class ProcessFetcher:
    """Fetch verified versions of ``registry`` through a helper process (one caller at a time)."""

    def __init__(self, registry: Registry, *, timeout_s: float = 120.0) -> None:
        self._settings = {
            "database_url": registry.database.url,
            "artifacts": registry.artifacts.url,
            "storage_options": dict(registry.artifacts.storage_options),
        }
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Return the helper's process id (``None`` while none runs)."""
        return None if self._process is None else self._process.pid

    def fetch(self, key: ModelKey, version: int) -> Fetched:
        """Return ``key/version`` verified by the helper; raise what the helper raised.

        :class:`ExternalServiceError` when the helper died, could not start, or did not
        answer in time (it is stopped; the next fetch starts a new one).
        """
        if self._process is None or self._process.poll() is not None:
            self._start()
        process = self._process
        assert process is not None
        assert process.stdin is not None
        assert process.stdout is not None
        deadline = time.monotonic() + self.timeout_s
        try:
            request = {"symbol": key.symbol, "model_type": key.model_type, "version": version}
            _send(process.stdin, json.dumps(request).encode())
            header = json.loads(_receive(process.stdout, deadline))
            if header["kind"] == "ok":
                model = _receive(process.stdout, deadline)
                reference = _receive(process.stdout, deadline)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            self.close()
            raise ExternalServiceError(
                f"the version-loading helper process failed ({type(exc).__name__}: {exc})",
                fix="nothing to do: versions load in this process meanwhile",
            ) from exc
        if header["kind"] == "ok":
            return Fetched(
                key,
                version,
                header["folder"],
                header["manifest_json"],
                model,
                reference,
                header["manifest_sha256"],
            )
        if header["kind"] == "fatal":
            self.close()
            raise ExternalServiceError(
                f"the version-loading helper process stopped: {header['message']}",
                fix="check the registry settings; versions load in this process meanwhile",
            )
        cls = getattr(errors, str(header["error"]), None)
        if not (isinstance(cls, type) and issubclass(cls, AlphaOpsError)):
            cls = IntegrityError
        raise cls(header["message"], fix=header["fix"], **header["details"])

    def _start(self) -> None:
        self.close()
        process = subprocess.Popen(
            # Not ``-m``: alphaops.runtime imports this module, and running a module that
            # its package already imported makes runpy warn on the bot's stderr.
            [sys.executable, "-c", _ENTRY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # the terminal's Ctrl-C goes to the bot, not here
        )
        assert process.stdin is not None
        self._process = process
        with contextlib.suppress(OSError):  # the first fetch reports a helper that died
            _send(process.stdin, json.dumps(self._settings).encode())

    def close(self) -> None:
        """Stop the helper (fetches are stateless: nothing is lost)."""
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5.0)


def _send(stream: IO[bytes], data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes], deadline: float | None = None) -> bytes:
    (size,) = _LENGTH.unpack(_read(stream, _LENGTH.size, deadline))
    return _read(stream, size, deadline)


def _read(stream: IO[bytes], size: int, deadline: float | None) -> bytes:
    fd = stream.fileno()
    parts: list[bytes] = []
    left = size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError("the helper did not answer in time")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the helper closed its output")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    # The helper: read the registry settings, then answer each request with a JSON header
    # ({"kind": "ok" | "error" | "fatal", …}) and, for "ok", the model and reference bytes.
    try:
        settings = json.loads(_receive(requests))
    except (EOFError, OSError, ValueError):
        return
    from alphaops.registry import open_registry

    try:
        registry = open_registry(
            settings["database_url"],
            artifacts=settings["artifacts"],
            storage_options=settings["storage_options"] or None,
        )
    except Exception as exc:  # said to the serving process, which then loads by itself
        with contextlib.suppress(EOFError, OSError):
            _receive(requests)
            message = f"cannot open the registry: {type(exc).__name__}: {exc}"
            _send(replies, json.dumps({"kind": "fatal", "message": message}).encode())
        return
    with registry:
        while True:
            try:
                request = json.loads(_receive(requests))
            except (EOFError, OSError, ValueError):
                return
            key = ModelKey(request["symbol"], request["model_type"])
            frames: list[bytes]
            try:
                fetched = fetch_verified(registry, key, int(request["version"]))
            except AlphaOpsError as exc:
                frames = [_error(type(exc).__name__, exc.message, exc.fix, exc.details)]
            except Exception as exc:  # anything else is a broken version, never a crash here
                what = f"{key}/{request['version']} cannot be loaded ({type(exc).__name__}: {exc})"
                frames = [_error("IntegrityError", what, "restore or re-publish the version", {})]
            else:
                header = {
                    "kind": "ok",
                    "folder": fetched.folder,
                    "manifest_json": fetched.manifest_json,
                    "manifest_sha256": fetched.manifest_sha256,
                }
                frames = [json.dumps(header).encode(), fetched.model, fetched.reference]
            try:
                for frame in frames:
                    _send(replies, frame)
            except OSError:
                return


_ENTRY = "import sys; from alphaops.runtime._loader import _serve; _serve(sys.stdin.buffer, sys.stdout.buffer)"


def _error(name: str, message: str, fix: str | None, details: dict[str, Any]) -> bytes:
    plain = {
        k: v if isinstance(v, str | int | float | bool | None) else str(v)
        for k, v in details.items()
    }
    header = {"kind": "error", "error": name, "message": message, "fix": fix, "details": plain}
    return json.dumps(header).encode()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
