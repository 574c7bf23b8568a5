"""Model references: ``SYMBOL/TYPE``, ``SYMBOL/TYPE@alias`` and ``SYMBOL/TYPE/VERSION``.

Every part is a validated name (see :mod:`alphaops.core.names`), so a reference can never
escape the artifact root.

>>> parse_ref("BTCUSDT/lightgbm@champion")
ModelRef(key=ModelKey(symbol='BTCUSDT', model_type='lightgbm'), version=None, alias='champion')
>>> parse_ref("BTCUSDT/lightgbm/7").version
7
>>> parse_ref("BTCUSDT/lightgbm/9223372036854775808")
Traceback (most recent call last):
...
alphaops.core.errors.InvalidNameError: version 9223372036854775808 in reference ... is too large...
>>> str(parse_ref("btcusdt/lightgbm"))
'BTCUSDT/lightgbm@champion'
>>> parse_key("BTCUSDT/..")
Traceback (most recent call last):
...
alphaops.core.errors.InvalidNameError: model type '..' is not a safe name: ...
"""

from __future__ import annotations

from dataclasses import dataclass

from alphaops.core.errors import InvalidNameError, UsageError
from alphaops.core.names import normalize_symbol, validate_name

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LATEST",
    "MAX_VERSION",
    "PREVIOUS",
    "RESERVED_ALIASES",
    "ModelKey",
    "ModelRef",
    "parse_key",
    "parse_ref",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
LATEST = "latest"
# Aliases that only promote/rollback may move (``latest`` is a synonym of ``champion``).
RESERVED_ALIASES = frozenset({CHAMPION, PREVIOUS, LATEST})

_FORMS = "'SYMBOL/TYPE', 'SYMBOL/TYPE@ALIAS' or 'SYMBOL/TYPE/VERSION'"
MAX_VERSION = 2**31 - 1
"""The largest version number: the range of the version columns on every database backend."""


@dataclass(frozen=True, order=True)
class ModelKey:
    """One model line: a symbol and a model type, e.g. ``BTCUSDT/lightgbm``."""

    symbol: str
    model_type: str

    def __post_init__(self) -> None:
        validate_name(self.symbol, kind="symbol")
        validate_name(self.model_type, kind="model type")

    def __str__(self) -> str:
        return f"{self.symbol}/{self.model_type}"


@dataclass(frozen=True)
class ModelRef:
    """A model key plus either a version number or an alias (``latest`` means ``champion``)."""

    key: ModelKey
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        if (self.version is None) == (self.alias is None):
            raise UsageError(
                f"reference to {self.key} needs exactly one of a version or an alias",
                fix=f"write it as {_FORMS}",
            )
        if self.version is not None and not 1 <= self.version <= MAX_VERSION:
            raise UsageError(
                f"version {self.version} of {self.key} is not between 1 and {MAX_VERSION}",
                fix=f"use a published version: alphaops registry list {self.key}",
            )
        if self.alias is not None:
            validate_name(self.alias, kind="alias")

    def __str__(self) -> str:
        return (
            f"{self.key}/{self.version}" if self.version is not None else f"{self.key}@{self.alias}"
        )


def parse_key(text: str) -> ModelKey:
    """Parse ``SYMBOL/TYPE`` into a :class:`ModelKey` (the symbol is upper-cased)."""
    parts = text.strip().split("/") if isinstance(text, str) else []
    if len(parts) != 2:
        raise InvalidNameError(
            f"model {text!r} is not of the form 'SYMBOL/TYPE'", fix="write e.g. 'BTCUSDT/lightgbm'"
        )
    symbol = normalize_symbol(parts[0])
    return ModelKey(symbol, validate_name(parts[1], kind="model type"))


def parse_ref(text: str) -> ModelRef:
    """Parse a reference; a bare ``SYMBOL/TYPE`` means its ``champion``."""
    if not isinstance(text, str):
        raise InvalidNameError(f"reference {text!r} is not a string", fix=f"write {_FORMS}")
    text = text.strip()
    if "@" in text:
        head, _, alias = text.partition("@")
        alias = validate_name(alias, kind="alias")
        return ModelRef(parse_key(head), alias=CHAMPION if alias == LATEST else alias)
    parts = text.split("/")
    if len(parts) == 3:
        key = parse_key("/".join(parts[:2]))
        if not parts[2].isdigit() or not parts[2].isascii():
            raise InvalidNameError(
                f"version {parts[2]!r} in reference {text!r} is not a positive integer",
                fix=f"write {_FORMS}",
            )
        digits = parts[2].lstrip("0") or "0"  # int() refuses strings of over 4300 digits
        if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
            raise InvalidNameError(
                f"version {parts[2]} in reference {text!r} is too large (at most {MAX_VERSION})",
                fix=f"use a published version: alphaops registry list {key}",
            )
        return ModelRef(key, version=int(digits))
    return ModelRef(parse_key(text), alias=CHAMPION)
