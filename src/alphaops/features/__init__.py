"""Features and labels: declarative specs computed identically offline and live.

>>> from alphaops.features import FeaturePipeline, FeatureSpec, LabelRule
>>> FeatureSpec.default().names[:4]
('returns_1', 'returns_4', 'returns_24', 'volatility_24')
>>> LabelRule(horizon=4, threshold=0.01).classes
('LOSS', 'WIN')
"""

from alphaops.features._audit import (
    FeatureAudit,
    LookaheadFinding,
    audit_lookahead,
    check_lookahead,
)
from alphaops.features._stream import FeatureStream
from alphaops.features.labels import DROP_REASONS, LabelResult, LabelRule, make_labels
from alphaops.features.pipeline import FeaturePipeline
from alphaops.features.spec import (
    ATR,
    CONVERGENCE_TOLERANCE,
    FEATURES_VERSION,
    MACD,
    RSI,
    BollingerPctB,
    CustomBars,
    CustomFeature,
    Feature,
    FeatureSpec,
    MACross,
    Returns,
    Volatility,
    VolumeZScore,
)

__all__ = [
    "ATR",
    "CONVERGENCE_TOLERANCE",
    "DROP_REASONS",
    "FEATURES_VERSION",
    "MACD",
    "RSI",
    "BollingerPctB",
    "CustomBars",
    "CustomFeature",
    "Feature",
    "FeatureAudit",
    "FeaturePipeline",
    "FeatureSpec",
    "FeatureStream",
    "LabelResult",
    "LabelRule",
    "LookaheadFinding",
    "MACross",
    "Returns",
    "Volatility",
    "VolumeZScore",
    "audit_lookahead",
    "check_lookahead",
    "make_labels",
]
