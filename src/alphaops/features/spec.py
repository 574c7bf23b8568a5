"""Declarative feature specs: frozen, hashable, validated, one model per feature kind.

A :class:`FeatureSpec` is an ordered tuple of features. Each feature is a frozen pydantic
model with a ``kind`` tag (the discriminator), a stable ``name`` used as its column, and a
``warmup_bars``: how many bars of history its value at a bar depends on.

Every output is scale-free (a ratio, a return, an oscillator or a z-score), so one model can
generalise across symbols and price levels.

Recursive indicators (EMA, Wilder's RSI and ATR, MACD) depend on all earlier bars in
principle. Their ``warmup_bars`` adds ``k`` bars to the indicator's own look-back, with ``k``
the smallest number such that ``(1 - alpha) ** k <= 1e-12`` (:data:`CONVERGENCE_TOLERANCE`).
The seed of a truncated window then weighs less than 1e-12 of its value, so a value computed
from the last ``warmup_bars`` candles agrees with one computed from the full history to about
1e-12 relative. Window-only features (returns, volatility, Bollinger %B, volume z-score, SMA
cross) need just their window.

>>> spec = FeatureSpec(features=(RSI(period=14), MACD(), Returns(bars=4)))
>>> spec.names
('rsi_14', 'macd_12_26_9', 'returns_4')
>>> spec.warmup_bars
518
>>> FeatureSpec.from_dict({"features": [{"kind": "rsi", "period": 14}]}).names
('rsi_14',)
>>> MACross(fast=30, slow=10)
Traceback (most recent call last):
...
alphaops.core.errors.SpecError: ma_cross fast=30 must be less than slow=10. Fix: ...
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import Field, ValidationError, model_validator

from alphaops.core.errors import SpecError
from alphaops.core.specs import SpecModel, canonical_json, sha256_hex
from alphaops.features._custom import CustomBars, CustomFeature
from alphaops.features._kinds import (
    ATR,
    CONVERGENCE_TOLERANCE,
    MACD,
    RSI,
    BollingerPctB,
    MACross,
    Returns,
    Volatility,
    VolumeZScore,
)

__all__ = [
    "ATR",
    "CONVERGENCE_TOLERANCE",
    "FEATURES_VERSION",
    "MACD",
    "RSI",
    "BollingerPctB",
    "CustomBars",
    "CustomFeature",
    "Feature",
    "FeatureSpec",
    "MACross",
    "Returns",
    "Volatility",
    "VolumeZScore",
]

FEATURES_VERSION = 1
"""Version of the feature computations; part of :attr:`FeatureSpec.spec_hash`.

Raise it whenever a computation changes its output, so that a model trained on the old
features no longer matches the spec hash of the new ones.
"""


Feature = Annotated[
    RSI
    | MACross
    | Volatility
    | Returns
    | ATR
    | MACD
    | BollingerPctB
    | VolumeZScore
    | CustomFeature,
    Field(discriminator="kind"),
]
"""Any one feature; the ``kind`` key picks the model when parsing a dict or JSON."""


class FeatureSpec(SpecModel):
    """An ordered, non-empty tuple of features with unique names; frozen and hashable.

    >>> a = FeatureSpec(features=(RSI(period=14),))
    >>> b = FeatureSpec.from_dict({"features": [{"kind": "rsi", "period": 14}]})
    >>> a == b, a.spec_hash == b.spec_hash, len(a.spec_hash)
    (True, True, 64)
    >>> FeatureSpec(features=(RSI(), RSI()))
    Traceback (most recent call last):
    ...
    alphaops.core.errors.SpecError: feature names must be unique; repeated: rsi_14. Fix: ...
    """

    spec_label: ClassVar[str] = "feature spec"
    spec_example: ClassVar[str] = '{"features": [{"kind": "rsi", "period": 14}]}'

    features: tuple[Feature, ...] = Field(
        min_length=1, description="The features, in the column order of the output."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        counts = Counter(f.name for f in self.features)
        repeated = sorted(name for name, n in counts.items() if n > 1)
        if repeated:
            raise SpecError(
                f"feature names must be unique; repeated: {', '.join(repeated)}",
                fix="remove the duplicate or change its parameters",
                repeated=repeated,
            )
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """Return the feature (column) names in order."""
        return tuple(f.name for f in self.features)

    @property
    def warmup_bars(self) -> int:
        """Return the largest ``warmup_bars`` of the features: bars a live window needs."""
        return max(f.warmup_bars for f in self.features)

    @property
    def custom(self) -> tuple[CustomFeature, ...]:
        """Return the user's own features (kind ``custom``), in spec order."""
        return tuple(f for f in self.features if isinstance(f, CustomFeature))

    @property
    def spec_hash(self) -> str:
        """Return the sha256 of the canonical JSON of the spec and :data:`FEATURES_VERSION`.

        Canonical JSON has sorted keys and no spaces, so equal specs hash equally in every
        process and on every machine.
        """
        return sha256_hex(canonical_json({"version": FEATURES_VERSION, **self.to_dict()}))

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as plain JSON-ready data; :meth:`from_dict` reads it back."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Build a spec from plain data (e.g. parsed YAML); raise :class:`SpecError` if invalid."""
        if not isinstance(data, Mapping):
            raise SpecError(
                f"a feature spec must be a mapping, not {type(data).__name__}",
                fix=f"pass e.g. {cls.spec_example}",
            )
        return cls.model_validate(dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> FeatureSpec:
        """Build a spec from JSON text; raise :class:`SpecError` if it is invalid."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:  # malformed JSON fails before any model validator
            raise SpecError(
                f"invalid feature spec: {exc.errors()[0]['msg']}",
                fix=f"pass JSON such as {cls.spec_example}",
            ) from exc

    @classmethod
    def default(cls) -> FeatureSpec:
        """Return the default spec: eleven features covering every kind.

        >>> FeatureSpec.default().warmup_bars
        518
        """
        return cls(
            features=(
                Returns(bars=1),
                Returns(bars=4),
                Returns(bars=24),
                Volatility(window=24),
                RSI(period=14),
                MACross(fast=10, slow=30, ma="sma"),
                MACross(fast=12, slow=26, ma="ema"),
                MACD(fast=12, slow=26, signal=9),
                ATR(period=14),
                BollingerPctB(period=20, num_std=2.0),
                VolumeZScore(window=24),
            )
        )
