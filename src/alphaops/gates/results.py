"""Gate results: one :class:`Check` per threshold, one :class:`GateOutcome` per gate.

A check that cannot be evaluated (its value is missing or not finite) fails: gates fail
closed. :func:`check` builds a check from a value, a comparison and a threshold.

>>> c = check("majority_share", 0.91, "<=", 0.70, "share of the most frequent action")
>>> c.passed, c.verdict
(False, 'FAIL')
>>> c.explanation
'share of the most frequent action: 0.91 > 0.7 (must be <= 0.7)'
>>> check("log_loss", float("nan"), "<=", 1.1, "log loss").explanation
'log loss: cannot be evaluated (nan); a check that cannot be evaluated fails'
>>> GateOutcome.of("quality", [c]).passed
False
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Check", "Comparison", "GateOutcome", "check", "info"]

Comparison = Literal["<=", ">=", "<", ">", "=="]
_NEGATION = {"<=": ">", ">=": "<", "<": ">=", ">": "<=", "==": "!="}


class Check(BaseModel):
    """One threshold of one gate: its value, the threshold, the verdict, one line of why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Stable check name, e.g. 'majority_share'.")
    value: float | None = Field(description="Measured value; None when not evaluable.")
    comparison: Comparison | None = Field(description="How value must relate to threshold.")
    threshold: float | None = Field(description="The threshold (None for reported-only).")
    passed: bool
    explanation: str = Field(description="One line a person can read.")

    @property
    def verdict(self) -> str:
        """Return ``"PASS"`` or ``"FAIL"``."""
        return "PASS" if self.passed else "FAIL"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def check(
    name: str,
    value: float | None,
    comparison: Comparison,
    threshold: float,
    what: str,
    *,
    note: str = "",
) -> Check:
    """Return a check of ``value <comparison> threshold``; an unevaluable value fails."""
    suffix = f"; {note}" if note else ""
    if value is None or not math.isfinite(value):
        return Check(
            name=name,
            value=None,
            comparison=comparison,
            threshold=threshold,
            passed=False,
            explanation=f"{what}: cannot be evaluated ({value}); "
            f"a check that cannot be evaluated fails{suffix}",
        )
    ok = {
        "<=": value <= threshold,
        ">=": value >= threshold,
        "<": value < threshold,
        ">": value > threshold,
        "==": value == threshold,
    }[comparison]
    shown = comparison if ok else _NEGATION[comparison]
    return Check(
        name=name,
        value=float(value),
        comparison=comparison,
        threshold=float(threshold),
        passed=bool(ok),
        explanation=f"{what}: {_fmt(value)} {shown} {_fmt(threshold)}"
        + ("" if ok else f" (must be {comparison} {_fmt(threshold)})")
        + suffix,
    )


def info(name: str, value: float | None, what: str) -> Check:
    """Return a reported-only check (it always passes; it carries a figure for the report)."""
    shown = "n/a" if value is None or not math.isfinite(value) else _fmt(value)
    finite = value is not None and math.isfinite(value)
    return Check(
        name=name,
        value=float(value) if finite and value is not None else None,
        comparison=None,
        threshold=None,
        passed=True,
        explanation=f"{what}: {shown} (reported, not gated)",
    )


class GateOutcome(BaseModel):
    """The result of one gate: passed only when every check passed (and there is one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gate: str = Field(description="Gate name: quality, validation, backtest or lookahead.")
    passed: bool
    checks: tuple[Check, ...]
    summary: str = Field("", description="One line about the gate as a whole.")
    data: dict[str, Any] = Field(default_factory=dict, description="Figures for the report.")

    @classmethod
    def of(
        cls,
        gate: str,
        checks: Iterable[Check],
        *,
        summary: str = "",
        data: dict[str, Any] | None = None,
    ) -> GateOutcome:
        """Return the outcome of ``checks``; a gate without checks fails."""
        items = tuple(checks)
        passed = bool(items) and all(c.passed for c in items)
        return cls(gate=gate, passed=passed, checks=items, summary=summary, data=data or {})

    @property
    def failed(self) -> tuple[Check, ...]:
        """Return the checks that failed."""
        return tuple(c for c in self.checks if not c.passed)

    def value(self, name: str) -> float | None:
        """Return the value of the check called ``name``."""
        found = next((c for c in self.checks if c.name == name), None)
        if found is None:
            raise KeyError(f"gate {self.gate!r} has no check {name!r}")
        return found.value
