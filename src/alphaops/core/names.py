"""Validated names: symbols, model types, aliases and dataset names.

Names become folder names and URL segments, so they are restricted to a safe set: letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most 64 characters, and
never containing ``..``.

>>> normalize_symbol("btc/usdt")
'BTCUSDT'
>>> validate_name("lightgbm", kind="model type")
'lightgbm'
>>> validate_name("../etc", kind="model type")
Traceback (most recent call last):
...
alphaops.core.errors.InvalidNameError: model type '../etc' is not a safe name: ...
"""

from __future__ import annotations

import re

from alphaops.core.errors import InvalidNameError

__all__ = ["normalize_symbol", "validate_name"]

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_name(value: str, *, kind: str = "name") -> str:
    """Return ``value`` unchanged if it is a safe name, else raise :class:`InvalidNameError`."""
    if not isinstance(value, str) or not _SAFE.fullmatch(value) or ".." in value:
        raise InvalidNameError(
            f"{kind} {value!r} is not a safe name: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..' or path separators",
            fix=f"rename the {kind}, e.g. 'BTCUSDT' or 'lightgbm'",
            value=value,
        )
    return value


def normalize_symbol(value: str) -> str:
    """Return the canonical symbol: upper case, exchange separators (``/``, ``:``) removed.

    ``BTC/USDT`` (ccxt style) and ``btcusdt`` both become ``BTCUSDT``.
    """
    if not isinstance(value, str):
        raise InvalidNameError(f"symbol {value!r} is not a string", fix="pass e.g. 'BTCUSDT'")
    cleaned = value.strip().upper()
    if "/" in cleaned:
        # ccxt's "BTC/USDT" or "BTC/USDT:USDT" (perpetual) -> "BTCUSDT"
        cleaned = cleaned.split(":", 1)[0].replace("/", "")
    return validate_name(cleaned, kind="symbol")
