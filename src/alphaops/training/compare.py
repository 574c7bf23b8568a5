"""Side-by-side validation: train two configurations on the same data and split, compare.

>>> a = {"val_loss": 0.80, "val_accuracy": 0.60}
>>> b = {"val_loss": 0.805, "val_accuracy": 0.58}
>>> [(d.metric, round(d.difference, 3), d.within) for d in metric_differences(a, b, 0.01)]
[('val_loss', 0.005, True), ('val_accuracy', -0.02, False)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alphaops.core.errors import SpecError
from alphaops.data.candles import Candles
from alphaops.training._control import CancelToken, ProgressCallback
from alphaops.training.executor import TrainedBundle, train_job
from alphaops.training.job import TrainingJob

__all__ = [
    "COMPARED_METRICS",
    "Comparison",
    "MetricDifference",
    "compare_jobs",
    "metric_differences",
]

COMPARED_METRICS = ("val_loss", "val_accuracy")


@dataclass(frozen=True)
class MetricDifference:
    """One metric of both runs: ``difference = b - a``, within the tolerance or not."""

    metric: str
    a: float
    b: float
    difference: float
    within: bool


@dataclass(frozen=True, eq=False)
class Comparison:
    """The result of :func:`compare_jobs`."""

    job_a: TrainingJob
    job_b: TrainingJob
    tolerance: float
    differences: tuple[MetricDifference, ...]
    trained_a: TrainedBundle
    trained_b: TrainedBundle

    @property
    def within_tolerance(self) -> bool:
        """Return whether every compared metric differs by at most the tolerance."""
        return all(d.within for d in self.differences)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "tolerance": self.tolerance,
            "within_tolerance": self.within_tolerance,
            "a": {"model": self.job_a.model, "config_hash": self.job_a.config_hash},
            "b": {"model": self.job_b.model, "config_hash": self.job_b.config_hash},
            "metrics": [d.__dict__ for d in self.differences],
        }


def metric_differences(
    a: Mapping[str, float],
    b: Mapping[str, float],
    tolerance: float,
    metrics: Sequence[str] = COMPARED_METRICS,
) -> list[MetricDifference]:
    """Return ``b - a`` for each metric and whether its size is within ``tolerance``."""
    return [
        MetricDifference(m, a[m], b[m], b[m] - a[m], abs(b[m] - a[m]) <= tolerance + 1e-12)
        for m in metrics
    ]


def compare_jobs(
    job_a: TrainingJob,
    job_b: TrainingJob,
    candles: Mapping[str, Candles],
    *,
    tolerance: float = 0.01,
    callbacks: Sequence[ProgressCallback] = (),
    cancel: CancelToken | None = None,
) -> Comparison:
    """Train both jobs on the same candles and split policy; compare validation metrics.

    Both jobs must name the same symbols, timeframe and data window, so that they see the
    same data; B is validated with A's split policy.
    """
    same = ("symbols", "timeframe", "start", "end")
    different = [f for f in same if getattr(job_a, f) != getattr(job_b, f)]
    if different:
        raise SpecError(
            f"the two configurations train on different data: {', '.join(different)} differ",
            fix="give both configurations the same symbols, timeframe, start and end",
        )
    if tolerance < 0:
        raise SpecError(f"tolerance={tolerance} is negative", fix="pass e.g. 0.01")
    job_b = job_b.model_copy(update={"split": job_a.split})
    trained_a = train_job(job_a, candles, callbacks=callbacks, cancel=cancel)
    trained_b = train_job(job_b, candles, callbacks=callbacks, cancel=cancel)
    differences = metric_differences(trained_a.metrics, trained_b.metrics, tolerance)
    return Comparison(job_a, job_b, tolerance, tuple(differences), trained_a, trained_b)
