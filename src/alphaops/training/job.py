"""What to train: a frozen, hashable :class:`TrainingJob`, and the model family registry.

>>> from alphaops.features import LabelRule
>>> job = TrainingJob(symbols=("btcusdt",), timeframe="1h", model="lightgbm",
...     label=LabelRule(horizon=4, threshold=0.01), params={"n_estimators": 50})
>>> job.symbols, job.registry_symbol, len(job.config_hash)
(('BTCUSDT',), 'BTCUSDT', 64)
>>> TrainingJob(symbols=("BTCUSDT",), timeframe="1h", model="lightgbm",
...     label=LabelRule(horizon=4, threshold=0.01), params={"n_trees": 50})
Traceback (most recent call last):
...
alphaops.core.errors.SpecError: unknown parameter(s) ['n_trees'] for model 'lightgbm'. Fix: ...
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any, ClassVar, Literal, Self, get_args

from pydantic import Field, model_validator

from alphaops.core.errors import SpecError
from alphaops.core.names import normalize_symbol, validate_name
from alphaops.core.specs import SpecModel, SymbolList, TimeframeName, canonical_json, sha256_hex
from alphaops.features import FeatureSpec, LabelRule
from alphaops.scoring import DecisionRule
from alphaops.training._base import Classifier

__all__ = [
    "MODEL_FAMILIES",
    "ModelFamily",
    "SplitPolicy",
    "TrainingJob",
    "model_class",
]

ModelFamily = Literal["random_forest", "lightgbm", "xgboost", "lstm", "patchtst"]
MODEL_FAMILIES: tuple[str, ...] = get_args(ModelFamily)
"""The registry model types alphaops trains."""

# Imported on demand: a job for a tree model must not pay for importing torch.
_CLASSES = {
    "random_forest": ("alphaops.training.tabular", "RandomForestModel"),
    "lightgbm": ("alphaops.training.tabular", "LightGBMModel"),
    "xgboost": ("alphaops.training.tabular", "XGBoostModel"),
    "lstm": ("alphaops.training.sequence", "LSTMAttentionModel"),
    "patchtst": ("alphaops.training.sequence", "PatchTSTModel"),
}

Scalar = str | int | float | bool | None


def model_class(family: str) -> type[Classifier]:
    """Return the class of a model family, e.g. ``model_class("lightgbm")``.

    >>> model_class("patchtst").input_kind
    'sequence'
    """
    if family not in _CLASSES:
        raise SpecError(
            f"unknown model type {family!r}", fix=f"use one of {', '.join(MODEL_FAMILIES)}"
        )
    module, name = _CLASSES[family]
    cls: type[Classifier] = getattr(importlib.import_module(module), name)
    return cls


class SplitPolicy(SpecModel):
    """How the labelled samples are split into training and validation, without leaks.

    The most recent ``validation_fraction`` of samples (by entry time, over all symbols)
    validates. A training sample is kept only if its label ends before the first validation
    bar minus ``embargo_bars`` bars (purging), so no training label sees validation bars.
    """

    spec_label: ClassVar[str] = "split policy"
    spec_example: ClassVar[str] = '{"validation_fraction": 0.2, "embargo_bars": 24}'

    kind: Literal["holdout"] = Field("holdout", description="The last fraction validates.")
    validation_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of the most recent samples used for validation."
    )
    embargo_bars: int = Field(
        0, ge=0, description="Extra bars between the last training label and validation."
    )


class TrainingJob(SpecModel):
    """One model to train: data, features, labels, model family and parameters, split, seed.

    A job with several symbols trains one pooled model on all of them; its registry symbol
    is ``publish_as`` (default: the symbols joined with ``-``). ``config_hash`` names the
    whole job in the manifest.
    """

    spec_label: ClassVar[str] = "training job"
    spec_example: ClassVar[str] = (
        '{"symbols": ["BTCUSDT"], "timeframe": "1h", "model": "lightgbm", '
        '"label": {"horizon": 4, "threshold": 0.01}}'
    )

    symbols: SymbolList = Field(min_length=1, description="Symbols to train on.")
    timeframe: TimeframeName = Field(description="Candle timeframe, e.g. '1h'.")
    model: ModelFamily = Field(description="Model family (registry model type).")
    params: dict[str, Scalar] = Field(
        default_factory=dict, description="Model parameters (defaults for the rest)."
    )
    features: FeatureSpec = Field(default_factory=FeatureSpec.default)
    label: LabelRule
    split: SplitPolicy = Field(default_factory=lambda: SplitPolicy())
    lookback: int = Field(32, ge=2, le=1024, description="Window bars T (sequence models).")
    seed: int = Field(0, ge=0, description="Seed of every random choice in training.")
    start: datetime | None = Field(None, description="First candle used (inclusive, UTC).")
    end: datetime | None = Field(None, description="Candles before this time are used.")
    parity_tolerance: float = Field(
        1e-4, gt=0, lt=1, description="Max |native - ONNX| probability on validation."
    )
    publish_as: str | None = Field(None, description="Registry symbol of a pooled model.")
    decision: DecisionRule | None = Field(
        None,
        description="How the model's probabilities become positions (recorded in the bundle); "
        "None: the defaults of decision_rule, which trade far less than argmax. "
        "DecisionRule() is plain argmax.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        cls = model_class(self.model)
        cls.from_params(self.params)  # refuses unknown parameter names
        validate_name(self.registry_symbol, kind="registry symbol")
        if self.decision is not None and self.decision.typical_move is not None:
            raise SpecError(
                f"decision.typical_move={self.decision.typical_move!r} is set, but training "
                "measures it on the training rows",
                fix="leave typical_move out of the job's decision rule",
            )
        if "random_state" in self.params:
            raise SpecError(
                f"params.random_state={self.params['random_state']!r} would bypass the job seed",
                fix="set the job's 'seed' instead; it seeds every random choice in training",
            )
        return self

    @property
    def input_kind(self) -> str:
        """Return ``"tabular"`` or ``"sequence"``."""
        return model_class(self.model).input_kind

    @property
    def decision_rule(self) -> DecisionRule:
        """Return the decision rule to train for (before training measures the typical move).

        Without an explicit ``decision``, the defaults trade only what the model is sure of
        and what pays its costs, and hold what it bets on:

        * ``min_confidence``: 0.5 for ternary models (the chosen side holds at least half the
          probability, so it beats HOLD and the other side together), 0.55 for binary ones
          (argmax alone already means > 0.5; ask for a margin);
        * ``min_hold_bars`` = the label horizon: a signal predicts the move over that many
          bars, so the position is held that long instead of being re-decided every bar;
        * ``min_edge_over_cost`` = 1: the expected move in the predicted direction must at
          least pay the round trip (default 30 bps: the backtest gate's 10 bps fee plus 5 bps
          slippage, in and out).

        >>> from alphaops.features import LabelRule
        >>> job = TrainingJob(symbols=("BTCUSDT",), timeframe="1h", model="lightgbm",
        ...     label=LabelRule(kind="ternary", horizon=4, threshold=0.01))
        >>> job.decision_rule.describe()
        'act when p >= 0.5, expected edge >= 1x the 30 bps round trip (typical move unknown), hold >= 4 bars'
        """
        if self.decision is not None:
            return self.decision
        return DecisionRule(
            min_confidence=0.5 if self.label.kind == "ternary" else 0.55,
            min_hold_bars=self.label.horizon,
            min_edge_over_cost=1.0,
        )

    @property
    def registry_symbol(self) -> str:
        """Return the symbol the model is published under."""
        return self.publish_as or "-".join(self.symbols)

    @property
    def config_hash(self) -> str:
        """Return the sha256 of the canonical JSON of the job."""
        return sha256_hex(canonical_json(self.to_dict()))

    def build_model(self) -> Classifier:
        """Return an unfitted model with the job's parameters and seed."""
        return model_class(self.model).from_params({**self.params, "random_state": self.seed})

    def for_symbol(self, symbol: str) -> TrainingJob:
        """Return this job restricted to one symbol (for one model per symbol)."""
        return self.model_copy(update={"symbols": (normalize_symbol(symbol),), "publish_as": None})

    def to_dict(self) -> dict[str, Any]:
        """Return the job as JSON-ready data; :meth:`from_dict` reads it back."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any) -> TrainingJob:
        """Build a job from plain data (parsed YAML or JSON); raise :class:`SpecError`."""
        if not isinstance(data, dict):
            raise SpecError(
                f"a training job must be a mapping, not {type(data).__name__}",
                fix=f"pass e.g. {cls.spec_example}",
            )
        return cls.model_validate(data)
