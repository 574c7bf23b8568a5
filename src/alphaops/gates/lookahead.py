"""The lookahead audit: what a model said at bar ``t`` must not change when the future is cut.

Every scored bar is audited; a sparse leak (one bar in a hundred) cannot slip through.

* A bundle with a feature spec (the normal case, built-in and custom features alike): the
  features of every bar are streamed from past bars only with
  :func:`~alphaops.features.audit_lookahead` (one pass, equivalent to truncating the candles
  after every bar) and compared with the batch features; the model is then run on the
  streamed inputs and its probabilities compared with the batch ones at every scored bar.
* A batch-only feature source (the ``features=`` seam): the candles are cut right after each
  ``stride``-th scored bar, keeping the bars its input needs, and recomputed through the
  predictor.

Any difference beyond the tolerance — a feature that peeks ahead, one that needs more history
than it declares, a model whose output is not a function of its input — fails the gate, and
the gate names the features and the first bars where they differed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from alphaops.data.candles import Candles
from alphaops.features import FeatureSpec, audit_lookahead
from alphaops.gates.policy import LookaheadPolicy
from alphaops.gates.results import GateOutcome, check
from alphaops.scoring import BundlePredictor, Scores

__all__ = ["lookahead_audit"]

_SHOWN = 3


def _relative(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    both_nan = np.isnan(a) & np.isnan(b)
    if np.any(np.isnan(a) != np.isnan(b)):
        return float("inf")
    diff = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    return float(np.max(np.where(both_nan, 0.0, diff), initial=0.0))


def _iso(ms: int) -> str:
    return str(np.datetime64(ms, "ms"))


def lookahead_audit(
    predictor: BundlePredictor,
    candles: Candles,
    batch: Scores,
    policy: LookaheadPolicy | None = None,
) -> GateOutcome:
    """Recompute every bar of ``batch`` from past candles only and compare.

    ``batch`` must be ``predictor.score(candles)`` (possibly restricted to a window).
    """
    policy = policy or LookaheadPolicy()
    if len(batch) == 0:
        note = "no scored bars to audit"
        checks = [
            check("max_probability_difference", None, "<=", policy.tolerance, "", note=note),
        ]
        return GateOutcome.of("lookahead", checks, summary=note)
    spec = predictor.contract.spec
    if spec is not None:
        found = _streamed(predictor, spec, candles, batch, policy.tolerance)
    else:
        found = _truncated(predictor, candles, batch, policy)
    worst_p, worst_f, mismatched, audited, leaks = found
    shown = ", ".join(_iso(t) for t in mismatched[:_SHOWN])
    shown += " …" if len(mismatched) > _SHOWN else ""
    note = f"differs at {shown}" if mismatched else ""
    if leaks:
        note += "; " + "; ".join(leaks)
    checks = [
        check(
            "max_probability_difference",
            worst_p,
            "<=",
            policy.tolerance,
            f"largest |batch - truncated| probability over {audited} bars",
            note=note,
        ),
        check(
            "max_feature_difference",
            worst_f,
            "<=",
            policy.tolerance,
            "largest relative |batch - truncated| feature",
            note=note,
        ),
        check(
            "mismatched_bars",
            float(len(mismatched)),
            "==",
            0.0,
            f"bars whose recomputation differs, of {audited} audited",
            note=note,
        ),
    ]
    how = "streamed from past bars only" if spec is not None else "cut after each audited bar"
    data: dict[str, Any] = {
        "audited": audited,
        "first_audited": int(batch.timestamps_ms[0]),
        "last_audited": int(batch.timestamps_ms[-1]),
        "mismatched": [_iso(t) for t in mismatched],
        "leaks": leaks,
    }
    return GateOutcome.of(
        "lookahead", checks, summary=f"{audited} bars recomputed, {how}", data=data
    )


Found = tuple[float, float, list[int], int, list[str]]


def _streamed(
    predictor: BundlePredictor,
    spec: FeatureSpec,
    candles: Candles,
    batch: Scores,
    tolerance: float,
) -> Found:
    stamps = candles.timestamps_ms
    scored = batch.timestamps_ms
    first = int(scored[0])
    audit = audit_lookahead(
        spec, candles, start_ms=first, tolerance=tolerance, batch=predictor.features(candles)
    )
    rows = audit.rows
    at = np.searchsorted(stamps, scored)
    if predictor.contract.kind == "sequence":
        lookback = predictor.lookback
        inputs = np.stack([rows[i - lookback + 1 : i + 1] for i in at])
    else:
        inputs = rows[at]
    again = predictor.predict_proba(inputs).astype(np.float64)
    p_diff = np.max(np.abs(again - batch.probabilities.astype(np.float64)), axis=1)
    p_diff = np.where(np.isnan(p_diff), np.inf, p_diff)
    bad = set(audit.mismatched_bars_ms) | {int(t) for t in scored[p_diff > tolerance]}
    leaks = [f.describe(audit.audited) for f in audit.findings]
    return float(np.max(p_diff)), audit.worst, sorted(bad), len(batch), leaks


def _truncated(
    predictor: BundlePredictor, candles: Candles, batch: Scores, policy: LookaheadPolicy
) -> Found:
    picks = np.arange(len(batch) - 1, -1, -policy.stride)[::-1]  # the last bar always
    stamps = candles.timestamps_ms
    all_features = predictor.features(candles)
    need = predictor.warmup_bars
    worst_p = worst_f = 0.0
    mismatched: list[int] = []
    for pick in picks:
        t = int(batch.timestamps_ms[pick])
        row = int(np.searchsorted(stamps, t))
        cut = Candles.from_frame(
            candles.frame.iloc[max(0, row + 1 - need) : row + 1],
            symbol=candles.symbol,
            timeframe=candles.timeframe,
        )
        again = predictor.score(cut)
        f_diff = _relative(predictor.features(cut)[-1], all_features[row])
        if len(again) == 0 or int(again.timestamps_ms[-1]) != t:
            p_diff = float("inf")
        else:
            p_diff = float(
                np.max(
                    np.abs(again.probabilities[-1].astype(np.float64) - batch.probabilities[pick])
                )
            )
        worst_p, worst_f = max(worst_p, p_diff), max(worst_f, f_diff)
        if p_diff > policy.tolerance or f_diff > policy.tolerance:
            mismatched.append(t)
    return worst_p, worst_f, mismatched, int(picks.size), []
