"""The frozen spec base shared by feature, label and dataset specs: SpecError conversion, hashing."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from alphaops.core.errors import SpecError
from alphaops.core.names import normalize_symbol
from alphaops.core.timeframes import Timeframe

__all__ = [
    "MAX_PERIOD",
    "SpecModel",
    "SymbolList",
    "TimeframeName",
    "canonical_json",
    "sha256_hex",
]

# Periods above this are almost certainly typos, and a huge warm-up would make every
# live window enormous; 10,000 bars is more than a year of hourly candles.
MAX_PERIOD = 10_000


def _unique_symbols(value: tuple[str, ...]) -> tuple[str, ...]:
    symbols = tuple(normalize_symbol(s) for s in value)
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols repeat: {list(symbols)}")
    return symbols


# Spec fields shared by dataset specs and training jobs: canonical, unique symbols
# ("btc/usdt" -> "BTCUSDT") and a canonical timeframe ("60m" -> "1h").
SymbolList = Annotated[tuple[str, ...], AfterValidator(_unique_symbols)]
TimeframeName = Annotated[str, AfterValidator(lambda value: Timeframe.parse(value).value)]


def canonical_json(value: object) -> str:
    """Return ``value`` as JSON with sorted keys and no spaces (the form that is hashed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256_hex(text: str) -> str:
    """Return the hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode()).hexdigest()


class SpecModel(BaseModel):
    """A frozen, hashable model that refuses unknown keys and fails with :class:`SpecError`.

    Every way of building one (constructor, ``model_validate``, ``model_validate_json``)
    passes through the wrap validator below, so callers only ever see ``SpecError``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    # What the error message calls this model, and a valid example shown in the fix.
    spec_label: ClassVar[str] = "spec"
    spec_example: ClassVar[str] = ""

    @model_validator(mode="wrap")
    @classmethod
    def _raise_spec_error(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            raise _to_spec_error(cls.spec_label, cls.spec_example, exc.errors()) from exc


def _to_spec_error(label: str, example: str, errors: list[ErrorDetails]) -> SpecError:
    # A failed item also makes pydantic report the tuple as too short; that is noise.
    primary = [e for e in errors if e["type"] != "too_short"] or errors
    parts = [_describe(e) for e in primary]
    fix = "correct the value(s) named above"
    if example:
        fix += f"; a valid example: {example}"
    return SpecError(
        f"invalid {label}: " + "; ".join(parts),
        fix=fix,
        problems=[
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "input": e["input"]}
            for e in primary
        ],
    )


def _describe(error: ErrorDetails) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "input"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown parameter {loc!r} (value {error['input']!r})"
    if kind == "missing":
        return f"{loc} is required"
    return f"{loc}={error['input']!r}: {error['msg']}"
