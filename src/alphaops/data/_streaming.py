"""Bounded-memory building blocks for reading huge candle files: a byte-capped sniff of the
head of a file, and a scanner that yields a JSON array's rows in bounded batches.

A 2 GB file that is not candles must be refused after reading its first megabyte, and one that
is must be read in pieces whose size does not grow with the file.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from alphaops.core.errors import DataFormatError

__all__ = [
    "JSON_BLOCK_CHARS",
    "JSON_FIX",
    "SNIFF_BYTES",
    "content_size",
    "iter_json_batches",
    "open_bytes",
    "sniff_head",
]

# How much of a file is looked at before anything else is read.
SNIFF_BYTES = 1 << 20
# How much JSON text is decoded at a time (its rows parsed as one batch).
JSON_BLOCK_CHARS = 1 << 20
# One candle row of JSON is a few hundred characters; this much without one is not candles.
_MAX_ROW_CHARS = 64 * 1024
# Rows are flat arrays (freqtrade) or flat objects: runs of "row," (at most 1000 per regex call:
# the engine keeps state per repetition, 20 MB for an unbounded run over a block), then maybe
# the last row and the closing ']'.
_RUN = re.compile(r"(?:\s*(?:\[[^\[\]]*\]|\{[^{}]*\})\s*,){1,1000}")
_LAST = re.compile(r"\s*(\[[^\[\]]*\]|\{[^{}]*\})\s*\]")
JSON_FIX = (
    "write a list of [ms, open, high, low, close, volume] rows (freqtrade) or a list of "
    "objects with timestamp, open, high, low, close, volume"
)


def open_bytes(file: Path) -> IO[bytes]:
    """Open ``file`` for reading bytes, decompressing ``.gz``."""
    if file.suffix.lower() == ".gz":
        return cast(IO[bytes], gzip.open(file, "rb"))
    return file.open("rb")


def content_size(file: Path) -> int:
    """Return the size of ``file``'s content: its size, or for ``.gz`` the size gzip recorded.

    gzip records it modulo 4 GiB, so a smaller figure than the compressed size means it
    wrapped; then ten times the compressed size stands in for it.
    """
    size = file.stat().st_size
    if file.suffix.lower() != ".gz" or size < 18:
        return size
    with file.open("rb") as handle:
        handle.seek(-4, 2)
        recorded = int.from_bytes(handle.read(4), "little")
    return recorded if recorded >= size else size * 10


def sniff_head(file: Path) -> tuple[bytes, bool]:
    """Return the first :data:`SNIFF_BYTES` bytes of ``file`` and whether that is all of it."""
    with open_bytes(file) as handle:
        head = handle.read(SNIFF_BYTES + 1)
    return head[:SNIFF_BYTES], len(head) <= SNIFF_BYTES


def _snippet(text: str) -> str:
    shown = text.strip()[:60]
    return repr(shown + ("…" if len(text.strip()) > 60 else ""))


def iter_json_batches(file: Path) -> Iterator[list[Any]]:
    """Yield the rows of the top-level JSON array in ``file`` in batches of bounded size.

    Rows must be flat arrays or flat objects. Anything else — text that is not such a row
    where one should be, a row longer than 64 KiB, a file that ends inside the array — raises
    :class:`DataFormatError` naming the character offset, having read at most one block more.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    with open_bytes(file) as handle:
        buffer, offset, started, done = "", 0, False, False
        while not done:
            block = handle.read(JSON_BLOCK_CHARS)
            try:
                buffer += decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    f"{file} is not UTF-8 JSON near byte {exc.start}: {exc.reason}",
                    fix=JSON_FIX,
                    path=str(file),
                ) from exc
            pos = 0
            if not started:
                stripped = buffer.lstrip("\ufeff \t\r\n")
                if not stripped and block:
                    continue
                if not stripped.startswith("["):
                    raise DataFormatError(
                        f"{file} does not hold a JSON list (starts {_snippet(stripped)})",
                        fix=JSON_FIX,
                        path=str(file),
                    )
                pos, started = len(buffer) - len(stripped) + 1, True
                if re.match(r"\s*\]", buffer[pos:]):
                    return
            end = pos
            while (run := _RUN.match(buffer, end)) is not None:
                end = run.end()
            rows = buffer[pos:end].rstrip().removesuffix(",")
            pos = end
            if (last := _LAST.match(buffer, pos)) is not None:
                rows = f"{rows},{last.group(1)}" if rows else last.group(1)
                pos, done = last.end(), True
            if rows:
                try:
                    yield json.loads("[" + rows + "]")
                except ValueError as exc:
                    raise DataFormatError(
                        f"{file}: a row near character {offset + pos} is not valid JSON ({exc})",
                        fix=JSON_FIX,
                        path=str(file),
                    ) from exc
            offset += pos
            buffer = buffer[pos:]
            if not done and (not block or len(buffer) > _MAX_ROW_CHARS):
                what = "ends inside the list" if not block else "holds no candle row"
                raise DataFormatError(
                    f"{file} {what} at character {offset} ({_snippet(buffer)}): not candles",
                    fix=JSON_FIX,
                    path=str(file),
                    offset=offset,
                )
