"""The feature lookahead audit: every bar recomputed from past bars only, compared with batch.

:class:`~alphaops.features.FeatureStream` computes bar ``t`` from bars ``<= t`` alone (it has
not seen anything later yet), so it is the batch pipeline truncated after **every** bar at
once, at the cost of one streaming pass. A feature whose batch value at ``t`` differs from the
streamed one (beyond ``tolerance``, relative to ``max(1, |value|)``) either reads the future or
needs more than its ``warmup_bars`` of history; the first offending bar is recomputed from the
full prefix to tell which. A sparse leak (one bar in a hundred) cannot slip through: no bar is
skipped.

Cost: the built-in kinds stream in ~1-2 µs per bar and feature; a custom feature costs one
call of its function on ``warmup`` bars per bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alphaops.core.errors import LookaheadError
from alphaops.data.candles import Candles
from alphaops.features._indicators import Bars, compute
from alphaops.features._stream import FeatureStream
from alphaops.features.pipeline import FeaturePipeline
from alphaops.features.spec import FeatureSpec

__all__ = ["FeatureAudit", "LookaheadFinding", "audit_lookahead", "check_lookahead", "stream_rows"]

FloatArray = npt.NDArray[np.float64]

DEFAULT_TOLERANCE = 1e-6
"""Largest relative difference counted as equal (as the gates' lookahead policy)."""

SHOWN_BARS = 5
"""How many offending bar times an error message lists."""


@dataclass(frozen=True)
class LookaheadFinding:
    """One feature that failed the audit: where, by how much, and why."""

    feature: str
    bars_ms: tuple[int, ...]
    """Open times (ms) of every bar whose value differed, oldest first."""
    worst: float
    reads_future: bool
    """True: the full prefix up to the first bar already differs (a lookahead); False: only
    the ``warmup_bars`` window differs (the feature needs more history than it declares)."""

    @property
    def first_bars(self) -> tuple[str, ...]:
        """Return the first offending bar times as ISO strings (UTC)."""
        return tuple(_iso(t) for t in self.bars_ms[:SHOWN_BARS])

    def describe(self, audited: int) -> str:
        """Return one sentence naming the feature, the problem and the first bars."""
        more = " …" if len(self.bars_ms) > SHOWN_BARS else ""
        where = ", ".join(self.first_bars) + more
        what = (
            "reads the future: its value changes when later bars are cut"
            if self.reads_future
            else "needs more history than its warmup_bars: a window of that many bars "
            "gives another value"
        )
        return f"feature {self.feature} {what}, at {len(self.bars_ms)} of {audited} bars ({where})"


@dataclass(frozen=True)
class FeatureAudit:
    """The result of :func:`audit_lookahead`."""

    names: tuple[str, ...]
    audited: int
    """Bars compared (those at or after ``start_ms``)."""
    worst: float
    """Largest relative difference over every audited bar and feature."""
    findings: tuple[LookaheadFinding, ...]
    rows: FloatArray
    """The streamed ``(n, F)`` feature rows (past bars only), for callers that reuse them."""

    @property
    def passed(self) -> bool:
        """Return whether no feature differed at any audited bar."""
        return not self.findings

    @property
    def mismatched_bars_ms(self) -> tuple[int, ...]:
        """Return the open times of every bar where any feature differed, sorted."""
        return tuple(sorted({t for f in self.findings for t in f.bars_ms}))


def stream_rows(spec: FeatureSpec, candles: Candles) -> FloatArray:
    """Return the ``(n, F)`` rows of ``spec`` streamed bar by bar from the first candle."""
    stream = FeatureStream(spec)
    frame = candles.frame
    columns = [frame[c].to_numpy(np.float64).tolist() for c in ("high", "low", "close", "volume")]
    rows = np.empty((len(candles), len(spec.features)), dtype=np.float64)
    for i, bar in enumerate(zip(*columns, strict=True)):
        rows[i] = stream.update(*bar)
    return rows


def relative_difference(a: FloatArray, b: FloatArray) -> FloatArray:
    """Return ``|a - b| / max(1, |b|)`` elementwise: 0 where both are NaN, inf where one is."""
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    diff = np.where(a_nan & b_nan, 0.0, diff)
    return np.where(a_nan != b_nan, np.inf, diff)


def audit_lookahead(
    spec: FeatureSpec,
    candles: Candles,
    *,
    start_ms: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    batch: FloatArray | None = None,
) -> FeatureAudit:
    """Compare every bar's batch features with features streamed from past bars only.

    ``start_ms`` limits the comparison to bars opening at or after it (earlier bars still
    warm up). ``batch`` passes ready batch rows of ``candles`` (in spec order) to reuse them.
    """
    if batch is None:
        batch = FeaturePipeline(spec).transform(candles)[list(spec.names)].to_numpy(np.float64)
    rows = stream_rows(spec, candles)
    bars = Bars.from_candles(candles)
    stamps = candles.timestamps_ms
    first = 0 if start_ms is None else int(np.searchsorted(stamps, start_ms))
    diff = relative_difference(rows[first:], batch[first:])
    findings = []
    for j, feature in enumerate(spec.features):
        bad = np.flatnonzero(diff[:, j] > tolerance) + first
        if bad.size == 0:
            continue
        t = int(bad[0])
        again = compute(feature, _prefix(bars, t + 1))[-1:]
        reads_future = bool(relative_difference(again, batch[t : t + 1, j])[0] > tolerance)
        findings.append(
            LookaheadFinding(
                feature=feature.name,
                bars_ms=tuple(int(s) for s in stamps[bad]),
                worst=float(np.max(diff[bad - first, j])),
                reads_future=reads_future,
            )
        )
    worst = float(np.max(diff, initial=0.0))
    return FeatureAudit(spec.names, len(stamps) - first, worst, tuple(findings), rows)


def check_lookahead(
    spec: FeatureSpec,
    candles: Candles,
    *,
    start_ms: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> FeatureAudit:
    """Run :func:`audit_lookahead`; raise :class:`LookaheadError` naming each failed feature."""
    audit = audit_lookahead(spec, candles, start_ms=start_ms, tolerance=tolerance)
    if audit.findings:
        first = audit.findings[0]
        raise LookaheadError(
            "; ".join(f.describe(audit.audited) for f in audit.findings),
            fix="compute each bar from that bar and earlier ones only (no shift(-k), centred "
            "windows or whole-series statistics), and declare the history it needs in warmup",
            features=[f.feature for f in audit.findings],
            first_bars={f.feature: list(f.first_bars) for f in audit.findings},
            feature=first.feature,
        )
    return audit


def _prefix(bars: Bars, n: int) -> Bars:
    return Bars(bars.high[:n], bars.low[:n], bars.close[:n], bars.volume[:n])


def _iso(ms: int) -> str:
    return str(np.datetime64(ms, "ms").astype("datetime64[s]")) + "Z"
