"""Monitoring a live model: drift of its inputs, its predictions and its outcomes.

:class:`FeatureDrift` and :class:`PredictionDrift` compare sliding windows of live feature
rows and probabilities with the :class:`~alphaops.scoring.ReferenceProfile` a bundle recorded
at training (:func:`~alphaops.scoring.profile_of`); :class:`OutcomeDrift` watches the win rate
with river's ADWIN or DDM. Monitors follow river: ``update(x)``, then read ``report()`` or
``drift_detected``; they never act (swap or stop a model) themselves. Needs the ``monitor``
extra (scipy, river).

>>> psi([0.5, 0.5], [0.9, 0.1]) > DriftThresholds().psi_alarm
True
"""

from alphaops.monitoring.drift import (
    DriftReport,
    DriftRow,
    DriftThresholds,
    FeatureDrift,
    PredictionDrift,
    Status,
    kolmogorov_smirnov,
    population_stability,
    psi,
    wasserstein,
)
from alphaops.monitoring.outcome import OutcomeDrift

__all__ = [
    "DriftReport",
    "DriftRow",
    "DriftThresholds",
    "FeatureDrift",
    "OutcomeDrift",
    "PredictionDrift",
    "Status",
    "kolmogorov_smirnov",
    "population_stability",
    "psi",
    "wasserstein",
]
