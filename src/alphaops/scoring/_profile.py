"""The drift reference of a model: what its inputs and outputs looked like at training time.

:func:`build_profile` summarises the validation window of a training job — per feature a
quantile sketch and PSI bins, the share of each predicted class and a sketch of the
confidence (max probability) — into a :class:`ReferenceProfile`. The trainer stores it in the
bundle as :data:`PROFILE_REPORT` (covered by the manifest's checksums); :func:`profile_of`
reads it back, and the monitors of :mod:`alphaops.monitoring` compare live data with it.
Numbers only: this module needs NumPy and pydantic, never scipy or pandas.

PSI bins follow Evidently's PSI for numerical columns where a profile fixed at training time
allows: a column with at most 20 distinct reference values is binned by value (every value
its own bin, plus the gaps between them, so an unseen value counts as drift), and an empty
bin is filled with 0.0001 (or the smallest non-zero share / 10**6 when that is <= 0.0001) —
Evidently's ``get_binned_data``. Evidently cuts other numerical columns into Sturges
equal-width bins over reference *and* current values; a profile cannot see the current
values, so alphaops cuts at the reference deciles instead (the usual PSI binning), with
open-ended outer bins so that live values beyond the reference range still count.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> profile = build_profile(rng.normal(size=(1000, 2)), ("a", "b"),
...     rng.dirichlet([1, 1, 1], size=1000), ("SELL", "HOLD", "BUY"))
>>> profile.names, profile.rows, len(profile.feature("a").quantiles)
(('a', 'b'), 1000, 512)
>>> len(profile.feature("a").proportions), round(sum(profile.class_shares), 6)
(10, 1.0)
>>> ReferenceProfile.from_json(profile.to_json()) == profile
True
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from alphaops.core.errors import DataValidationError, IntegrityError, UsageError
from alphaops.registry import Bundle

__all__ = [
    "PROFILE_REPORT",
    "FeatureProfile",
    "ReferenceProfile",
    "build_profile",
    "profile_of",
]

PROFILE_REPORT = "reports/drift_reference.json"
"""Where a bundle keeps its :class:`ReferenceProfile` (bundles trained before it have none)."""

SKETCH_SIZE = 512
"""The most quantiles a sketch keeps (fewer when the reference has fewer values)."""

PSI_BINS = 10
"""Quantile bins of a continuous feature (reference deciles)."""

DISCRETE_MAX_VALUES = 20
"""A feature with at most this many distinct reference values is binned by value (Evidently)."""

FloatArray = npt.NDArray[np.float64]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureProfile(_Frozen):
    """The reference distribution of one column: a quantile sketch and its PSI bins.

    ``quantiles`` holds the reference quantiles at probabilities ``(i + 0.5) / n``, ``n =
    min(512, rows)`` (Hazen's definition: with ``rows <= 512`` they are the sorted values
    themselves). ``discrete`` columns are binned by value: ``edges`` are the distinct values
    and the bins are ``(-inf, e0), [e0], (e0, e1), [e1], …, (ek, inf)``; other columns cut at
    ``edges`` (the distinct reference deciles) into ``(-inf, e0), [e0, e1), …, [ek, inf)``.
    ``proportions`` are the reference shares of those bins, before any empty-bin fill.

    >>> f = FeatureProfile.of("hour", [1.0, 1.0, 2.0, 3.0])
    >>> f.discrete, f.edges, f.proportions
    (True, (1.0, 2.0, 3.0), (0.0, 0.5, 0.0, 0.25, 0.0, 0.25, 0.0))
    >>> f.proportions_of([2.0, 2.5, np.nan]).tolist()   # NaN ignored; 2.5 lies in a gap
    [0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0]
    """

    name: str
    rows: int
    quantiles: tuple[float, ...]
    edges: tuple[float, ...]
    discrete: bool
    proportions: tuple[float, ...]

    @model_validator(mode="after")
    def _check(self) -> Self:
        bins = 2 * len(self.edges) + 1 if self.discrete else len(self.edges) + 1
        if self.rows == 0:
            bins = 0
        if len(self.proportions) != bins or (self.rows > 0) != bool(self.quantiles):
            raise ValueError(
                f"feature {self.name!r}: {len(self.proportions)} proportions for "
                f"{len(self.edges)} edges and {self.rows} rows"
            )
        if list(self.edges) != sorted(set(self.edges)):
            raise ValueError(f"feature {self.name!r}: edges must increase strictly")
        return self

    @classmethod
    def of(cls, name: str, values: npt.ArrayLike) -> FeatureProfile:
        """Return the profile of ``values`` (NaN and infinities ignored)."""
        data = _finite(values)
        if data.size == 0:  # nothing to compare with: the monitors report "insufficient"
            return cls(name=name, rows=0, quantiles=(), edges=(), discrete=False, proportions=())
        n = min(SKETCH_SIZE, data.size)
        if n == data.size:  # Hazen's quantiles at (i + 0.5) / rows are the sorted values
            sketch = np.sort(data)
        else:
            sketch = np.quantile(data, (np.arange(n) + 0.5) / n, method="hazen")
        distinct = np.unique(data)
        discrete = distinct.size <= DISCRETE_MAX_VALUES
        if discrete:
            edges = distinct
        else:
            # A constant stretch (many equal values) merges deciles: keep distinct edges.
            edges = np.unique(np.quantile(data, np.arange(1, PSI_BINS) / PSI_BINS))
        bins = 2 * edges.size + 1 if discrete else edges.size + 1
        counts = np.bincount(_bins(edges, discrete, data), minlength=bins)
        return cls(
            name=name,
            rows=int(data.size),
            quantiles=tuple(sketch.tolist()),
            edges=tuple(edges.tolist()),
            discrete=bool(discrete),
            proportions=tuple((counts / data.size).tolist()),
        )

    @property
    def sketch(self) -> FloatArray:
        """Return the quantile sketch as an array (a sample standing for the reference)."""
        return np.asarray(self.quantiles, dtype=np.float64)

    def bins_of(self, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Return the PSI bin of each finite value of ``values`` (NaN and infinities dropped)."""
        return _bins(np.asarray(self.edges, dtype=np.float64), self.discrete, _finite(values))

    def proportions_of(self, values: npt.ArrayLike) -> FloatArray:
        """Return the share of the finite ``values`` in each PSI bin (zeros when none)."""
        bins = self.bins_of(values)
        counts = np.bincount(bins, minlength=len(self.proportions)).astype(np.float64)
        return counts / bins.size if bins.size else counts


