"""Where alphaops log lines go: the ``alphaops`` stdlib logger, set up once at the entry point.

Every module logs through ``logging.getLogger(__name__)``; only an entry point (the CLI, a
server) calls :func:`configure_logging`, which attaches handlers to the ``alphaops`` logger
and nowhere else (a bot that embeds alphaops keeps its own logging set-up).

The level comes, lowest priority first, from the config's ``log_level`` (YAML file, then
``ALPHAOPS_LOG_LEVEL``), then the command line (``-v`` = INFO, ``-vv`` = DEBUG). Lines at
that level and above go to stderr; a log file, when given, receives INFO and above (DEBUG
with ``-vv``) whatever stderr shows, so it is a record of what ran.

>>> level_for("WARNING", verbosity=0), level_for("WARNING", verbosity=1), level_for("ERROR", 2)
('WARNING', 'INFO', 'DEBUG')
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

from alphaops.core.errors import UsageError

__all__ = ["LOGGER_NAME", "configure_logging", "level_for", "reset_logging"]

LOGGER_NAME = "alphaops"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_alphaops_handler"  # set on the handlers this module owns, so reset removes only those


def level_for(configured: str, verbosity: int) -> str:
    """Return the effective level name: ``-v``/``-vv`` win over the configured level."""
    if verbosity >= 2:
        return "DEBUG"
    if verbosity == 1:
        return "INFO"
    return configured


def configure_logging(
    level: str, *, log_file: Path | None = None, stream: TextIO | None = None
) -> logging.Logger:
    """Send ``alphaops`` log lines at ``level`` and above to stderr (and all INFO+ to a file).

    Calling it again replaces the handlers it attached before. A log file that cannot be
    opened raises :class:`UsageError` naming the path.
    """
    reset_logging()
    logger = logging.getLogger(LOGGER_NAME)
    numeric = logging.getLevelName(level)
    if not isinstance(numeric, int):
        raise UsageError(
            f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR",
            fix="set log_level (or ALPHAOPS_LOG_LEVEL) to DEBUG, INFO, WARNING or ERROR",
        )
    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(sys.stderr if stream is None else stream)
    console.setLevel(numeric)
    handlers.append(console)
    file_level = min(numeric, logging.INFO)
    if log_file is not None:
        handlers.append(_file_handler(log_file, file_level))
    formatter = logging.Formatter(_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
    logger.setLevel(file_level if log_file is not None else numeric)
    logger.propagate = False  # the root logger's handlers (if the host set any) stay quiet
    return logger


def reset_logging() -> None:
    """Remove (and close) the handlers :func:`configure_logging` attached."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def _file_handler(path: Path, level: int) -> logging.Handler:
    if path.is_dir():
        raise UsageError(
            f"--log-file {path} is a folder", fix="pass a file path, e.g. --log-file alphaops.log"
        )
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"--log-file {path} cannot be opened for writing: {exc.strerror or exc}",
            fix="pass a file in an existing, writable folder, e.g. --log-file ./alphaops.log",
        ) from exc
    handler.setLevel(level)
    return handler
