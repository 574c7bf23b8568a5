"""Gate policies: frozen, validated, hashable thresholds for every gate (defaults from issue 5).

Every field has a description; unknown keys are refused with a :class:`SpecError`. The
policy's hash goes into every gate record, so a result always names the thresholds it used.

>>> policy = GatePolicy()
>>> policy.quality.max_majority_share, policy.quality.min_confidence_std
(0.7, 0.05)
>>> GatePolicy.from_dict({"quality": {"max_majority_share": 0.8}}).quality.max_majority_share
0.8
>>> GatePolicy.from_dict({"quality": {"max_majority": 0.8}})
Traceback (most recent call last):
...
alphaops.core.errors.SpecError: invalid quality policy: unknown parameter 'max_majority' ...
>>> len(policy.policy_hash)
64
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import Field, model_validator

from alphaops.core.errors import SpecError, UsageError
from alphaops.core.specs import SpecModel, canonical_json, sha256_hex

__all__ = [
    "BacktestPolicy",
    "GatePolicy",
    "LookaheadPolicy",
    "QualityPolicy",
    "ScoreboardPolicy",
    "ValidationPolicy",
]


class QualityPolicy(SpecModel):
    """Thresholds of the degenerate-output (quality) gate."""

    spec_label: ClassVar[str] = "quality policy"

    min_rows: int = Field(200, ge=1, description="Fewest scored bars the gate accepts.")
    max_majority_share: float = Field(
        0.70, gt=0, le=1, description="Fail when one action exceeds this share of outputs."
    )
    min_confidence_std: float = Field(
        0.05, ge=0, description="Fail when the std of the confidence is below this."
    )
    min_confidence_p10_p90: float = Field(
        0.12, ge=0, description="Fail when confidence P90 - P10 is below this."
    )
    constant_std: float = Field(
        0.01, ge=0, description="Constant output: confidence std below this, or P10 == P90."
    )
    max_hold_share: float = Field(
        0.85, gt=0, le=1, description="Dead-zone collapse: HOLD share above this ..."
    )
    dead_zone_low: float = Field(0.4, ge=0, le=1, description="... while confidences sit in ...")
    dead_zone_high: float = Field(0.6, ge=0, le=1, description="... [low, high] ...")
    min_dead_zone_share: float = Field(
        0.5, ge=0, le=1, description="... for at least this share of the bars."
    )

    @model_validator(mode="after")
    def _zone(self) -> Self:
        if self.dead_zone_low > self.dead_zone_high:
            raise ValueError(
                f"dead_zone_low={self.dead_zone_low} is above dead_zone_high={self.dead_zone_high}"
            )
        return self


class ValidationPolicy(SpecModel):
    """Absolute thresholds and champion tolerances of the validation gate."""

    spec_label: ClassVar[str] = "validation policy"

    min_accuracy: float = Field(0.0, ge=0, le=1, description="Lowest accepted accuracy.")
    min_balanced_accuracy_lift: float = Field(
        0.02, ge=-1, le=1, description="Balanced accuracy must exceed chance (1/K) by this."
    )
    max_log_loss_ratio: float = Field(
        1.0, gt=0, description="Log loss at most this times that of a uniform guess (ln K)."
    )
    max_brier_ratio: float = Field(
        1.0, gt=0, description="Brier score at most this times that of a uniform guess."
    )
    accuracy_tolerance: float = Field(
        0.02, ge=0, description="Accuracy may trail the champion's by at most this."
    )
    balanced_accuracy_tolerance: float = Field(
        0.02, ge=0, description="Balanced accuracy may trail the champion's by at most this."
    )
    log_loss_tolerance: float = Field(
        0.02, ge=0, description="Log loss may exceed the champion's by at most this."
    )
    brier_tolerance: float = Field(
        0.01, ge=0, description="Brier score may exceed the champion's by at most this."
    )


class BacktestPolicy(SpecModel):
    """Costs, position mode and thresholds of the backtest gate."""

    spec_label: ClassVar[str] = "backtest policy"

    fee_bps: float = Field(10.0, ge=0, description="Fee per unit of turnover, basis points.")
    slippage_bps: float = Field(5.0, ge=0, description="Slippage per unit of turnover, bps.")
    mode: Literal["long_flat", "long_short"] = Field(
        "long_flat", description="long_flat: SELL means flat; long_short: SELL means short."
    )
    fill: Literal["auto", "close", "next_open"] = Field(
        "auto",
        description="Where a position decided at a bar's close fills: at that close, at the next "
        "bar's open, or auto (next open where the market's calendar has session gaps).",
    )
    max_drawdown: float = Field(
        0.5, gt=0, le=1, description="Fail when the maximum drawdown exceeds this fraction."
    )
    sharpe_tolerance: float = Field(
        0.5, ge=0, description="Annualised Sharpe may trail the champion's by at most this."
    )
    min_net_return: float | None = Field(
        0.0,
        ge=-1,
        description="The net total return after costs must exceed this (0: beat staying flat); "
        "None reports it only.",
    )
    min_psr: float | None = Field(
        0.9,
        ge=0,
        le=1,
        description="Lowest accepted PSR(0), the probability that the true Sharpe is above 0 "
        "(0.9: one-sided 10% significance); None reports it only.",
    )
    min_dsr: float | None = Field(
        0.5,
        ge=0,
        le=1,
        description="Lowest accepted Deflated Sharpe Ratio (0.5: the Sharpe at least matches "
        "SR0, the best expected of the model's N candidates had none any skill); None reports "
        "it only.",
    )


class LookaheadPolicy(SpecModel):
    """How the lookahead audit compares recomputed results (every bar, see gates.lookahead)."""

    spec_label: ClassVar[str] = "lookahead policy"

    stride: int = Field(
        1,
        ge=1,
        le=1_000,
        description="Models without a feature spec: recompute every stride-th scored bar.",
    )
    tolerance: float = Field(
        1e-6, ge=0, description="Largest |difference| counted as equal (float32 rounding)."
    )


class ScoreboardPolicy(SpecModel):
    """When a candidate that passes its gates is GO rather than WAIT."""

    spec_label: ClassVar[str] = "scoreboard policy"

    min_agreement: float = Field(
        0.55, ge=0, le=1, description="GO needs at least this agreement with the champion ..."
    )
    max_agreement: float = Field(
        0.80, ge=0, le=1, description="... and at most this (a near-copy adds nothing)."
    )
    max_hard_disagreement: float = Field(
        0.20, ge=0, le=1, description="GO needs BUY-vs-SELL disagreement below this."
    )


class GatePolicy(SpecModel):
    """Every gate's thresholds; build with :meth:`from_dict` or :meth:`from_file`."""

    spec_label: ClassVar[str] = "gate policy"
    spec_example: ClassVar[str] = '{"quality": {"max_majority_share": 0.7}}'

    quality: QualityPolicy = Field(default_factory=lambda: QualityPolicy())
    validation: ValidationPolicy = Field(default_factory=lambda: ValidationPolicy())
    backtest: BacktestPolicy = Field(default_factory=lambda: BacktestPolicy())
    lookahead: LookaheadPolicy = Field(default_factory=lambda: LookaheadPolicy())
    scoreboard: ScoreboardPolicy = Field(default_factory=lambda: ScoreboardPolicy())

    @property
    def policy_hash(self) -> str:
        """Return the sha256 of the canonical JSON of the policy."""
        return sha256_hex(canonical_json(self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-ready data."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatePolicy:
        """Build a policy from plain data (missing keys keep their defaults)."""
        if not isinstance(data, Mapping):
            raise SpecError(
                f"a gate policy must be a mapping, not {type(data).__name__}",
                fix=f"pass e.g. {cls.spec_example}",
            )
        return cls.model_validate(dict(data))

    @classmethod
    def from_file(cls, path: Path) -> GatePolicy:
        """Read a policy from a YAML or JSON file."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise UsageError(
                f"cannot read gate policy {path}: {exc.strerror}", fix="check the path"
            ) from exc
        except yaml.YAMLError as exc:
            raise SpecError(f"gate policy {path} is not valid YAML: {exc}", fix="fix it") from exc
        return cls.from_dict(data)
