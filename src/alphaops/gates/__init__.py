"""Gates: block degenerate and worse models before they trade.

Every model is scored through one ONNX path (:class:`BundlePredictor`) on an out-of-sample
window, then judged by the quality gate (degenerate output), the validation gate (metrics vs
the champion), the backtest gate (costs, Sharpe, PSR/DSR, buy-and-hold beside) and the
lookahead audit. Gates fail closed: a check that cannot be evaluated fails.

>>> GatePolicy().quality.max_hold_share
0.85
"""

from alphaops.gates.backtest import BacktestResult, backtest, backtest_gate, buy_and_hold, simulate
from alphaops.gates.lookahead import lookahead_audit
from alphaops.gates.policy import (
    BacktestPolicy,
    GatePolicy,
    LookaheadPolicy,
    QualityPolicy,
    ValidationPolicy,
)
from alphaops.gates.quality import quality_figures, quality_gate
from alphaops.gates.results import Check, GateOutcome, check
from alphaops.gates.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)
from alphaops.gates.validation import classification_metrics, validation_gate
from alphaops.scoring import (
    ACTION_OF_CLASS,
    ACTIONS,
    BundlePredictor,
    FeatureSource,
    Scores,
    feature_spec_of,
    label_rule_of,
)

__all__ = [
    "ACTIONS",
    "ACTION_OF_CLASS",
    "BacktestPolicy",
    "BacktestResult",
    "BundlePredictor",
    "Check",
    "FeatureSource",
    "GateOutcome",
    "GatePolicy",
    "LookaheadPolicy",
    "QualityPolicy",
    "Scores",
    "ValidationPolicy",
    "backtest",
    "backtest_gate",
    "buy_and_hold",
    "check",
    "classification_metrics",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "feature_spec_of",
    "label_rule_of",
    "lookahead_audit",
    "probabilistic_sharpe_ratio",
    "quality_figures",
    "quality_gate",
    "simulate",
    "validation_gate",
]
