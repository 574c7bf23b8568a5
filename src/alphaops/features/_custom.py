"""Your own features: a pure function of past candles, named by import path in the spec.

A custom feature is declared like any built-in kind::

    {"kind": "custom", "path": "my_pkg.features:body_ratio", "warmup": 20,
     "params": {"window": 20}}

and computed by calling ``body_ratio(bars, window=20)``, where ``bars`` is a
:class:`CustomBars` of read-only float64 arrays (``high``, ``low``, ``close``, ``volume``,
oldest first). The function returns one float per bar, the same length as the bars; the
value at bar ``i`` must depend only on bars ``<= i`` and on at most the last ``warmup`` of
them (NaN where it cannot be computed yet).

The spec records a sha256 of the function's source code (``code``), so editing the function
changes the spec hash, the training config hash and the manifest; a spec whose recorded
``code`` no longer matches the function is refused. (Helpers the function calls are not
hashed: put a ``version`` in ``params`` and raise it when they change.)

Batch (training, gates) calls the function once on the whole history. Live, the
:class:`~alphaops.features.FeatureStream` keeps the last ``warmup`` bars and calls it on
them for every new bar: one call on ``warmup`` bars per bar (tens of microseconds for a
vectorised NumPy function on a few hundred bars, against ~1 µs for a built-in kind). The two
agree bit for bit when the function computes each value from its own window in a fixed order,
and to round-off otherwise; the lookahead audit (:func:`~alphaops.features.audit_lookahead`)
checks every bar and refuses a feature that reads the future or needs more than ``warmup``
bars.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, PrivateAttr, model_validator

from alphaops.core.errors import SpecError
from alphaops.core.specs import MAX_PERIOD
from alphaops.features._kinds import _FeatureModel

__all__ = ["CustomBars", "CustomFeature", "code_sha256", "resolve"]

FloatArray = npt.NDArray[np.float64]
ParamValue = bool | int | float | str

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_COLUMN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class CustomBars:
    """What a custom feature function receives: read-only float64 columns, oldest bar first."""

    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.close.size)


def resolve(path: str) -> Callable[..., Any]:
    """Import ``module:function`` and return the function; raise :class:`SpecError` if bad."""
    if not _PATH.match(path):
        raise SpecError(
            f"custom feature path {path!r} is not 'module:function'",
            fix="name an importable function, e.g. 'my_pkg.features:body_ratio'",
            path=path,
        )
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(
            f"custom feature path {path!r}: cannot import module {module_name!r} ({exc})",
            fix="install the package that defines it or fix the module name",
            path=path,
        ) from exc
    function = getattr(module, attribute, None)
    if function is None:
        raise SpecError(
            f"custom feature path {path!r}: module {module_name!r} has no {attribute!r}",
            fix=f"define {attribute}(bars, **params) in {module_name} or fix the name",
            path=path,
        )
    if not inspect.isfunction(function):
        raise SpecError(
            f"custom feature path {path!r} names a {type(function).__name__}, not a function",
            fix="point it at a Python function def f(bars, **params) -> array of len(bars)",
            path=path,
        )
    return function


def code_sha256(function: Callable[..., Any]) -> str:
    """Return the sha256 of ``function``'s source code."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError) as exc:
        raise SpecError(
            f"cannot read the source code of custom feature {function!r} ({exc})",
            fix="define the function with def in a Python module file",
        ) from exc
    return hashlib.sha256(source.encode()).hexdigest()


class CustomFeature(_FeatureModel):
    """A user's feature function, by import path, with its parameters and source hash.

    ``code`` is filled in from the function's source when omitted; when given (a spec read
    back from a manifest) it must match the function's current source.
    """

    spec_label: ClassVar[str] = "custom feature"
    spec_example: ClassVar[str] = (
        '{"kind": "custom", "path": "my_pkg.features:body_ratio", "warmup": 20}'
    )

    kind: Literal["custom"] = "custom"
    path: str = Field(description="Import path of the function, 'module:function'.")
    warmup: int = Field(
        ge=1, le=MAX_PERIOD, strict=True, description="Bars the value at one bar depends on."
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Keyword arguments passed to the function."
    )
    column: str | None = Field(
        None, description="Column name; default: the function name and the parameter values."
    )
    code: str | None = Field(None, description="sha256 of the function's source (filled in).")

    _function: Callable[..., Any] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        function = resolve(self.path)
        actual = code_sha256(function)
        if self.code is not None and self.code != actual:
            raise SpecError(
                f"custom feature {self.path}: its source code changed since this spec was "
                f"recorded (sha256 {self.code[:12]}… then, {actual[:12]}… now)",
                fix="re-train the model with the new function, or restore the old code",
                path=self.path,
                recorded=self.code,
                actual=actual,
            )
        if self.column is not None and not _COLUMN.match(self.column):
            raise SpecError(
                f"custom feature column {self.column!r} is not a lower-case identifier",
                fix="use letters, digits and underscores, e.g. 'body_ratio_20'",
                column=self.column,
            )
        object.__setattr__(self, "code", actual)
        self._function = function
        return self

    def __hash__(self) -> int:  # params is a dict: hash the canonical fields instead
        return hash((self.path, self.warmup, tuple(sorted(self.params.items())), self.column))

    @property
    def name(self) -> str:
        """Return ``column``, or ``<function>[_<param values in key order>]``."""
        if self.column is not None:
            return self.column
        parts = [self.path.rpartition(":")[2].lower()]
        for key in sorted(self.params):
            parts.append(re.sub(r"[^a-z0-9]+", "p", str(self.params[key]).lower()))
        return "_".join(parts)

    @property
    def warmup_bars(self) -> int:
        """Return ``warmup``."""
        return self.warmup

    def values(
        self, high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray
    ) -> FloatArray:
        """Call the function on these columns; check and return its ``(n,)`` float64 output."""
        columns = []
        for column in (high, low, close, volume):
            view = column.view()
            view.flags.writeable = False  # a pure function must not edit the candles
            columns.append(view)
        bars = CustomBars(*columns)
        function = self._function if self._function is not None else resolve(self.path)
        try:
            raw = function(bars, **self.params)
        except Exception as exc:
            raise SpecError(
                f"custom feature {self.name} ({self.path}) raised {type(exc).__name__}: {exc}",
                fix="make the function accept (bars, **params) and work on any window of "
                f"at least {self.warmup} bars",
                feature=self.name,
            ) from exc
        return _checked(self, raw, len(bars))


def _checked(feature: CustomFeature, raw: object, n: int) -> FloatArray:
    try:
        out = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecError(
            f"custom feature {feature.name} ({feature.path}) returned "
            f"{type(raw).__name__}, not numbers ({exc})",
            fix="return a NumPy array or pandas Series of floats, one per bar",
            feature=feature.name,
        ) from exc
    if out.shape != (n,):
        raise SpecError(
            f"custom feature {feature.name} ({feature.path}) returned shape {list(out.shape)} "
            f"for {n} bars; expected [{n}]",
            fix="return one value per bar (NaN where it cannot be computed yet)",
            feature=feature.name,
            shape=list(out.shape),
        )
    return out