class ReferenceProfile(_Frozen):
    """What a model's inputs and outputs looked like on its validation window.

    ``features`` are in model input order; ``class_shares`` are the shares of each class of
    ``classes`` as the predicted class (argmax); ``confidence`` profiles the max probability;
    ``rows`` counts the validation samples; ``window_start_ms``/``window_end_ms`` are the open
    times (ms since the epoch, UTC) of the first and last decided bars, when known.
    """

    format: Literal[1] = 1
    features: tuple[FeatureProfile, ...]
    classes: tuple[str, ...]
    class_shares: tuple[float, ...]
    confidence: FeatureProfile
    rows: int
    window_start_ms: int | None = None
    window_end_ms: int | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(self.classes) != len(self.class_shares):
            raise ValueError(
                f"{len(self.class_shares)} class shares for {len(self.classes)} classes"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate feature names in {list(self.names)}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """Return the feature names in model input order."""
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> FeatureProfile:
        """Return the profile of feature ``name``; raise :class:`UsageError` if unknown."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise UsageError(
            f"the reference profile has no feature {name!r}",
            fix=f"use one of {list(self.names)}",
        )

    def to_json(self) -> bytes:
        """Return the profile as UTF-8 JSON (floats round-trip exactly)."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> ReferenceProfile:
        """Parse :meth:`to_json` output; raise :class:`IntegrityError` when it is not one."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            raise IntegrityError(
                f"not a valid drift reference profile ({problems})",
                fix="re-train the model to rebuild its reference profile",
                file=PROFILE_REPORT,
            ) from exc


def build_profile(
    features: npt.ArrayLike,
    names: tuple[str, ...] | list[str],
    probabilities: npt.ArrayLike,
    classes: tuple[str, ...] | list[str],
    *,
    window_start_ms: int | None = None,
    window_end_ms: int | None = None,
) -> ReferenceProfile:
    """Return the reference profile of ``features`` ``(N, F)`` and ``probabilities`` ``(N, K)``.

    NaN values are ignored feature by feature; a constant feature gets one value bin. Raise
    :class:`UsageError` when the shapes, names and classes do not fit together.

    >>> p = build_profile([[1.0, 5.0], [2.0, 5.0], [np.nan, 5.0]], ["x", "const"],
    ...     [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]], ["DOWN", "UP"], window_start_ms=0)
    >>> p.feature("x").rows, p.feature("const").edges, p.class_shares
    (2, (5.0,), (0.3333333333333333, 0.6666666666666666))
    """
    rows = np.asarray(features, dtype=np.float64)
    scores = np.asarray(probabilities, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != len(names):
        raise UsageError(
            f"features have shape {list(rows.shape)}, expected [rows, {len(names)}] for the "
            f"names {list(names)}",
            fix="pass a 2-D array with one column per name (for sequence windows, the last step)",
        )
    if scores.ndim != 2 or scores.shape != (rows.shape[0], len(classes)):
        raise UsageError(
            f"probabilities have shape {list(scores.shape)}, expected "
            f"[{rows.shape[0]}, {len(classes)}] (one row per feature row, one column per class "
            f"of {list(classes)})",
            fix="pass the model's probabilities of the same validation rows",
        )
    if not np.isfinite(scores).all():
        raise DataValidationError(
            "probabilities hold NaN or infinite values",
            fix="score the validation rows with the exported model before profiling",
        )
    n = scores.shape[0]
    predicted = np.argmax(scores, axis=1)
    shares = np.bincount(predicted, minlength=len(classes)) / n if n else np.zeros(len(classes))
    return ReferenceProfile(
        features=tuple(FeatureProfile.of(str(name), rows[:, j]) for j, name in enumerate(names)),
        classes=tuple(str(c) for c in classes),
        class_shares=tuple(float(s) for s in shares),
        confidence=FeatureProfile.of("confidence", scores.max(axis=1) if n else []),
        rows=int(n),
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
    )


def profile_of(bundle: Bundle) -> ReferenceProfile | None:
    """Return the reference profile stored in ``bundle``, or None for a bundle without one.

    Bundles trained before profiles existed have no :data:`PROFILE_REPORT`. A profile whose
    features or classes differ from the manifest's raises :class:`IntegrityError`.
    """
    path = bundle.path / PROFILE_REPORT
    if not path.is_file():
        return None
    profile = ReferenceProfile.from_json(path.read_bytes())
    manifest = bundle.manifest
    listed = tuple(f.name for f in manifest.features)
    classes = tuple(manifest.label.class_order)
    if profile.names != listed or profile.classes != classes:
        raise IntegrityError(
            f"{manifest.symbol}/{manifest.model_type} ({bundle.path}): {PROFILE_REPORT} profiles "
            f"features {list(profile.names)} and classes {list(profile.classes)}, the manifest "
            f"lists {list(listed)} and {list(classes)}",
            fix="re-publish the model with the alphaops trainer",
            file=PROFILE_REPORT,
        )
    return profile


def _finite(values: npt.ArrayLike) -> FloatArray:
    data = np.asarray(values, dtype=np.float64).ravel()
    return data[np.isfinite(data)]


def _bins(edges: FloatArray, discrete: bool, data: FloatArray) -> npt.NDArray[np.int64]:
    if not discrete:
        return np.searchsorted(edges, data, side="right").astype(np.int64)
    left = np.searchsorted(edges, data, side="left")
    right = np.searchsorted(edges, data, side="right")
    return (2 * left + (right > left)).astype(np.int64)
