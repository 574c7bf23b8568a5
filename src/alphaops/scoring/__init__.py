"""The scoring kernel: one way from market data to a model's input, one way to run it.

:class:`InputContract` (from a bundle's manifest) builds every input: ``history`` for gates,
backtests and replay, ``live`` (a :class:`LiveInput` fed one closed bar at a time) for the
runtime, ``latest`` for one window, ``rows`` for ready features. :class:`BundlePredictor`
scores candles through the contract and one :class:`~alphaops.inference.OnnxSession`.
A bundle's :class:`DecisionRule` (no-trade band, edge over cost, minimum hold) turns its
probabilities into positions: :func:`decide` over a batch of bars (``Scores.actions``), a
:class:`Decider` one bar at a time (the live runtime), with the same result.
:class:`ReferenceProfile` (:func:`build_profile`, :func:`profile_of`) records what a model's
inputs and outputs looked like at training, for the drift monitors. This
package depends only on ``core``, ``inference``, ``data``, ``features``, ``datasets`` and
``registry``, so the live runtime scores exactly like the gates without importing them.

>>> import numpy as np
>>> scores = Scores(np.array([0, 3_600_000]), np.array([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]],
...     dtype=np.float32), ("SELL", "HOLD", "BUY"))
>>> scores.predicted.tolist(), scores.actions.tolist(), scores.action_names
([1, 0], [0, -1], ('HOLD', 'SELL'))
"""

from alphaops.inference import ACTION_OF_CLASS, ACTIONS
from alphaops.scoring._contract import (
    TRAINING_REPORT,
    FeatureSource,
    InputContract,
    Rows,
    feature_spec_of,
)
from alphaops.scoring._decision import (
    ARGMAX,
    DEFAULT_ROUND_TRIP_COST_BPS,
    Decider,
    DecisionRule,
    decide,
)
from alphaops.scoring._live import Bar, BarLike, LiveInput, bars_of
from alphaops.scoring._predictor import BundlePredictor, Scores, decision_rule_of, label_rule_of
from alphaops.scoring._profile import (
    PROFILE_REPORT,
    FeatureProfile,
    ReferenceProfile,
    build_profile,
    profile_of,
)

__all__ = [
    "ACTIONS",
    "ACTION_OF_CLASS",
    "ARGMAX",
    "DEFAULT_ROUND_TRIP_COST_BPS",
    "PROFILE_REPORT",
    "TRAINING_REPORT",
    "Bar",
    "BarLike",
    "BundlePredictor",
    "Decider",
    "DecisionRule",
    "FeatureProfile",
    "FeatureSource",
    "InputContract",
    "LiveInput",
    "ReferenceProfile",
    "Rows",
    "Scores",
    "bars_of",
    "build_profile",
    "decide",
    "decision_rule_of",
    "feature_spec_of",
    "label_rule_of",
    "profile_of",
]
