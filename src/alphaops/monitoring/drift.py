"""Drift monitors: live features, predictions and outcomes against a model's reference profile.

Each monitor is fed with ``update(x)`` and read afterwards (``report()``, ``drift_detected``);
none of them acts: the caller decides what an alarm does. :class:`FeatureDrift` and
:class:`PredictionDrift` keep a sliding window of the latest rows and compare it with the
bundle's :class:`~alphaops.scoring.ReferenceProfile`; :class:`OutcomeDrift` runs river's
ADWIN or DDM change detector on a stream of trade outcomes.

Status comes from the PSI (:class:`DriftThresholds`). The Kolmogorov–Smirnov statistic and
p-value and the Wasserstein distance are reported beside it, computed against the profile's
quantile sketch. When the reference has at most 512 rows the sketch is the reference itself
and both equal scipy's on the raw samples; otherwise the KS statistic is within
``1/(2·512) + 1/rows`` of scipy's on the raw reference, and the Wasserstein distance within
the reference's range × 2/512. The p-value is scipy's asymptotic two-sided one
(``ks_2samp(method="asymp")``) for the true reference size. Autocorrelated features (rolling
windows of bars) make KS p-values far too small, which is one reason they do not decide.

>>> import numpy as np
>>> from alphaops.scoring import build_profile
>>> rng = np.random.default_rng(1)
>>> profile = build_profile(rng.normal(size=(2000, 1)), ["x"], np.full((2000, 2), 0.5),
...     ["DOWN", "UP"])
>>> monitor = FeatureDrift(profile, window=500)
>>> monitor.update_many(rng.normal(size=(500, 1)))
>>> monitor.report().worst, monitor.drift_detected
('ok', False)
>>> monitor.update_many(rng.normal(3.0, 1.0, size=(500, 1)))   # a 3-sigma shift
>>> row = monitor.report().rows[0]
>>> row.status, row.psi > 0.2, row.ks > 0.8
('alarm', True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from alphaops.core.errors import DataValidationError, SpecError, UsageError
from alphaops.core.specs import SpecModel
from alphaops.scoring import FeatureProfile, ReferenceProfile

__all__ = [
    "DriftReport",
    "DriftRow",
    "DriftThresholds",
    "FeatureDrift",
    "PredictionDrift",
    "Status",
    "kolmogorov_smirnov",
    "population_stability",
    "psi",
    "wasserstein",
]

Status = Literal["ok", "warn", "alarm", "insufficient"]
"""A row's verdict; ``insufficient`` when too few live values (or no reference) to judge."""

