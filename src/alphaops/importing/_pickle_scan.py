"""Read a pickle's opcodes without unpickling it: what it would import, and plain data.

:func:`scan_pickle` walks the opcode stream with :mod:`pickletools` (which only parses) and
returns the globals the pickle would import and call. A pickle with none is *data only*: it
cannot run code, and :func:`plain_strings` reads a flat list or tuple of strings out of it (a
``_features.pkl`` or ``_cols.pkl`` sidecar) without ever calling :mod:`pickle`. A truncated or
garbled stream raises :class:`~alphaops.core.errors.IntegrityError` naming the file.

>>> import pickle
>>> scan = scan_pickle(pickle.dumps(["rsi_14", "returns_1"]), where="f.pkl")
>>> scan.data_only, plain_strings(scan, where="f.pkl")
(True, ['rsi_14', 'returns_1'])
>>> scan_pickle(pickle.dumps(len), where="g.pkl").globals
('builtins.len',)
"""

from __future__ import annotations

import io
import pickletools
import zlib
from dataclasses import dataclass

from alphaops.core.errors import IntegrityError, UntrustedCodeError

__all__ = ["PickleScan", "plain_strings", "scan_pickle"]

_CODE_OPS = frozenset(
    {
        "GLOBAL",
        "STACK_GLOBAL",
        "INST",
        "OBJ",
        "NEWOBJ",
        "NEWOBJ_EX",
        "REDUCE",
        "BUILD",
        "EXT1",
        "EXT2",
        "EXT4",
        "PERSID",
        "BINPERSID",
    }
)
_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
# joblib compresses with zlib by default when asked (compress=N): its header, then the data.
_ZLIB_MAGIC = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
_JOBLIB_ARRAYS = "joblib.numpy_pickle.NumpyArrayWrapper"


@dataclass(frozen=True)
class PickleScan:
    """What a pickle holds, read from its opcodes: the globals it imports, and its ops."""

    globals: tuple[str, ...]
    ops: tuple[tuple[str, object], ...]
    size: int
    complete: bool = True
    """False when the scan stopped at joblib's inline array data (later globals unseen)."""

    @property
    def data_only(self) -> bool:
        """Return whether the pickle imports nothing (so loading it cannot run code)."""
        return not self.globals and not any(name in _CODE_OPS for name, _ in self.ops)

    @property
    def modules(self) -> tuple[str, ...]:
        """Return the modules the pickle imports from, sorted."""
        return tuple(sorted({g.rsplit(".", 1)[0] for g in self.globals}))


def _payload(data: bytes) -> bytes:
    if data[:2] in _ZLIB_MAGIC:
        try:
            return zlib.decompress(data)
        except zlib.error:
            return data
    return data


def scan_pickle(data: bytes, *, where: str) -> PickleScan:
    """Parse ``data`` opcode by opcode (never executing it) and return what it references."""
    payload = _payload(data)
    if not payload:
        raise IntegrityError(
            f"{where} is empty", fix="restore the file from a backup or re-save it", file=where
        )
    ops: list[tuple[str, object]] = []
    found: list[str] = []
    recent: list[str | None] = []  # the values pushed, strings only (for STACK_GLOBAL)
    memo: dict[int, str | None] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(payload)):
            name = opcode.name
            ops.append((name, arg))
            if name in ("GLOBAL", "INST") and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif name == "STACK_GLOBAL" and len(recent) >= 2:
                found.append(f"{recent[-2]}.{recent[-1]}")
            if name in _STRING_OPS and isinstance(arg, str | bytes):
                recent.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
            elif name in _GET_OPS and isinstance(arg, int):
                recent.append(memo.get(arg))
            elif name in _PUT_OPS and isinstance(arg, int):
                memo[arg] = recent[-1] if recent else None
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif opcode.stack_after:
                recent.append(None)
    except (ValueError, EOFError, UnicodeDecodeError) as exc:
        if _JOBLIB_ARRAYS in found:
            # joblib writes each numpy array's raw bytes inside the stream, which only its
            # unpickler can skip: the scan stops at the first array (globals so far).
            return PickleScan(tuple(dict.fromkeys(found)), tuple(ops), len(data), complete=False)
        raise IntegrityError(
            f"{where} is not a complete pickle ({exc}); it is truncated or corrupted",
            fix="restore the file from a backup or re-save the model",
            file=where,
        ) from exc
    if not ops or ops[-1][0] != "STOP":
        raise IntegrityError(
            f"{where} ends before its pickle's STOP opcode; it is truncated",
            fix="restore the file from a backup or re-save the model",
            file=where,
        )
    return PickleScan(tuple(dict.fromkeys(found)), tuple(ops), len(data))


def plain_strings(scan: PickleScan, *, where: str) -> list[str]:
    """Return the strings of a data-only pickle of one flat list or tuple of strings.

    Raise :class:`UntrustedCodeError` when the pickle imports anything (a pandas Index, a numpy
    array): reading it needs the sandboxed loader (``--trust-pickle``).
    """
    if not scan.data_only:
        raise UntrustedCodeError(
            f"{where} is not a plain list of names: loading it would import "
            f"{', '.join(scan.globals) or 'objects'}",
            fix="pass --trust-pickle to read it in the sandboxed loader, or save the column "
            "names as a JSON list next to the model",
            file=where,
            imports=list(scan.globals),
        )
    memo: dict[int, object] = {}
    stack: list[object] = []
    marks: list[int] = []
    for name, arg in scan.ops:
        if name in _STRING_OPS:
            stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
        elif name in ("EMPTY_LIST", "EMPTY_TUPLE"):
            stack.append([])
        elif name == "MARK":
            marks.append(len(stack))
        elif name in ("APPENDS", "TUPLE", "LIST"):
            start = marks.pop()
            items, stack[start:] = stack[start:], []
            if name == "APPENDS":
                target = stack[-1]
                if not isinstance(target, list):
                    break
                target.extend(items)
            else:
                stack.append(list(items))
        elif name == "APPEND":
            item = stack.pop()
            target = stack[-1]
            if not isinstance(target, list):
                break
            target.append(item)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items, stack[-n:] = stack[-n:], []
            stack.append(list(items))
        elif name in _PUT_OPS and isinstance(arg, int):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in _GET_OPS and isinstance(arg, int):
            stack.append(memo[arg])
        elif name in ("PROTO", "FRAME", "STOP"):
            continue
        else:
            break
    else:
        if len(stack) == 1 and isinstance(stack[0], list):
            values = stack[0]
            if values and all(isinstance(v, str) for v in values):
                return [str(v) for v in values]
    raise IntegrityError(
        f"{where} does not hold a flat list of column names",
        fix="save the feature names as a list of strings (or a JSON list next to the model)",
        file=where,
    )