_SEVERITY: dict[str, int] = {"ok": 0, "insufficient": 1, "warn": 2, "alarm": 3}
_EMPTY_FILL = 0.0001
FloatArray = npt.NDArray[np.float64]


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Return the Population Stability Index of two vectors of bin shares.

    ``sum((e - a) * ln(e / a))`` after Evidently's empty-bin fill: in each vector, a zero
    share becomes 0.0001, or the smallest non-zero share / 10**6 when that is <= 0.0001.
    NaN when either vector holds no share at all.

    >>> round(psi([0.25, 0.25, 0.5], [0.5, 0.25, 0.25]), 6)   # 2 * 0.25 * ln 2
    0.346574
    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    """
    e = _filled(np.asarray(expected, dtype=np.float64))
    a = _filled(np.asarray(actual, dtype=np.float64))
    if e.shape != a.shape:
        raise UsageError(
            f"PSI needs shares of the same bins, got {e.size} and {a.size} bins",
            fix="bin both samples with the same edges (FeatureProfile.proportions_of)",
        )
    if e.size == 0 or not (e > 0).any() or not (a > 0).any():
        return math.nan
    return float(np.sum((e - a) * np.log(e / a)))


def _filled(shares: FloatArray) -> FloatArray:
    positive = shares[shares > 0]
    if positive.size == 0:
        return shares
    smallest = float(positive.min())
    return np.where(shares > 0, shares, smallest / 1e6 if smallest <= _EMPTY_FILL else _EMPTY_FILL)


def population_stability(feature: FeatureProfile, values: npt.ArrayLike) -> float:
    """Return the PSI of live ``values`` (NaN ignored) against ``feature``'s reference bins.

    >>> from alphaops.scoring import FeatureProfile
    >>> ref = FeatureProfile.of("x", np.arange(100.0))
    >>> population_stability(ref, np.arange(100.0)), population_stability(ref, [np.nan])
    (0.0, nan)
    """
    return psi(feature.proportions, feature.proportions_of(values))


def kolmogorov_smirnov(feature: FeatureProfile, values: npt.ArrayLike) -> tuple[float, float]:
    """Return the two-sample KS statistic and p-value of live ``values`` vs the reference.

    The statistic is scipy's ``ks_2samp`` between the reference sketch and the finite
    ``values``; the p-value is scipy's asymptotic two-sided one for ``feature.rows`` reference
    values (not the sketch's size). ``(nan, nan)`` when either side is empty.
    """
    from scipy import stats

    live = _finite(values)
    if live.size == 0 or feature.rows == 0:
        return math.nan, math.nan
    statistic = float(stats.ks_2samp(feature.sketch, live, method="asymp").statistic)
    m, n = sorted((float(feature.rows), float(live.size)), reverse=True)
    pvalue = float(np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0.0, 1.0))
    return statistic, pvalue


def wasserstein(feature: FeatureProfile, values: npt.ArrayLike) -> float:
    """Return the Wasserstein-1 distance (feature units) of live ``values`` to the reference.

    >>> from alphaops.scoring import FeatureProfile
    >>> round(wasserstein(FeatureProfile.of("x", [0.0, 1.0, 2.0]), [1.0, 2.0, 3.0]), 6)
    1.0
    """
    from scipy import stats

    live = _finite(values)
    if live.size == 0 or feature.rows == 0:
        return math.nan
    return float(stats.wasserstein_distance(feature.sketch, live))


class DriftThresholds(SpecModel):
    """When a drift row is ``warn``, ``alarm`` or ``insufficient``; PSI decides the status.

    PSI 0.1 is Evidently's default drift threshold for PSI and the industry's "moderate
    change"; 0.2 the usual "significant change". With 10 bins a same-distribution window of
    ``n`` rows has a PSI near ``9 · (1/n + 1/reference rows)``: at 200 rows about 0.05, so
    ``min_rows`` = 200 keeps chance warnings rare (about 1 in 10 at 200 rows, none at 500).

    >>> DriftThresholds().status(0.15, 1000), DriftThresholds().status(0.5, 10)
    ('warn', 'insufficient')
    """

    spec_label: ClassVar[str] = "drift thresholds"
    spec_example: ClassVar[str] = "DriftThresholds(psi_warn=0.1, psi_alarm=0.2)"

    psi_warn: float = Field(0.1, gt=0, description="PSI from which a row warns.")
    psi_alarm: float = Field(0.2, gt=0, description="PSI from which a row alarms.")
    ks_pvalue: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="KS p-value below which a row reports ks_rejects (informative only).",
    )
    min_rows: int = Field(200, ge=1, description="Live values needed before a row is judged.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.psi_warn > self.psi_alarm:
            raise SpecError(
                f"invalid drift thresholds: psi_warn {self.psi_warn} exceeds psi_alarm "
                f"{self.psi_alarm}",
                fix="make psi_warn at most psi_alarm, e.g. 0.1 and 0.2",
            )
        return self

    def status(self, psi_value: float, n: int) -> Status:
        """Return the status of a row with PSI ``psi_value`` over ``n`` live values."""
        if n < self.min_rows or math.isnan(psi_value):
            return "insufficient"
        if psi_value >= self.psi_alarm:
            return "alarm"
        return "warn" if psi_value >= self.psi_warn else "ok"


@dataclass(frozen=True)
class DriftRow:
    """One compared column: its PSI (decides ``status``), KS, Wasserstein, and live count."""

    name: str
    psi: float
    ks: float | None
    ks_pvalue: float | None
    ks_rejects: bool
    wasserstein: float | None
    status: Status
    n: int


@dataclass(frozen=True)
class DriftReport:
    """The rows of one drift check and their ``worst`` status (alarm > warn > insufficient > ok)."""

    rows: tuple[DriftRow, ...]
    thresholds: DriftThresholds

    @property
    def worst(self) -> Status:
        """Return the most severe status of any row (``ok`` when there are no rows)."""
        return max((r.status for r in self.rows), key=_SEVERITY.__getitem__, default="ok")

    @property
    def alarms(self) -> tuple[str, ...]:
        """Return the names of the rows at ``alarm``."""
        return tuple(r.name for r in self.rows if r.status == "alarm")

    def row(self, name: str) -> DriftRow:
        """Return the row of ``name``; raise :class:`UsageError` if there is none."""
        for row in self.rows:
            if row.name == name:
                return row
        raise UsageError(
            f"the drift report has no row {name!r}",
            fix=f"use one of {[r.name for r in self.rows]}",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (NaN becomes None)."""
        return {
            "worst": self.worst,
            "thresholds": self.thresholds.model_dump(),
            "rows": [{k: _json_number(v) for k, v in asdict(r).items()} for r in self.rows],
        }


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _compare(feature: FeatureProfile, values: FloatArray, thresholds: DriftThresholds) -> DriftRow:
    live = _finite(values)
    value = population_stability(feature, live)
    ks, pvalue = kolmogorov_smirnov(feature, live)
    return DriftRow(
        name=feature.name,
        psi=value,
        ks=ks,
        ks_pvalue=pvalue,
        ks_rejects=bool(pvalue < thresholds.ks_pvalue),
        wasserstein=wasserstein(feature, live),
        status=thresholds.status(value, live.size) if feature.rows else "insufficient",
        n=int(live.size),
    )


class _Ring:
    """The latest ``size`` rows of ``width`` floats (NaN-initialised), oldest overwritten."""

    def __init__(self, size: int, width: int) -> None:
        if size < 1:
            raise UsageError(f"window must hold at least 1 row, got {size}", fix="pass window >= 1")
        self.data: FloatArray = np.full((size, width), np.nan)
        self.next = 0
        self.filled = 0

    def push(self, rows: FloatArray) -> None:
        size = self.data.shape[0]
        rows = rows[-size:]
        at = (self.next + np.arange(rows.shape[0])) % size
        self.data[at] = rows
        self.next = int((self.next + rows.shape[0]) % size)
        self.filled = min(size, self.filled + rows.shape[0])

    def rows(self) -> FloatArray:
        return self.data[: self.filled]


class FeatureDrift:
    """Compare a sliding window of live feature rows with a reference profile.

    ``update(row)`` takes one row in the profile's feature order (NaN values are ignored),
    ``update_many(rows)`` a batch; the window keeps the latest ``window`` rows. ``report()``
    compares every feature; ``drift_detected`` is True while any feature is at ``alarm``.
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        *,
        window: int = 1000,
        thresholds: DriftThresholds | None = None,
    ) -> None:
        self.profile = profile
        self.window = window
        self.thresholds = thresholds or DriftThresholds()
        self._ring = _Ring(window, len(profile.features))
        self._report: DriftReport | None = None

    @property
    def n(self) -> int:
        """Return the number of rows in the window."""
        return self._ring.filled

    def update(self, row: npt.ArrayLike) -> None:
        """Add one row of features in the profile's order."""
        values = np.asarray(row, dtype=np.float64)
        if values.ndim != 1:
            raise UsageError(
                f"update takes one row, got an array of shape {list(values.shape)}",
                fix="pass a 1-D row, or use update_many for a batch",
            )
        self.update_many(values[np.newaxis])

    def update_many(self, rows: npt.ArrayLike) -> None:
        """Add a batch of rows ``(n, F)`` in the profile's feature order, oldest first."""
        values = np.asarray(rows, dtype=np.float64)
        width = len(self.profile.features)
        if values.ndim != 2 or values.shape[1] != width:
            got = values.shape[-1] if values.ndim else 0
            raise DataValidationError(
                f"feature rows have {got} values (shape {list(values.shape)}), the reference "
                f"profile expects {width}: {list(self.profile.names)}",
                fix=f"pass rows of {width} features in the model's input order",
                expected=width,
                got=got,
            )
        self._ring.push(values)
        self._report = None

    def report(self) -> DriftReport:
        """Return the comparison of the window with the reference, one row per feature."""
        if self._report is None:
            window = self._ring.rows()
            self._report = DriftReport(
                tuple(
                    _compare(feature, window[:, j], self.thresholds)
                    for j, feature in enumerate(self.profile.features)
                ),
                self.thresholds,
            )
        return self._report

    @property
    def drift_detected(self) -> bool:
        """Return whether any feature is at ``alarm`` now."""
        return bool(self.report().alarms)


class PredictionDrift:
    """Compare a sliding window of live predictions with the reference's.

    ``update(probabilities)`` takes one ``(K,)`` row or a ``(n, K)`` batch. The report's row
    ``predicted_class`` is the PSI of the shares of each argmax class against the reference
    shares; ``confidence`` compares the max probability with its reference sketch.

    >>> import numpy as np
    >>> from alphaops.scoring import build_profile
    >>> rng = np.random.default_rng(2)
    >>> ref = build_profile(np.zeros((900, 1)), ["x"], rng.dirichlet([4, 1], 900), ["A", "B"])
    >>> monitor = PredictionDrift(ref, window=300)
    >>> monitor.update(rng.dirichlet([1, 4], 300))
    >>> monitor.report().row("predicted_class").status, monitor.drift_detected
    ('alarm', True)
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        *,
        window: int = 1000,
        thresholds: DriftThresholds | None = None,
    ) -> None:
        self.profile = profile
        self.window = window
        self.thresholds = thresholds or DriftThresholds()
        self._ring = _Ring(window, 2)  # predicted class, confidence
        self._report: DriftReport | None = None

    @property
    def n(self) -> int:
        """Return the number of predictions in the window."""
        return self._ring.filled

    def update(self, probabilities: npt.ArrayLike) -> None:
        """Add one probability row ``(K,)`` or a batch ``(n, K)``, oldest first."""
        scores = np.asarray(probabilities, dtype=np.float64)
        k = len(self.profile.classes)
        if scores.ndim == 1:
            scores = scores[np.newaxis]
        if scores.ndim != 2 or scores.shape[1] != k:
            got = scores.shape[-1] if scores.ndim else 0
            raise DataValidationError(
                f"probability rows have {got} values (shape {list(scores.shape)}), the "
                f"reference profile has {k} classes {list(self.profile.classes)}",
                fix=f"pass the model's {k} class probabilities per row",
                expected=k,
                got=got,
            )
        finite = np.isfinite(scores).all(axis=1)
        predicted = np.where(finite, np.argmax(np.nan_to_num(scores), axis=1), np.nan)
        confidence = np.where(finite, np.max(np.nan_to_num(scores), axis=1), np.nan)
        self._ring.push(np.column_stack([predicted, confidence]))
        self._report = None

    def report(self) -> DriftReport:
        """Return the ``predicted_class`` and ``confidence`` rows of the window."""
        if self._report is None:
            window = self._ring.rows()
            predicted = window[:, 0][np.isfinite(window[:, 0])].astype(np.int64)
            k = len(self.profile.classes)
            shares = np.bincount(predicted, minlength=k) / max(predicted.size, 1)
            value = psi(self.profile.class_shares, shares) if predicted.size else math.nan
            classes = DriftRow(
                name="predicted_class",
                psi=value,
                ks=None,
                ks_pvalue=None,
                ks_rejects=False,
                wasserstein=None,
                status=self.thresholds.status(value, int(predicted.size)),
                n=int(predicted.size),
            )
            confidence = _compare(self.profile.confidence, window[:, 1], self.thresholds)
            self._report = DriftReport((classes, confidence), self.thresholds)
        return self._report

    @property
    def drift_detected(self) -> bool:
        """Return whether the class shares or the confidence are at ``alarm`` now."""
        return bool(self.report().alarms)


def _finite(values: npt.ArrayLike) -> FloatArray:
    data = np.asarray(values, dtype=np.float64).ravel()
    return data[np.isfinite(data)]
